//! The metrics middleware (the metrics are [`crate::metrics`]'s).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::IntGauge;

use crate::error::{CorruptRecord, RejectionReason};
use crate::metrics::UNMATCHED_ROUTE;
use crate::state::AppState;

/// Decrements the in-flight gauge when a request ends, also when its connection drops first.
struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The `reason` of `marquee_http_requests_rejected_total` for a refused request: the one its
/// [`crate::ApiError`] set, else (a refusal of axum's own extractors) the one its status
/// implies.
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

/// The metrics middleware: duration by route and status class, in flight, refusals, and the
/// corrupt records a response met.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, |path| path.as_str())
        .to_owned();
    let metrics = &state.http_metrics;
    let started = Instant::now();
    metrics.in_flight.inc();
    let _in_flight = InFlight(metrics.in_flight.clone());
    let response = next.run(request).await;
    let status_class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics
        .request_duration
        .with_label_values(&[route.as_str(), status_class])
        .observe(started.elapsed().as_secs_f64());
    if let Some(CorruptRecord(db)) = response.extensions().get::<CorruptRecord>() {
        state.metrics.corrupt_records.with_label_values(&[db]).inc();
    }
    if let Some(reason) = rejection_reason(&response) {
        metrics.rejected.with_label_values(&[reason]).inc();
    }
    response
}
