//! The guard middleware: what every request passes before its handler (see [`crate::guard`]
//! for the limits, keys and their order).

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use std::time::Duration;

use crate::access::Access;
use crate::error::ApiError;
use crate::guard::{BEACON_ROUTE, Presented, presented_key, query_key, query_param};
use crate::keys::Scope;
use crate::state::AppState;
use crate::viewer::{TOKEN_PREFIX, Viewer, permits};

/// The `{user_id}` segment of a `/v1/users/{user_id}…` path, percent-decoded.
fn path_user(uri: &axum::http::Uri) -> Option<String> {
    let segment = uri.path().strip_prefix("/v1/users/")?.split('/').next()?;
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|user| user.into_owned())
}

/// The scope a route needs; `None` for the open routes (and for paths no route matched, which
/// answer 404 or 405 without revealing anything). Read from the route table, where every
/// route declares its access; a route it does not know needs `admin`.
pub fn required_scope(state: &AppState, method: &Method, route: Option<&str>) -> Option<Scope> {
    match state.access(method, route?) {
        Access::Open => None,
        Access::Key(scope) => Some(scope),
    }
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// The guard middleware (see the module documentation).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match check(&state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn check(state: &AppState, mut request: Request, next: Next) -> Result<Response, Response> {
    let guard = &state.guard;
    let limits = guard.limits();
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |path| path.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        return Err(ApiError::UriTooLong {
            message: format!(
                "uri: {uri_bytes} bytes, more than the limit of {}",
                limits.max_uri_bytes
            ),
        }
        .into_response());
    }
    let headers = header_bytes(request.headers());
    if headers > limits.max_header_bytes {
        return Err(ApiError::HeadersTooLarge {
            message: format!(
                "headers: {headers} bytes, more than the limit of {}",
                limits.max_header_bytes
            ),
        }
        .into_response());
    }
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let route = matched.as_deref();
    let Some(scope) = required_scope(state, request.method(), route) else {
        // Probes, metrics and the API description: never shed, never metered.
        return Ok(next.run(request).await);
    };
    let _permit = guard
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded.into_response())?;
    if guard.auth
        && route != Some(BEACON_ROUTE)
        && let Some(token) =
            presented_key(request.headers()).filter(|key| key.starts_with(TOKEN_PREFIX))
    {
        let viewer = guard.viewer(token).map_err(IntoResponse::into_response)?;
        let route = route.unwrap_or_default();
        let path_user = route
            .starts_with("/v1/users/{user_id}")
            .then(|| path_user(request.uri()))
            .flatten();
        let query_user = query_param(request.uri(), "user_id");
        permits(
            &viewer,
            request.method().as_str(),
            route,
            path_user.as_deref(),
            query_user.as_deref(),
        )
        .map_err(IntoResponse::into_response)?;
        request.extensions_mut().insert(Viewer(viewer));
    } else if guard.auth {
        let beacon_key;
        let presented = if route == Some(BEACON_ROUTE) {
            beacon_key = query_key(request.uri());
            Presented::Query(beacon_key.as_deref())
        } else {
            Presented::Header(presented_key(request.headers()))
        };
        let limiter = guard
            .authorise(presented, scope)
            .map_err(IntoResponse::into_response)?;
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into_response());
        }
    }
    let timeout = Duration::from_secs_f64(limits.request_timeout_secs);
    tokio::time::timeout(timeout, next.run(request))
        .await
        .map_err(|_| ApiError::Timeout { after: timeout }.into_response())
}
