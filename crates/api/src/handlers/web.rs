//! The viewer app at `/` and the operator console at `/console`: each a page, its script and its
//! style, embedded in the binary at build time (the scripts and the console's style are
//! `web/dist/`, bundled from `web/src/` and the TypeScript SDK by `npm run build` in
//! `crates/api/web`, and committed, so that running a node needs no Node.js). Open routes: they
//! carry no data; the calls the pages make are checked as any client's (the console's need an
//! admin key, which it asks for).
//!
//! Every answer forbids inline scripts and styles, framing and other origins
//! (`Content-Security-Policy`), so an id or a title that reached the page as markup could not
//! run; the page inserts them as text in any case.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/dist/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const CONSOLE_HTML: &str = include_str!("../../web/console.html");
const CONSOLE_JS: &str = include_str!("../../web/dist/console.js");
const CONSOLE_CSS: &str = include_str!("../../web/dist/console.css");

/// The policy of every page asset: this origin only, nothing inline, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The viewer app
#[utoipa::path(
    get,
    path = "/",
    tag = "web",
    responses((status = 200, description = "The viewer app's page", body = String, content_type = "text/html")),
    security(())
)]
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The viewer app's script
#[utoipa::path(
    get,
    path = "/app.js",
    tag = "web",
    responses((status = 200, description = "The viewer app's script", body = String, content_type = "text/javascript")),
    security(())
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The viewer app's style
#[utoipa::path(
    get,
    path = "/app.css",
    tag = "web",
    responses((status = 200, description = "The viewer app's style sheet", body = String, content_type = "text/css")),
    security(())
)]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// The operator console
#[utoipa::path(
    get,
    path = "/console",
    tag = "web",
    responses((status = 200, description = "The operator console's page", body = String, content_type = "text/html")),
    security(())
)]
pub async fn console() -> Response {
    asset("text/html; charset=utf-8", CONSOLE_HTML)
}

/// The operator console's script
#[utoipa::path(
    get,
    path = "/console.js",
    tag = "web",
    responses((status = 200, description = "The operator console's script", body = String, content_type = "text/javascript")),
    security(())
)]
pub async fn console_script() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

/// The operator console's style
#[utoipa::path(
    get,
    path = "/console.css",
    tag = "web",
    responses((status = 200, description = "The operator console's style sheet", body = String, content_type = "text/css")),
    security(())
)]
pub async fn console_style() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}
