//! A user's data: `GET /v1/users/{user_id}` (what the model knows), its export (right of
//! access) and its erasure (right to erasure).

use axum::Json;
use axum::extract::{Path, State};
use marquee_ingest::EventLog;
use marquee_stream_processor::{Erasure, UserSummary};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Services};

/// What the model knows of a user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub user_id: String,
    /// Events applied (each `event_id` once).
    pub event_count: u64,
    pub last_timestamp: i64,
    /// Every item the user interacted with, sorted.
    pub seen_items: Vec<String>,
    /// The model's history window, newest first.
    pub recent: Vec<RecentView>,
}

/// One entry of a user's recent history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecentView {
    pub item_id: String,
    /// The event's weight in the model (negative for dislikes and low ratings).
    pub weight: f32,
    pub timestamp: i64,
}

impl UserView {
    fn new(user_id: String, summary: UserSummary) -> UserView {
        UserView {
            user_id,
            event_count: summary.event_count,
            last_timestamp: summary.last_timestamp,
            seen_items: summary.seen_items,
            recent: summary
                .recent
                .into_iter()
                .map(|entry| RecentView {
                    item_id: entry.item_id,
                    weight: entry.weight,
                    timestamp: entry.timestamp,
                })
                .collect(),
        }
    }
}

/// What an erasure removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureView {
    /// Events of the user found in the log and erased from it (or, on a log that cannot erase,
    /// left to the erasure list).
    pub log_events: usize,
    /// Of those, events the model had applied, whose contributions were taken back.
    pub applied_events: usize,
    /// Whether the user had state (counts, seen items, history).
    pub had_state: bool,
    /// Items whose popularity, counts and co-occurrence lists changed.
    pub items_adjusted: usize,
    /// Whether the log itself erased the events (false: the backend keeps history; replay and
    /// the processor skip them through the erasure list).
    pub log_erased: bool,
    /// Time of the erasure, ms since the Unix epoch.
    pub erased_ms: i64,
}

impl From<Erasure> for ErasureView {
    fn from(erasure: Erasure) -> ErasureView {
        ErasureView {
            log_events: erasure.log_events,
            applied_events: erasure.applied_events,
            had_state: erasure.had_state,
            items_adjusted: erasure.items_adjusted,
            log_erased: erasure.log_erased,
            erased_ms: erasure.erased_ms,
        }
    }
}

/// The answer to an erasure.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Erased {
    pub user_id: String,
    pub erased: ErasureView,
}

/// What the model knows of a user: event count, seen items, recent history
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}",
    tag = "users",
    params(("user_id" = String, Path)),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No events for this user", body = ErrorBody),
        (status = 421, description = "Another node serves this user", body = ErrorBody),
    ),
    security(("bearer" = ["users"]), ("apiKey" = ["users"]))
)]
pub async fn get_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let services = state.services()?;
    let lookup_id = state.stored_user_id(&user_id)?;
    services.check_owner(&lookup_id)?;
    let engine = services.query.clone();
    let summary = tokio::task::spawn_blocking(move || engine.user_summary(&lookup_id))
        .await
        .map_err(ApiError::internal)??
        .ok_or_else(|| ApiError::not_found(format!("user_id: no events for user {user_id:?}")))?;
    Ok(Json(UserView::new(user_id, summary)))
}

/// Everything stored about the user (right of access)
///
/// Events as the log holds them (in the form a client sends), state, seen items, applied event
/// ids. It runs as a job (see `POST /v1/admin/backups`): with `Prefer: respond-async`, or past
/// most of the request timeout, the answer is 202 and `GET /v1/exports/{id}` holds the export.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/export",
    tag = "users",
    params(("user_id" = String, Path)),
    responses(
        (status = 200, description = "The export", body = Object),
        (status = 202, description = "The export runs on as a job (`Prefer: respond-async`, or past most of the request timeout): poll `GET /v1/exports/{id}`", body = crate::jobs::JobView),
        (status = 404, description = "Nothing stored for this user", body = ErrorBody),
        (status = 421, description = "Another node serves this user", body = ErrorBody),
    ),
    security(("bearer" = ["users"]), ("apiKey" = ["users"]))
)]
pub async fn get_export(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(user_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let services = state.services()?.clone();
    let lookup_id = state.stored_user_id(&user_id)?;
    services.check_owner(&lookup_id)?;
    let subject = services.processor.subject(&lookup_id);
    let job = state.jobs.start("export", subject, async move {
        tokio::task::spawn_blocking(move || export_user(&services, &lookup_id))
            .await
            .map_err(ApiError::internal)??
            .ok_or_else(|| ApiError::not_found("user_id: nothing stored for this user"))
    });
    let status = axum::http::StatusCode::OK;
    crate::handlers::admin::answer_job(&state, &headers, &job, status, |mut export| {
        export["user_id"] = json!(user_id);
        export
    })
    .await
}

/// An export's job: how an export answered with 202 went, and the export once it succeeded
#[utoipa::path(
    get,
    path = "/v1/exports/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The job's id, from a 202 answer")),
    responses(
        (status = 200, description = "Running, succeeded (with the export in `result`) or failed; `410 gone` in `error` once the user was erased", body = crate::jobs::JobView),
        (status = 404, description = "No such export job (the node keeps the last 100 jobs, in memory)", body = ErrorBody),
    ),
    security(("bearer" = ["users"]), ("apiKey" = ["users"]))
)]
pub async fn get_export_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::jobs::JobView>, ApiError> {
    state.jobs.find(&id, Some("export")).map(Json)
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
                "event": marquee_schemas::json::event_to_json(&entry.event),
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
        "exported_ms": marquee_schemas::now_ms(),
        "events": events,
        "state": state,
        "seen": seen,
        "applied_events": applied,
    })))
}

/// Erase the user (right to erasure)
///
/// Their events from the log, their state, seen items and applied event ids, and their
/// contribution to item popularity, counts and co-occurrence; learned item vectors keep their
/// influence until the state is rebuilt from the log. Answers once durable. It runs as a job
/// (see `POST /v1/admin/backups`), named by the user's keyed hash, never the id.
#[utoipa::path(
    delete,
    path = "/v1/users/{user_id}",
    tag = "users",
    params(("user_id" = String, Path)),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 202, description = "The erasure runs on as a job (`Prefer: respond-async`, or past most of the request timeout): poll `GET /v1/erasures/{id}`", body = crate::jobs::JobView),
        (status = 404, description = "Nothing stored for this user", body = ErrorBody),
        (status = 421, description = "Another node serves this user", body = ErrorBody),
        (status = 503, description = "The erasure did not complete; retry", body = ErrorBody),
    ),
    security(("bearer" = ["users"]), ("apiKey" = ["users"]))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(user_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let services = state.services()?;
    let stored_id = state.stored_user_id(&user_id)?;
    services.check_owner(&stored_id)?;
    let processor = services.processor.clone();
    let subject = processor.subject(&stored_id);
    let named = user_id.clone();
    // The job keeps what was erased, never who: jobs are listed to operators.
    let jobs = state.jobs.clone();
    let job = state.jobs.start("erasure", subject.clone(), async move {
        let erasure = processor.erase_user(&stored_id).await?;
        // The user's exports held in memory go with the rest.
        jobs.forget_exports(&subject);
        if erasure.log_events == 0 && !erasure.had_state {
            return Err(ApiError::not_found("user_id: nothing stored for this user"));
        }
        serde_json::to_value(ErasureView::from(erasure)).map_err(ApiError::internal)
    });
    let status = axum::http::StatusCode::OK;
    crate::handlers::admin::answer_job(
        &state,
        &headers,
        &job,
        status,
        |erased| json!({"user_id": named, "erased": erased}),
    )
    .await
}

/// An erasure's job: how an erasure answered with 202 ended
#[utoipa::path(
    get,
    path = "/v1/erasures/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The job's id, from a 202 answer")),
    responses(
        (status = 200, description = "Running, succeeded (with what was erased) or failed", body = crate::jobs::JobView),
        (status = 404, description = "No such erasure job (the node keeps the last 100 jobs, in memory)", body = ErrorBody),
    ),
    security(("bearer" = ["users"]), ("apiKey" = ["users"]))
)]
pub async fn get_erasure(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::jobs::JobView>, ApiError> {
    state.jobs.find(&id, Some("erasure")).map(Json)
}
