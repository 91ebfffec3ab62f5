//! The audit middleware: after an audited request is answered, its record is appended to the
//! audit log (see [`crate::audit`] for what is audited and what a record holds). Inside the
//! guard, whose [`Actor`] it reads, and inside the forwarding, so the node that acted records.

use std::collections::BTreeMap;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::access::Access;
use crate::audit::{Actor, Record};
use crate::state::AppState;

/// The export route: audited whatever the scope it needs.
const EXPORT_ROUTE: &str = "/v1/users/{user_id}/export";

/// Whether a request to `route` is audited: a change needing an operator's scope (`admin` or
/// a part of it), or an export.
fn audited(state: &AppState, method: &Method, route: &str) -> bool {
    route == EXPORT_ROUTE
        || (method != Method::GET
            && method != Method::HEAD
            && method != Method::OPTIONS
            && matches!(state.access(method, route), Access::Key(scope) if scope.is_administrative()))
}

/// The path's parameters by name, from the route's pattern (`/v1/admin/filters/{name}`) laid
/// over the path, percent-decoded.
fn path_parameters<'r>(route: &'r str, path: &str) -> BTreeMap<&'r str, String> {
    route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(pattern, segment)| {
            let name = pattern.strip_prefix('{')?.strip_suffix('}')?;
            let value = percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned();
            Some((name, value))
        })
        .collect()
}

pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(log) = state.audit.clone() else {
        return next.run(request).await;
    };
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    if !audited(&state, &method, &route) {
        return next.run(request).await;
    }
    let actor = request
        .extensions()
        .get::<Actor>()
        .cloned()
        .unwrap_or(Actor::Anonymous);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let at_ms = marquee_schemas::now_ms();
    let state_for_subject = state.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut parameters = path_parameters(&route, &path);
        let subject = parameters
            .remove("user_id")
            .map(|user| log.subject(&state_for_subject.pseudonym(&user)));
        log.append(&Record {
            at_ms,
            actor: actor.describe(),
            action: format!("{method} {route}"),
            parameters,
            subject,
            request_id: &request_id,
            status,
        });
    })
    .await;
    if let Err(error) = written {
        tracing::error!(%error, "the audit record's task failed");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_from_the_pattern() {
        let parameters = path_parameters("/v1/users/{user_id}/export", "/v1/users/a%20b/export");
        assert_eq!(parameters.len(), 1);
        assert_eq!(parameters["user_id"], "a b");
        let parameters = path_parameters("/v1/admin/backups", "/v1/admin/backups");
        assert!(parameters.is_empty());
    }
}
