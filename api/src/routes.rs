//! The axum router and its handlers.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use marquee_ingest::{AnyLog, EventLog};
use marquee_schemas::json::{event_from_json, item_from_json};
use marquee_schemas::{EventKind, FieldError, Item, validate_id};
use marquee_stream_processor::catalogue::upsert_catalogue;
use marquee_stream_processor::telemetry::{StorageFigures, UNKNOWN_KIND};
use marquee_stream_processor::{
    Metrics, ProcessorHandle, QueryEngine, Recommendation, RecommendationQuery, Strategy,
};
use marquee_vector_store::{ItemTable, StateStore, VectorIndex};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

use crate::decode::{BodyFormat, Element, Rejection, beacon_format, body_format, elements};
use crate::error::{ApiError, CorruptRecord, RejectionReason};
use crate::guard::{self, Guard};

/// The OpenAPI document of every route, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Most items a recommendation, similar or trending list may hold.
pub const MAX_COUNT: usize = 100;

/// What a loaded node serves from.
#[derive(Clone, Debug)]
pub struct Services {
    pub log: AnyLog,
    pub store: StateStore,
    pub items: ItemTable,
    pub query: QueryEngine,
    pub processor: ProcessorHandle,
    pub index: VectorIndex,
    /// The node's data directory (the keys file, backups' source).
    pub data_dir: std::path::PathBuf,
    /// Per partition, the address of the node that applies it, where the configuration names
    /// one (nodes that split the partitions); empty on a node that applies every partition.
    pub owners: Arc<[Option<String>]>,
}

impl Services {
    /// Refuses a request about `stored_id` when another node applies the user's partition: only
    /// that node has the user's history and seen items (`docs/SCALING.md`).
    fn check_owner(&self, stored_id: &str) -> Result<(), ApiError> {
        let partition = marquee_schemas::partition_for_user(stored_id, self.log.partition_count());
        if self.processor.owns(partition) {
            return Ok(());
        }
        let owner = self.owners.get(partition as usize).cloned().flatten();
        Err(ApiError::Misdirected {
            message: format!(
                "user_id: this user's partition ({partition}) is served by {}; send the \
                 request there",
                owner.as_deref().unwrap_or("another node")
            ),
            owner,
        })
    }
}

/// Router state: the services once loaded, and the metrics from the start.
#[derive(Clone, Debug)]
pub struct AppState {
    pub services: Arc<OnceLock<Services>>,
    pub metrics: Arc<Metrics>,
    pub guard: Arc<Guard>,
    /// With pseudonymisation on, the key of the keyed hash that replaces user ids at the edge.
    pub pseudonym_key: Option<Arc<[u8; 32]>>,
    /// Origins whose pages may call the API from a browser (CORS); empty: none, `*`: any.
    pub cors_origins: Arc<[String]>,
}

impl AppState {
    fn services(&self) -> Result<&Services, ApiError> {
        self.services.get().ok_or(ApiError::NotReady)
    }

    /// Validates a user id from a request and returns the id it is stored under: itself, or
    /// with pseudonymisation on, its keyed hash (so the raw id never reaches the log or the
    /// state).
    fn stored_user_id(&self, user_id: &str) -> Result<String, ApiError> {
        check_path_id("user_id", user_id)?;
        Ok(self.pseudonym(user_id))
    }

    fn pseudonym(&self, user_id: &str) -> String {
        match &self.pseudonym_key {
            Some(key) => pseudonymise(key, user_id),
            None => user_id.to_owned(),
        }
    }
}

/// The pseudonym of `user_id` under `key`: `p_` and 32 hex digits of HMAC-SHA-256 (128 bits).
pub fn pseudonymise(key: &[u8; 32], user_id: &str) -> String {
    let hash = marquee_stream_processor::erasure_hash(key, user_id);
    let mut pseudonym = String::with_capacity(34);
    pseudonym.push_str("p_");
    for byte in &hash[..16] {
        pseudonym.push_str(&format!("{byte:02x}"));
    }
    pseudonym
}

/// Every route pattern, as the `route` label of the request metrics (initialised at start-up).
pub const ROUTES: [&str; 16] = [
    "/v1/events",
    guard::BEACON_ROUTE,
    "/v1/items",
    "/v1/items/{item_id}",
    "/v1/items/{item_id}/similar",
    "/v1/users/{user_id}",
    "/v1/users/{user_id}/export",
    "/v1/users/{user_id}/recommendations",
    "/v1/trending",
    "/v1/admin/processor",
    "/v1/admin/backups",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    // Requests that matched no route.
    "unmatched",
];

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    state.metrics.initialise_routes(ROUTES);
    Router::new()
        .route("/v1/events", post(post_events))
        .route(guard::BEACON_ROUTE, post(post_beacon))
        .route("/v1/items", post(post_items))
        .route("/v1/items/{item_id}", put(put_item).get(get_item))
        .route("/v1/items/{item_id}/similar", get(get_similar))
        .route("/v1/users/{user_id}", get(get_user).delete(delete_user))
        .route("/v1/users/{user_id}/export", get(get_export))
        .route(
            "/v1/users/{user_id}/recommendations",
            get(get_recommendations),
        )
        .route("/v1/trending", get(get_trending))
        .route(
            "/v1/admin/processor",
            get(get_processor).post(post_processor),
        )
        .route("/v1/admin/backups", post(post_backup))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Queries run on the async workers: a handler that panics answers 500 with the usual
        // error body (and is counted by the metrics layer outside), instead of a dropped
        // connection.
        .layer(CatchPanicLayer::custom(handler_panicked))
        .layer(DefaultBodyLimit::max(state.guard.limits().max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_oversized,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        // Outside the guard, so that its refusals (401, 429) carry the CORS headers a browser
        // needs to show them to the page; preflight requests are answered here.
        .layer(tower::util::option_layer(cors_layer(&state.cors_origins)))
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

/// The CORS layer for `origins` (see [`check_cors_origin`]); `None` when there are none.
pub fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Checks one configured CORS origin: `*`, or `scheme://host[:port]` as a browser sends it in
/// its `Origin` header (no path, no trailing slash).
pub fn check_cors_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && !rest.contains('/')
            && HeaderValue::from_str(origin).is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "cors.allowed_origins: {origin:?} is not an origin; write scheme://host[:port], \
             such as https://app.example.com, or * for any"
        ))
    }
}

/// The span of one request: its id, method and path, in every log line emitted while serving it.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Decrements the in-flight gauge when a request ends, also when its connection drops first.
struct InFlight(prometheus::IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The `reason` of `marquee_http_requests_rejected_total` for a refused request: the one its
/// [`ApiError`] set, else (a refusal of axum's own extractors) the one its status implies.
fn rejection_reason(response: &Response) -> Option<&'static str> {
    if let Some(RejectionReason(reason)) = response.extensions().get::<RejectionReason>() {
        return Some(reason);
    }
    match response.status().as_u16() {
        401 | 403 => Some("auth"),
        429 => Some("rate_limit"),
        413 | 414 | 431 => Some("size"),
        400 | 405 | 415 | 422 => Some("validation"),
        _ => None,
    }
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let started = Instant::now();
    state.metrics.http_in_flight.inc();
    let _in_flight = InFlight(state.metrics.http_in_flight.clone());
    let response = next.run(request).await;
    let status = response.status();
    let status_class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .http_request_duration
        .with_label_values(&[route.as_str(), status_class])
        .observe(started.elapsed().as_secs_f64());
    if let Some(CorruptRecord(db)) = response.extensions().get::<CorruptRecord>() {
        state.metrics.corrupt_records.with_label_values(&[db]).inc();
    }
    if let Some(reason) = rejection_reason(&response) {
        state
            .metrics
            .http_rejected
            .with_label_values(&[reason])
            .inc();
    }
    response
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

/// Server time, milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// How long the body of a refused oversized request is read and dropped, at most.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// The largest declared body that is read and dropped rather than left unread.
const LINGER_BYTES: u64 = 64 * 1024 * 1024;

/// Refuses a request whose declared body length is over the limit with a 413 that names the
/// body, after reading and dropping the body (up to [`LINGER_BYTES`], for at most [`LINGER`]).
/// A connection closed with a body still unread is reset by the kernel, and a client still
/// writing would see a broken pipe instead of the 413 (as nginx's lingering close avoids).
/// Bodies without a declared length are limited while they are read (`DefaultBodyLimit`).
async fn refuse_oversized(State(state): State<AppState>, request: Request, next: Next) -> Response {
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

fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                message: format!("body: larger than {limit} bytes"),
            }
        } else {
            ApiError::bad_request("unreadable_body", format!("body: {rejection}"))
        }
    })
}

/// Reads a whole body into its elements: refuses it (and so appends nothing) when its content
/// type, size, framing or element count is wrong.
fn body_elements(
    state: &AppState,
    format: BodyFormat,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<Element>, ApiError> {
    let body = read_body(body, state.guard.limits().max_body_bytes)?;
    elements(format, &body)
}

/// Decodes each element on its own: the valid ones, and a rejection (reported to `on_reject`
/// too) for each invalid one.
fn decode_each<T>(
    elements: &[Element],
    mut decode: impl FnMut(&Value) -> Result<T, FieldError>,
    mut on_reject: impl FnMut(&Element),
) -> (Vec<T>, Vec<Rejection>) {
    let mut decoded = Vec::with_capacity(elements.len());
    let mut rejected = Vec::new();
    for (index, element) in elements.iter().enumerate() {
        match element.as_ref().map_err(Clone::clone).and_then(&mut decode) {
            Ok(value) => decoded.push(value),
            Err(error) => {
                on_reject(element);
                rejected.push(Rejection::new(index, &error));
            }
        }
    }
    (decoded, rejected)
}

/// `POST /v1/events`: validate each event, append the valid ones durably, then answer 202.
async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let format = body_format(&headers)?;
    ingest_events(&state, format, body).await
}

/// `POST /v1/events/beacon?key=KEY`: the same ingest for `navigator.sendBeacon`, which cannot
/// set headers and, cross-origin, sends only simple content types: the body is NDJSON under
/// `text/plain`, and the key (ingest scope only) is a query parameter, which the guard checks.
async fn post_beacon(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let format = beacon_format(&headers)?;
    ingest_events(&state, format, body).await
}

async fn ingest_events(
    state: &AppState,
    format: BodyFormat,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let elements = body_elements(state, format, body)?;
    let now = now_ms();
    let (accepted, rejected) = decode_each(
        &elements,
        |value| {
            let mut event = event_from_json(value, now, || uuid::Uuid::now_v7().to_string())?;
            if state.pseudonym_key.is_some() {
                event.user_id = state.pseudonym(&event.user_id);
            }
            // The history of an erased user (a backfill, a client's old queue) does not come
            // back: events dated at or before the user's erasure are refused.
            match services.processor.erased_at(&event.user_id) {
                Some(erased_ms) if event.timestamp <= erased_ms => Err(FieldError::new(
                    "user_id",
                    format!(
                        "this user was erased at {erased_ms} ms since the epoch; events dated \
                         before the erasure are refused"
                    ),
                )),
                _ => Ok(event),
            }
        },
        |element| {
            let (kind, reason) = match element {
                Ok(value) => (
                    value
                        .get("kind")
                        .and_then(Value::as_str)
                        .and_then(EventKind::parse)
                        .map_or(UNKNOWN_KIND, EventKind::as_str),
                    "invalid",
                ),
                Err(_) => (UNKNOWN_KIND, "malformed"),
            };
            state
                .metrics
                .events_rejected
                .with_label_values(&[kind, reason])
                .inc();
        },
    );

    let body = |accepted_count: usize| json!({"accepted": accepted_count, "rejected": rejected});
    if accepted.is_empty() {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body(0))).into_response());
    }
    let kinds: Vec<EventKind> = accepted.iter().map(|event| event.kind).collect();
    let count = accepted.len();
    let outcome = services.log.append(accepted).await;
    let (counter, reason) = match &outcome {
        Ok(_) => (&state.metrics.events_accepted, None),
        Err(_) => (&state.metrics.events_rejected, Some("unavailable")),
    };
    for kind in kinds {
        match reason {
            Some(reason) => counter.with_label_values(&[kind.as_str(), reason]).inc(),
            None => counter.with_label_values(&[kind.as_str()]).inc(),
        }
    }
    outcome.map_err(|error| ApiError::Unavailable {
        message: format!("the event log cannot take events now: {error}"),
    })?;
    Ok((StatusCode::ACCEPTED, Json(body(count))).into_response())
}

/// Parses a list-length parameter.
fn parse_count(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    match params.get("count") {
        None => Ok(10),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|count| (1..=MAX_COUNT).contains(count))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("count: must be a whole number from 1 to {MAX_COUNT}, got {text:?}"),
                )
            }),
    }
}

fn reject_unknown_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "{unknown}: unknown query parameter, expected one of {}",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn check_path_id(field: &str, id: &str) -> Result<(), ApiError> {
    validate_id(field, id)
        .map_err(|error| ApiError::bad_request("invalid_parameter", error.to_string()))
}

/// `GET /v1/users/{user_id}/recommendations`.
async fn get_recommendations(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<RecommendationsBody>, ApiError> {
    let services = state.services()?;
    let stored_id = state.stored_user_id(&user_id)?;
    services.check_owner(&stored_id)?;
    reject_unknown_params(&params, &["count", "exclude_seen", "genre", "exclude"])?;
    let count = parse_count(&params)?;
    let exclude_seen = match params.get("exclude_seen").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("exclude_seen: must be true or false, got {other:?}"),
            ));
        }
    };
    let genre = params
        .get("genre")
        .map(|genre| genre.trim().to_owned())
        .filter(|genre| !genre.is_empty());
    let exclude: Vec<String> = params
        .get("exclude")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if exclude.len() > 1000 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "exclude: at most 1000 item ids",
        ));
    }
    let query = RecommendationQuery {
        user_id: stored_id,
        count,
        exclude_seen,
        genre,
        exclude,
    };
    // On the async worker, not `spawn_blocking`: a query's work is bounded (about 100 µs of
    // ranking and two RocksDB reads served from the block cache), and handing it to the
    // blocking pool cost two thread switches per request, 14% of a serving node's CPU.
    let (strategy, items) = services.query.recommend(&query)?;
    Ok(Json(RecommendationsBody {
        user_id,
        strategy,
        items,
    }))
}

/// The body of `GET /v1/users/{user_id}/recommendations`, serialised straight to bytes (through
/// a `serde_json::Value` it cost 6% of a serving node's CPU).
#[derive(serde::Serialize)]
struct RecommendationsBody {
    user_id: String,
    strategy: Strategy,
    items: Vec<Recommendation>,
}

/// `GET /v1/items/{item_id}/similar`.
async fn get_similar(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    reject_unknown_params(&params, &["count"])?;
    let count = parse_count(&params)?;
    // Bounded work from memory, on the async worker (see `get_recommendations`).
    let items = services
        .query
        .similar(&item_id, count)
        .ok_or_else(|| ApiError::not_found(format!("item_id: no item {item_id:?}")))?;
    Ok(Json(json!({"item_id": item_id, "items": items})))
}

/// `GET /v1/trending`.
async fn get_trending(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    reject_unknown_params(&params, &["count", "genre"])?;
    let count = parse_count(&params)?;
    let genre = params.get("genre").map(String::as_str);
    Ok(Json(
        json!({"items": services.query.trending(count, genre)}),
    ))
}

/// `GET /v1/users/{user_id}`: what the model knows of a user.
async fn get_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    let lookup_id = state.stored_user_id(&user_id)?;
    services.check_owner(&lookup_id)?;
    let engine = services.query.clone();
    let mut summary = tokio::task::spawn_blocking(move || engine.user_summary(&lookup_id))
        .await
        .map_err(ApiError::internal)??
        .ok_or_else(|| ApiError::not_found(format!("user_id: no events for user {user_id:?}")))?;
    summary.user_id = user_id;
    Ok(Json(json!(summary)))
}

/// `GET /v1/users/{user_id}/export`: everything stored about a user — their events as the log
/// holds them, their state, seen items and applied event ids — as JSON (right of access).
async fn get_export(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?.clone();
    let lookup_id = state.stored_user_id(&user_id)?;
    services.check_owner(&lookup_id)?;
    let export = tokio::task::spawn_blocking(move || export_user(&services, &lookup_id))
        .await
        .map_err(ApiError::internal)??;
    let mut export = export
        .ok_or_else(|| ApiError::not_found(format!("user_id: nothing stored for {user_id:?}")))?;
    export["user_id"] = json!(user_id);
    Ok(Json(export))
}

fn export_user(services: &Services, user_id: &str) -> Result<Option<Value>, ApiError> {
    let entries = services.log.user_entries(user_id)?;
    let user = services.store.user(user_id)?;
    if entries.is_empty() && user.is_none() {
        return Ok(None);
    }
    let seen = services.store.seen_with(user_id, user.as_ref())?;
    let applied = services.store.applied_events(user_id)?;
    let table = services.items.read();
    let item_id = |number: u32| table.id(number).map(|id| id.to_string());
    let events: Vec<Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "partition": entry.partition,
                "offset": entry.offset,
                "append_ms": entry.append_ms,
                "event": entry.event,
            })
        })
        .collect();
    let state = user.map(|user| {
        json!({
            "event_count": user.event_count,
            "last_timestamp": user.last_timestamp,
            "vector": user.vector,
            "history": user.history.iter().map(|entry| json!({
                "item_id": item_id(entry.item),
                "weight": entry.weight,
                "timestamp": entry.timestamp,
            })).collect::<Vec<_>>(),
        })
    });
    let seen: Vec<Value> = seen
        .iter()
        .map(|(number, entry)| {
            json!({
                "item_id": item_id(*number),
                "interactions": entry.interactions,
                "last_weight": entry.last_weight,
                "last_timestamp": entry.last_timestamp,
            })
        })
        .collect();
    let applied: Vec<Value> = applied
        .iter()
        .map(|(event_id, applied_ms)| json!({"event_id": event_id, "applied_ms": applied_ms}))
        .collect();
    Ok(Some(json!({
        "user_id": user_id,
        "exported_ms": now_ms(),
        "events": events,
        "state": state,
        "seen": seen,
        "applied_events": applied,
    })))
}

/// `DELETE /v1/users/{user_id}`: erases the user (right to erasure; see
/// `marquee_stream_processor::Processor::erase`). Answers once the erasure is durable.
async fn delete_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    let stored_id = state.stored_user_id(&user_id)?;
    services.check_owner(&stored_id)?;
    let erasure = services
        .processor
        .erase_user(&stored_id)
        .await
        .map_err(|error| ApiError::Unavailable {
            message: format!("the erasure did not complete, retry: {error}"),
        })?;
    if erasure.log_events == 0 && !erasure.had_state {
        return Err(ApiError::not_found(format!(
            "user_id: nothing stored for {user_id:?}"
        )));
    }
    Ok(Json(json!({"user_id": user_id, "erased": erasure})))
}

/// Stores catalogue entries durably, then publishes them to the item table.
async fn upsert_items(services: &Services, items: Vec<Item>) -> Result<(), ApiError> {
    let store = services.store.clone();
    let table = services.items.clone();
    tokio::task::spawn_blocking(move || upsert_catalogue(&store, &table, items))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| ApiError::Unavailable {
            message: format!("the catalogue cannot be written now: {error}"),
        })
}

fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let format = body_format(headers)?;
    if format != crate::decode::BodyFormat::Json {
        return Err(ApiError::UnsupportedMediaType {
            message: "content-type: send application/json".into(),
        });
    }
    let body = read_body(body, state.guard.limits().max_body_bytes)?;
    serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request("malformed_json", format!("body: malformed JSON: {error}"))
    })
}

/// `PUT /v1/items/{item_id}`: create or replace one catalogue entry.
async fn put_item(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    let value = json_body(&state, &headers, body)?;
    let item = item_from_json(&value, Some(&item_id)).map_err(|error| ApiError::Unprocessable {
        message: error.to_string(),
    })?;
    upsert_items(services, vec![item.clone()]).await?;
    Ok(Json(json!(item)))
}

/// `POST /v1/items`: bulk upsert; a JSON array (or NDJSON) of items.
async fn post_items(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let elements = body_elements(&state, body_format(&headers)?, body)?;
    let (items, rejected) = decode_each(&elements, |value| item_from_json(value, None), |_| {});
    if items.is_empty() {
        let body = json!({"upserted": 0, "rejected": rejected});
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    let count = items.len();
    upsert_items(services, items).await?;
    Ok(Json(json!({"upserted": count, "rejected": rejected})).into_response())
}

/// `GET /v1/items/{item_id}`.
async fn get_item(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    let table = services.items.read();
    let number = table
        .number(&item_id)
        .ok_or_else(|| ApiError::not_found(format!("item_id: no item {item_id:?}")))?;
    let catalogue = table.catalogue(number);
    Ok(Json(json!({
        "item_id": item_id,
        "title": catalogue.and_then(|item| item.title.clone()),
        "genres": catalogue.map(|item| item.genres.clone()).unwrap_or_default(),
        "year": catalogue.and_then(|item| item.year),
        "tags": catalogue.map(|item| item.tags.clone()).unwrap_or_default(),
        "in_catalogue": catalogue.is_some(),
        "event_count": table.event_count(number),
    })))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready once the state is loaded and the first index is built.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.services.get() {
        Some(services) => {
            let ends = services.log.end_offsets().unwrap_or_default();
            let lag: u64 = ends
                .iter()
                .zip(services.processor.lag_offsets(&ends))
                .map(|(end, committed)| end.saturating_sub(committed))
                .sum();
            Json(json!({
                "status": "ready",
                "processor_lag_events": lag,
                "processor_failing": services.processor.is_failing(),
            }))
            .into_response()
        }
        None => ApiError::NotReady.into_response(),
    }
}

/// `GET /metrics`: sets the gauges that describe state (storage sizes, index age, offsets and
/// lag) and renders every metric.
async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(services) = state.services.get() {
        let services = services.clone();
        let metrics = state.metrics.clone();
        // RocksDB property reads take its mutexes: off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(log) = services.log.as_embedded() {
                metrics.set_storage("log", storage_figures(|name| log.property_sum(name)));
            }
            metrics.set_storage(
                "state",
                storage_figures(|name| services.store.property_sum(name)),
            );
            metrics.set_index(&services.index.stats());
            // Read here rather than trusted to the processor loop, so a stuck processor shows
            // as a growing lag.
            if let Ok(ends) = services.log.end_offsets() {
                metrics.set_offsets(&ends, &services.processor.lag_offsets(&ends));
            }
        })
        .await;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The RocksDB figures of one database, from its integer properties.
fn storage_figures(property: impl Fn(&str) -> u64) -> StorageFigures {
    StorageFigures {
        live_data_bytes: property("rocksdb.estimate-live-data-size"),
        pending_compaction_bytes: property("rocksdb.estimate-pending-compaction-bytes"),
        sst_files_bytes: property("rocksdb.total-sst-files-size"),
    }
}

/// The processor's state, for `GET /v1/admin/processor` and the answer to a change.
fn processor_status(services: &Services) -> Value {
    let ends = services.log.end_offsets().unwrap_or_default();
    let committed = services.processor.committed_offsets();
    let lag: u64 = ends
        .iter()
        .zip(&committed)
        .map(|(end, committed)| end.saturating_sub(*committed))
        .sum();
    json!({
        "paused": services.processor.is_paused(),
        "failing": services.processor.is_failing(),
        "lag_events": lag,
        "log_end_offsets": ends,
        "committed_offsets": committed,
    })
}

/// `GET /v1/admin/processor`: paused or running, failing or not, and the lag per partition.
async fn get_processor(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(processor_status(state.services()?)))
}

/// `POST /v1/admin/processor` with `{"paused": true|false}`: pauses the processor (ingest goes
/// on, the lag grows) or resumes it. Not persisted: a restarted node runs its processor.
async fn post_processor(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    let value = json_body(&state, &headers, body)?;
    let object = value.as_object().ok_or_else(|| ApiError::Unprocessable {
        message: "body: expected an object such as {\"paused\": true}".into(),
    })?;
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "paused") {
        return Err(ApiError::Unprocessable {
            message: format!("{unknown}: unknown field (expected only \"paused\")"),
        });
    }
    let paused = object
        .get("paused")
        .ok_or_else(|| ApiError::Unprocessable {
            message: "paused: required (true or false)".into(),
        })?
        .as_bool()
        .ok_or_else(|| ApiError::Unprocessable {
            message: "paused: expected true or false".into(),
        })?;
    services.processor.set_paused(paused);
    tracing::info!(paused, "processor pause changed by an operator");
    Ok(Json(processor_status(services)))
}

/// `POST /v1/admin/backups` with `{"dir": "/absolute/path"}`: an online, consistent backup of
/// the state and the log into a new directory on the server (see [`crate::backup`]).
async fn post_backup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let services = state.services()?.clone();
    let value = json_body(&state, &headers, body)?;
    let object = value.as_object().ok_or_else(|| ApiError::Unprocessable {
        message: "body: expected an object such as {\"dir\": \"/var/backups/marquee/1\"}".into(),
    })?;
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "dir") {
        return Err(ApiError::Unprocessable {
            message: format!("{unknown}: unknown field (expected only \"dir\")"),
        });
    }
    let dir = object
        .get("dir")
        .and_then(Value::as_str)
        .filter(|dir| !dir.is_empty())
        .ok_or_else(|| ApiError::Unprocessable {
            message: "dir: required, an absolute path on the server".into(),
        })?;
    let dir = std::path::PathBuf::from(dir);
    let started = Instant::now();
    let manifest = tokio::task::spawn_blocking(move || {
        crate::backup::create(&services, &services.data_dir, &dir).map(|manifest| (manifest, dir))
    })
    .await
    .map_err(ApiError::internal)?;
    match manifest {
        Ok((manifest, dir)) => {
            tracing::info!(dir = %dir.display(), bytes = manifest.bytes, seconds = started.elapsed().as_secs_f64(), "backup taken");
            Ok((
                StatusCode::CREATED,
                Json(json!({"dir": dir, "manifest": manifest})),
            )
                .into_response())
        }
        Err(
            error @ (crate::backup::BackupError::NotEmpty(_)
            | crate::backup::BackupError::NotAbsolute(_)),
        ) => Err(ApiError::Unprocessable {
            message: error.to_string(),
        }),
        Err(error) => Err(ApiError::Unavailable {
            message: format!("backup failed: {error}"),
        }),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
