//! Bodies declared over the limit: refused with a 413 after they were read and dropped.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// How long the body of a refused oversized request is read and dropped, at most.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// The largest declared body that is read and dropped rather than left unread.
const LINGER_BYTES: u64 = 64 * 1024 * 1024;

/// Refuses a request whose declared body length is over the limit with a 413 that names the
/// body, after reading and dropping the body (up to `LINGER_BYTES`, for at most `LINGER`).
/// A connection closed with a body still unread is reset by the kernel, and a client still
/// writing would see a broken pipe instead of the 413 (as nginx's lingering close avoids).
/// Bodies without a declared length are limited while they are read (`DefaultBodyLimit`).
pub async fn refuse_oversized(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    use http_body_util::BodyExt;

    let limit = state.guard.limits().max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let Some(declared) = declared.filter(|&declared| declared > limit as u64) else {
        return next.run(request).await;
    };
    if declared <= LINGER_BYTES {
        let mut body = request.into_body();
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    }
    ApiError::PayloadTooLarge {
        message: format!("body: larger than {limit} bytes"),
    }
    .into_response()
}
