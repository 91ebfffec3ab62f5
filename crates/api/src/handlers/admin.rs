//! Operators' routes: the processor's state and pause, online backups (as jobs, see
//! [`crate::jobs`]).

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use marquee_ingest::EventLog;
use marquee_stream_processor::backup::{self, Manifest};
use serde::Serialize;
use serde_json::Value;

use crate::decode::{json_body, object_of, typed_body};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{Job, JobView};
use crate::state::{AppState, Services};

/// The processor's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProcessorStatus {
    /// Paused by an operator: ingest goes on, the lag grows.
    pub paused: bool,
    /// The last batch failed (the processor retries).
    pub failing: bool,
    /// Events appended and not yet applied, all partitions.
    pub lag_events: u64,
    pub log_end_offsets: Vec<u64>,
    pub committed_offsets: Vec<u64>,
}

impl ProcessorStatus {
    pub(crate) fn of(services: &Services) -> ProcessorStatus {
        let ends = services.log.end_offsets().unwrap_or_default();
        let committed = services.processor.committed_offsets();
        let lag_events = ends
            .iter()
            .zip(&committed)
            .map(|(end, committed)| end.saturating_sub(*committed))
            .sum();
        ProcessorStatus {
            paused: services.processor.is_paused(),
            failing: services.processor.is_failing(),
            lag_events,
            log_end_offsets: ends,
            committed_offsets: committed,
        }
    }
}

/// The body of a pause or resume.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ProcessorChange {
    pub paused: bool,
}

/// The body of a backup request.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct BackupRequest {
    /// A new (absent or empty) directory inside the node's `backup_root`: a name (`2026-12-07`)
    /// or an absolute path under it.
    pub dir: String,
}

/// A backup taken.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackupTaken {
    pub dir: String,
    #[schema(value_type = Object)]
    pub manifest: Manifest,
}

/// The processor: paused, failing, lag and offsets per partition
#[utoipa::path(
    get,
    path = "/v1/admin/processor",
    tag = "admin",
    responses((status = 200, description = "The processor's state", body = ProcessorStatus)),
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn get_processor(
    State(state): State<AppState>,
) -> Result<Json<ProcessorStatus>, ApiError> {
    Ok(Json(ProcessorStatus::of(state.services()?)))
}

/// Pause or resume the processor
///
/// Ingest goes on while it is paused, and queries answer from the state as it was; not
/// persisted across restarts.
#[utoipa::path(
    post,
    path = "/v1/admin/processor",
    tag = "admin",
    request_body = ProcessorChange,
    responses(
        (status = 200, description = "The processor's new state", body = ProcessorStatus),
        (status = 422, description = "The body is not {\"paused\": true|false}", body = ErrorBody),
    ),
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn post_processor(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ProcessorStatus>, ApiError> {
    let services = state.services()?;
    let value = json_body(&headers, body, state.guard.limits().max_body_bytes)?;
    let object = object_of(&value, &["paused"], "{\"paused\": true}")?;
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
    Ok(Json(ProcessorStatus::of(services)))
}

/// Take an online, consistent backup into a new directory on the server
///
/// RocksDB checkpoints of the state and the log, and the data directory's keys (see
/// `docs/OPERATIONS.md`). It runs as a job: with `Prefer: respond-async`, or when it is still
/// running as the request's time runs out, the answer is 202 with the job to poll; the same
/// backup asked again while it runs joins that job.
#[utoipa::path(
    post,
    path = "/v1/admin/backups",
    tag = "admin",
    request_body = BackupRequest,
    responses(
        (status = 201, description = "The backup is on disk", body = BackupTaken),
        (status = 202, description = "The backup runs on as a job (`Location` names it)", body = JobView),
        (status = 422, description = "The directory is outside the node's backup_root, or not empty", body = ErrorBody),
        (status = 503, description = "The backup failed", body = ErrorBody),
    ),
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn post_backup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let services = state.services()?.clone();
    let value = json_body(&headers, body, state.guard.limits().max_body_bytes)?;
    let object = object_of(&value, &["dir"], "{\"dir\": \"2026-12-07\"}")?;
    let target = object
        .get("dir")
        .and_then(Value::as_str)
        .filter(|dir| !dir.is_empty())
        .ok_or_else(|| ApiError::Unprocessable {
            message: "dir: required, a new directory inside the node's backup_root".into(),
        })
        .and_then(|dir| backup_target(&services.backup_root, dir))?;
    let dir = target.display().to_string();
    let job = state.jobs.start("backup", dir.clone(), async move {
        let started = Instant::now();
        let manifest = tokio::task::spawn_blocking(move || {
            let source = backup::Source {
                log: &services.log,
                store: &services.store,
                processor: &services.processor,
                data_dir: &services.data_dir,
            };
            backup::create(source, &target)
        })
        .await
        .map_err(ApiError::internal)??;
        tracing::info!(
            dir,
            bytes = manifest.bytes,
            seconds = started.elapsed().as_secs_f64(),
            "backup taken"
        );
        serde_json::to_value(BackupTaken { dir, manifest }).map_err(ApiError::internal)
    });
    answer_job(&state, &headers, &job, StatusCode::CREATED, |body| body).await
}

/// The answer of a request that started (or joined) `job`: with `Prefer: respond-async`, 202
/// with the job at once (whatever its state); otherwise the operation's own answer (`status` and
/// its body passed through `finish`, or its error) when it ends within most of the request
/// timeout, else 202.
pub(crate) async fn answer_job(
    state: &AppState,
    headers: &HeaderMap,
    job: &Job,
    status: StatusCode,
    finish: impl FnOnce(Value) -> Value,
) -> Result<Response, ApiError> {
    let respond_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| preference.trim().eq_ignore_ascii_case("respond-async"));
    if !respond_async {
        // A margin under the request timeout, so the 202 goes out before the guard's 503 would.
        let wait = Duration::from_secs_f64(state.guard.limits().request_timeout_secs * 0.8);
        match job.wait(wait).await {
            Some(Ok(body)) => return Ok((status, Json(finish(body))).into_response()),
            Some(Err(error)) => return Err(error),
            None => {}
        }
    }
    let view = job.view(false);
    let location = view.url.clone();
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// One job: how a long operation (a backup) started by any request is going
#[utoipa::path(
    get,
    path = "/v1/admin/jobs/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The job's id, from a 202 answer")),
    responses(
        (status = 200, description = "The job: running, succeeded (with the operation's answer) or failed (with its error)", body = JobView),
        (status = 404, description = "No such job (the node keeps the last 100, in memory)", body = ErrorBody),
    ),
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    state.jobs.find(&id, None).map(Json)
}

/// The jobs this node ran since it started (the last 100), newest first
#[utoipa::path(
    get,
    path = "/v1/admin/jobs",
    tag = "admin",
    responses((status = 200, description = "The jobs, newest first", body = Vec<JobView>)),
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn list_jobs(State(state): State<AppState>) -> Json<Vec<JobView>> {
    Json(state.jobs.list())
}

/// Where a backup named `dir` goes: `dir` inside `root` when relative, `dir` itself when it is
/// an absolute path inside `root`; never outside it (no `..`), so an admin key cannot write
/// over the machine's files.
fn backup_target(root: &std::path::Path, dir: &str) -> Result<std::path::PathBuf, ApiError> {
    use std::path::Component;
    let path = std::path::Path::new(dir);
    let outside = || ApiError::Unprocessable {
        message: format!(
            "dir: {dir:?} is not inside the node's backup_root {}; name a new directory in \
             it, such as \"2026-12-07\"",
            root.display()
        ),
    };
    if path
        .components()
        .any(|component| matches!(component, Component::ParentDir))
    {
        return Err(outside());
    }
    let target = if path.is_absolute() {
        path.to_owned()
    } else {
        root.join(path)
    };
    if target == root || !target.starts_with(root) {
        return Err(outside());
    }
    Ok(target)
}

/// The body of a viewer token request.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The viewer the token is for.
    pub user_id: String,
    /// Its lifetime in seconds, 1 to 86,400 (default 3,600).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A viewer token minted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenMinted {
    /// Send it as the page's bearer key: `Authorization: Bearer mqv1.…`.
    pub token: String,
    pub user_id: String,
    /// When it stops working, in seconds since the Unix epoch.
    pub expires_secs: u64,
}

/// Mint a viewer token for one user
///
/// For a host site's backend: a short-lived token bound to `user_id` that a page sends as its
/// key. It opens that user's lists, assignments and summary, the catalogue's reads and search,
/// and `POST /v1/events` for that user's events only (`docs/OPERATIONS.md`, "Viewer tokens";
/// a host may also sign tokens itself with `<data-dir>/viewer.key`).
#[utoipa::path(
    post,
    path = "/v1/admin/tokens",
    tag = "admin",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token", body = TokenMinted),
        (status = 422, description = "A bad user id or lifetime (the field is named)", body = ErrorBody),
        (status = 503, description = "This node takes no viewer tokens", body = ErrorBody),
    ),
    security(("bearer" = ["tokens"]), ("apiKey" = ["tokens"]))
)]
pub async fn post_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TokenMinted>), ApiError> {
    let request: TokenRequest = typed_body(&headers, body, state.guard.limits().max_body_bytes)?;
    marquee_schemas::validate_id("user_id", &request.user_id).map_err(|error| {
        ApiError::Unprocessable {
            message: error.to_string(),
        }
    })?;
    let ttl = request.ttl_secs.unwrap_or(3_600);
    if !(1..=crate::viewer::MAX_TOKEN_SECS).contains(&ttl) {
        return Err(ApiError::Unprocessable {
            message: format!(
                "ttl_secs: must be from 1 to {}, got {ttl}",
                crate::viewer::MAX_TOKEN_SECS
            ),
        });
    }
    let key = state
        .guard
        .viewer_key()
        .ok_or_else(|| ApiError::Unavailable {
            message: "this node takes no viewer tokens".into(),
        })?;
    let expires_secs = (marquee_schemas::now_ms() / 1000).max(0) as u64 + ttl;
    Ok((
        StatusCode::CREATED,
        Json(TokenMinted {
            token: crate::viewer::mint(key, &request.user_id, expires_secs),
            user_id: request.user_id,
            expires_secs,
        }),
    ))
}
