//! The route table: every route of the API, its handler, and through the handler's
//! `#[utoipa::path]` attribute its path, method, access and answers — written once. The router,
//! the OpenAPI document served at `/openapi.json`, the access map the guard reads and the
//! route labels of the request metrics all come from it.
//!
//! Access is each operation's `security` ([`crate::access`]): `()` marks an open route; the
//! role listed otherwise (`ingest`, `read`, `catalogue`, `users`, `operations`, `tokens`,
//! `admin`) is the scope a key needs; `admin` grants every one.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::ApiDocument;
use crate::error::ApiError;
use crate::handlers::{
    admin, events, experiments, items, lists, probes, rules, search, users, web,
};
use crate::metrics::UNMATCHED_ROUTE;
use crate::middleware::{audit, body, cors, forward, guard, metrics};
use crate::state::AppState;

/// The document's root: what every route shares.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marquee",
        description = "Real-time movie recommendations. Errors are {\"error\": {\"code\", \
            \"message\"}}; messages name the field at fault. With auth on (the default off \
            loopback), every route but /healthz, /readyz, /metrics, /openapi.json and the \
            viewer app's and the console's pages (/, /console and their scripts and styles) needs an \
            API key of the right scope (the role named in each operation's security): ingest \
            (POST /v1/events), read (queries), catalogue (catalogue and rules writes), users \
            (a user's summary, export and erasure), operations (processor, backups, \
            experiments, flags), tokens (viewer tokens), admin (everything); 401 without a valid key, 403 \
            with the wrong scope, 429 with Retry-After past the key's rate, 503 when shedding \
            load."
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiRoot;

/// The ways to present a key.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Authorization: Bearer mq_…"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "beaconKey",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "key",
                "An ingest-only key, for navigator.sendBeacon",
            ))),
        );
    }
}

/// Every route, by resource.
fn table() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiRoot::openapi())
        .routes(routes!(events::post_events))
        .routes(routes!(events::post_beacon))
        .routes(routes!(items::post_items))
        .routes(routes!(
            items::put_item,
            items::get_item,
            items::delete_item
        ))
        .routes(routes!(lists::get_similar))
        .routes(routes!(users::get_user, users::delete_user))
        .routes(routes!(users::get_export))
        .routes(routes!(users::get_erasure))
        .routes(routes!(users::get_export_job))
        .routes(routes!(lists::get_recommendations))
        .routes(routes!(lists::get_trending))
        .routes(routes!(search::get_search))
        .routes(routes!(search::get_suggest))
        .routes(routes!(admin::get_processor, admin::post_processor))
        .routes(routes!(admin::post_backup))
        .routes(routes!(admin::list_jobs))
        .routes(routes!(admin::get_job))
        .routes(routes!(admin::post_token))
        .routes(routes!(
            experiments::post_experiment,
            experiments::list_experiments
        ))
        .routes(routes!(
            experiments::get_experiment,
            experiments::put_experiment,
            experiments::delete_experiment
        ))
        .routes(routes!(experiments::get_results))
        .routes(routes!(
            experiments::flags::post_flag,
            experiments::flags::list_flags
        ))
        .routes(routes!(
            experiments::flags::get_flag,
            experiments::flags::put_flag,
            experiments::flags::delete_flag
        ))
        .routes(routes!(experiments::flags::get_assignments))
        .routes(routes!(rules::get_properties, rules::put_properties))
        .routes(routes!(rules::list_filters))
        .routes(routes!(
            rules::get_filter,
            rules::put_filter,
            rules::delete_filter
        ))
        .routes(routes!(rules::list_campaigns))
        .routes(routes!(
            rules::get_campaign,
            rules::put_campaign,
            rules::delete_campaign
        ))
        .routes(routes!(probes::healthz))
        .routes(routes!(probes::readyz))
        .routes(routes!(probes::metrics))
        .routes(routes!(probes::openapi))
        .routes(routes!(web::index))
        .routes(routes!(web::script))
        .routes(routes!(web::style))
        .routes(routes!(web::console))
        .routes(routes!(web::console_script))
        .routes(routes!(web::console_style))
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    table().into_openapi()
}

/// The document and the access map of the route table, rendered once.
pub fn document() -> &'static ApiDocument {
    static DOCUMENT: OnceLock<ApiDocument> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDocument::new(openapi().to_pretty_json().expect("the document serialises"))
    })
}

/// Every route the table holds: its method and path pattern.
pub fn route_patterns() -> Vec<(Method, String)> {
    document().routes()
}

/// Builds the router over `state`: the route table, then the middleware (outermost last).
pub fn router(state: AppState) -> Router {
    let (routes, _) = table().split_for_parts();
    let _ = state.document.set(document().clone());
    let mut labels: Vec<String> = route_patterns().into_iter().map(|(_, path)| path).collect();
    labels.sort();
    labels.dedup();
    state.http_metrics.initialise_routes(
        labels
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(UNMATCHED_ROUTE)),
    );
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Queries run on the async workers: a handler that panics answers 500 with the usual
        // error body (and is counted by the metrics layer outside), instead of a dropped
        // connection.
        .layer(CatchPanicLayer::custom(handler_panicked))
        .layer(DefaultBodyLimit::max(state.guard.limits().max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::refuse_oversized,
        ))
        // Inside the guard (it reads who the guard let in) and the forwarding (the node that
        // acts records).
        .layer(middleware::from_fn_with_state(state.clone(), audit::audit))
        // Inside the guard: a forwarded request was authorised here and is bounded by the
        // request timeout.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        // Outside the guard, so that its refusals (401, 429) carry the CORS headers a browser
        // needs to show them to the page; preflight requests are answered here.
        .layer(tower::util::option_layer(cors::cors_layer(
            &state.cors_origins,
        )))
        // Outermost last: a request id is set (the client's `x-request-id`, or a new UUID),
        // every log line of the request carries it through the span, and the response
        // returns it.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The response to a handler's panic: a logged internal error.
fn handler_panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let cause = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    ApiError::internal(format!("the handler panicked: {cause}")).into_response()
}

/// The span of one request: its id, method and path, in every log line emitted while serving it.
/// The span of a request: its id, method and route. The route is the matched pattern
/// (`/v1/users/{user_id}/recommendations`), never the path: a path holds user ids, and log
/// lines and exported spans are out of reach of an erasure (`docs/PRIVACY.md`).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(UNMATCHED_ROUTE, |path| path.as_str());
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = %route,
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests;
