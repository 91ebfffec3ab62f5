//! The guard middleware: what every request passes before its handler (see [`crate::guard`]
//! for the limits, keys and their order).

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use std::time::Duration;

use crate::access::Access;
use crate::audit::Actor;
use crate::error::ApiError;
use crate::guard::{BEACON_ROUTE, Granted, Presented, presented_key, query_key, query_param};
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

/// Reads a request's body whole within the body timeout, before the request takes a
/// concurrency permit: a client that sends its body slowly (or never) holds no permit while it
/// does, and is cut off with 408 at the deadline. A body over the size limit is refused with
/// 413 as soon as it passes the limit.
async fn read_body(request: Request, limits: &crate::guard::Limits) -> Result<Request, Response> {
    let limit = limits.max_body_bytes;
    let declared: Option<u64> = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse().ok());
    let has_body = match declared {
        Some(length) => length > 0,
        None => request.headers().contains_key(TRANSFER_ENCODING),
    };
    // A declared length over the limit is refused inside, by `body::refuse_oversized`, which
    // drains what the client sends first so it sees the 413.
    if !has_body || declared.is_some_and(|length| length > limit as u64) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let after = Duration::from_secs_f64(limits.body_read_timeout_secs);
    let bytes = match tokio::time::timeout(after, axum::body::to_bytes(body, limit)).await {
        Err(_) => return Err(ApiError::BodyTimeout { after }.into_response()),
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                ApiError::PayloadTooLarge {
                    message: format!("body: larger than {limit} bytes"),
                }
            } else {
                ApiError::bad_request("unreadable_body", format!("body: {error}"))
            }
            .into_response());
        }
        Ok(Ok(bytes)) => bytes,
    };
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
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
        // Probes, metrics, the API description and the pages: never metered, shed from pools
        // of their own (a flood of scrapes leaves the probes answering).
        let _permit = guard
            .open_pool(route)
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded.into_response())?;
        return Ok(next.run(request).await);
    };
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
        request.extensions_mut().insert(Actor::Viewer);
    } else if guard.auth {
        let beacon_key;
        let presented = if route == Some(BEACON_ROUTE) {
            beacon_key = query_key(request.uri());
            Presented::Query(beacon_key.as_deref())
        } else {
            Presented::Header(presented_key(request.headers()))
        };
        let token = match (presented, guard.oidc()) {
            (Presented::Header(Some(token)), Some(oidc)) if crate::oidc::is_jwt(token) => {
                Some((token.to_owned(), oidc.clone()))
            }
            _ => None,
        };
        let (limiter, actor, scopes) = match token {
            Some((token, oidc)) => {
                let (limiter, subject, scopes) = guard
                    .authorise_token(&oidc, &token, scope)
                    .await
                    .map_err(IntoResponse::into_response)?;
                (limiter, Actor::Oidc(subject), scopes)
            }
            None => {
                let (limiter, key_id, scopes) = guard
                    .authorise(presented, scope)
                    .map_err(IntoResponse::into_response)?;
                (limiter, Actor::Key(key_id), scopes)
            }
        };
        request.extensions_mut().insert(actor);
        request.extensions_mut().insert(Granted(scopes));
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into_response());
        }
    }
    let request = read_body(request, limits).await?;
    let _permit = guard
        .pool(scope)
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded.into_response())?;
    let timeout = Duration::from_secs_f64(limits.request_timeout_secs);
    tokio::time::timeout(timeout, next.run(request))
        .await
        .map_err(|_| ApiError::Timeout { after: timeout }.into_response())
}
