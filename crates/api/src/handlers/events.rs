//! `POST /v1/events` and its beacon form: validate each event, append the valid ones durably,
//! then answer 202.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use marquee_ingest::EventLog;
use marquee_schemas::json::event_from_json;
use marquee_schemas::{Event, EventKind, FieldError};
use serde::Serialize;
use serde_json::Value;

use crate::audit::Actor;
use crate::decode::{
    BodyFormat, Rejection, beacon_format, body_format, decode_each, elements, read_body,
};
use crate::error::{ApiError, ErrorBody};
use crate::guard::Granted;
use crate::keys::Scope;
use crate::metrics::UNKNOWN_KIND;
use crate::state::AppState;
use crate::viewer::Viewer;

/// The answer to an ingest request: how many events were appended, and each refused one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResult {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
}

/// Ingest events: one JSON object, a JSON array, or NDJSON (`application/x-ndjson`); at most
/// 10,000 events or 10 MiB
///
/// Each event is validated on its own (`event_id` and `timestamp` may be left out: the server
/// assigns a UUIDv7 and its time); the valid ones are appended, and the answer is 202 once they
/// are durable. A body that cannot be read as a whole appends nothing.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body(
        description = "A JSON object, a JSON array, or one JSON object a line (NDJSON)",
        content((Vec<Event> = "application/json"), (String = "application/x-ndjson"))
    ),
    responses(
        (status = 202, description = "The valid events are durable", body = IngestResult),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 413, description = "Body over 10 MiB or 10,000 events", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody),
        (status = 422, description = "No event was valid", body = IngestResult),
        (status = 503, description = "The log cannot take events now", body = ErrorBody),
    ),
    security(("bearer" = ["ingest"]), ("apiKey" = ["ingest"]))
)]
pub async fn post_events(
    State(state): State<AppState>,
    viewer: Option<Extension<Viewer>>,
    actor: Option<Extension<Actor>>,
    granted: Option<Extension<Granted>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let format = body_format(&headers)?;
    let viewer = viewer.map(|Extension(Viewer(user))| user);
    let capped = capped_as(actor, granted);
    ingest_events(&state, format, body, viewer.as_deref(), capped.as_deref()).await
}

/// Who the per-key caps count a request against ([`crate::caps`]): its key, its OIDC subject
/// or the viewer tokens; `None` for a caller that may write the catalogue, and with auth off.
fn capped_as(
    actor: Option<Extension<Actor>>,
    granted: Option<Extension<Granted>>,
) -> Option<String> {
    if granted.is_some_and(|Extension(granted)| granted.allows(Scope::Catalogue)) {
        return None;
    }
    match actor?.0 {
        Actor::Key(id) => Some(id),
        Actor::Oidc(subject) => Some(format!("oidc:{subject}")),
        Actor::Viewer => Some("viewer tokens".to_owned()),
        Actor::Anonymous => None,
    }
}

/// Ingest events from `navigator.sendBeacon`: NDJSON under `text/plain`
///
/// `sendBeacon` cannot set headers and, cross-origin, sends only simple content types: the body
/// is NDJSON under `text/plain`, and when auth is on the key goes in the `key` query parameter
/// and must have the ingest scope only (403 otherwise).
#[utoipa::path(
    post,
    path = "/v1/events/beacon",
    tag = "events",
    params(("key" = Option<String>, Query, description = "An API key whose one scope is ingest")),
    request_body(content = String, content_type = "text/plain"),
    responses(
        (status = 202, description = "The valid events are durable", body = IngestResult),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No valid key in `key`", body = ErrorBody),
        (status = 403, description = "The key can do more than ingest", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody),
        (status = 422, description = "No event was valid", body = IngestResult),
        (status = 503, description = "The log cannot take events now", body = ErrorBody),
    ),
    security(("beaconKey" = ["ingest"]))
)]
pub async fn post_beacon(
    State(state): State<AppState>,
    actor: Option<Extension<Actor>>,
    granted: Option<Extension<Granted>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let format = beacon_format(&headers)?;
    let capped = capped_as(actor, granted);
    ingest_events(&state, format, body, None, capped.as_deref()).await
}

/// Ingests a body's events; with a viewer token's `viewer`, only that user's; under the caps of
/// `capped` (a key, see [`crate::caps`]) unless `None`.
async fn ingest_events(
    state: &AppState,
    format: BodyFormat,
    body: Result<Bytes, BytesRejection>,
    viewer: Option<&str>,
    capped: Option<&str>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let body = read_body(body, state.guard.limits().max_body_bytes)?;
    let elements = elements(format, &body)?;
    let now = marquee_schemas::now_ms();
    let caps = state.guard.caps();
    // New item ids admitted by this request (each counts once), and whether the last refusal
    // was a cap's (for the metrics' reason).
    let mut new_items: std::collections::HashSet<String> = std::collections::HashSet::new();
    let refused_by_cap = std::cell::Cell::new(false);
    let (accepted, rejected) = decode_each(
        &elements,
        |value| {
            let mut event = event_from_json(value, now, || uuid::Uuid::now_v7().to_string())?;
            if let Some(viewer) = viewer.filter(|viewer| *viewer != event.user_id) {
                return Err(FieldError::new(
                    "user_id",
                    format!("the viewer token is for {viewer:?}; it sends that user's events only"),
                ));
            }
            if state.pseudonym_key.is_some() {
                event.user_id = state.pseudonym(&event.user_id);
            }
            // The history of an erased user (a backfill, a client's old queue) does not come
            // back: events dated at or before the user's erasure are refused. The message does
            // not give the erasure's time (any ingest key reads it; the audit log has it).
            if let Some(erased_ms) = services.processor.erased_at(&event.user_id)
                && event.timestamp <= erased_ms
            {
                return Err(FieldError::new(
                    "user_id",
                    "this user's data was erased; events dated before the erasure are refused",
                ));
            }
            if let Some(key) = capped {
                let unknown = !event.item_id.is_empty()
                    && !new_items.contains(&event.item_id)
                    && services.items.read().number(&event.item_id).is_none();
                let admitted = caps.admit(key, &event.user_id, unknown);
                refused_by_cap.set(admitted.is_err());
                admitted?;
                if unknown {
                    new_items.insert(event.item_id.clone());
                }
            }
            Ok(event)
        },
        |element| {
            let (kind, reason) = match element {
                Ok(value) => (
                    value
                        .get("kind")
                        .and_then(Value::as_str)
                        .and_then(EventKind::parse)
                        .map_or(UNKNOWN_KIND, EventKind::as_str),
                    if refused_by_cap.replace(false) {
                        "capped"
                    } else {
                        "invalid"
                    },
                ),
                Err(_) => (UNKNOWN_KIND, "malformed"),
            };
            state
                .http_metrics
                .events_rejected
                .with_label_values(&[kind, reason])
                .inc();
        },
    );
    if accepted.is_empty() {
        let body = IngestResult {
            accepted: 0,
            rejected,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    let kinds: Vec<EventKind> = accepted.iter().map(|event| event.kind).collect();
    let count = accepted.len();
    let outcome = services.log.append(accepted).await;
    let metrics = &state.http_metrics;
    for kind in kinds {
        match &outcome {
            Ok(_) => metrics
                .events_accepted
                .with_label_values(&[kind.as_str()])
                .inc(),
            Err(_) => metrics
                .events_rejected
                .with_label_values(&[kind.as_str(), "unavailable"])
                .inc(),
        }
    }
    outcome?;
    let body = IngestResult {
        accepted: count,
        rejected,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
