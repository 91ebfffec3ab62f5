//! The open routes: liveness, readiness, metrics and this API's OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use marquee_ingest::EventLog;
use marquee_stream_processor::telemetry::StorageFigures;
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The answer of `/readyz` once the node is ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: &'static str,
    /// Events appended and not yet applied.
    pub processor_lag_events: u64,
    /// The processor's last batch failed (it retries).
    pub processor_failing: bool,
}

/// Liveness
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    responses((status = 200, description = "The process answers", body = Health)),
    security(())
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: state loaded and index built
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Still loading its state", body = ErrorBody),
    ),
    security(())
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let services = state.services.get().ok_or(ApiError::NotReady)?;
    let ends = services.log.end_offsets().unwrap_or_default();
    let lag = ends
        .iter()
        .zip(services.processor.lag_offsets(&ends))
        .map(|(end, committed)| end.saturating_sub(committed))
        .sum();
    Ok(Json(Readiness {
        status: "ready",
        processor_lag_events: lag,
        processor_failing: services.processor.is_failing(),
    }))
}

/// Prometheus metrics
///
/// Sets the gauges that describe state (storage sizes, index age, offsets and lag) from their
/// sources, then renders every metric in the text format (`docs/METRICS.md`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Every metric", body = String, content_type = "text/plain")),
    security(())
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // One read of the figures at a time: a scrape that finds one under way waits for it and
    // renders what it read, so a flood of scrapes takes one blocking thread, not one each.
    let refresh = match state.metrics_refresh.clone().try_lock_owned() {
        Ok(held) => Some(held),
        Err(_) => {
            drop(state.metrics_refresh.lock().await);
            None
        }
    };
    if let (Some(_held), Some(services)) = (refresh, state.services.get()) {
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

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "probes",
    responses((status = 200, description = "The OpenAPI document of every route", body = Object)),
    security(())
)]
pub async fn openapi(State(state): State<AppState>) -> Response {
    let json = state
        .document
        .get()
        .map_or_else(String::new, |document| document.json.clone());
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}
