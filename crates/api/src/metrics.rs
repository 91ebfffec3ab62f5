//! The edge's metrics — request durations by route and status class, requests in flight,
//! refusals by reason, events accepted and refused at ingest — registered beside the node's in
//! one registry (`docs/METRICS.md`); `middleware::metrics` records them for every request.

use marquee_schemas::EventKind;
use marquee_stream_processor::telemetry::LATENCY_BUCKETS;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Status classes of `marquee_http_request_duration_seconds`, initialised for every route.
pub const STATUS_CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

/// Reasons of `marquee_http_requests_rejected_total`: a missing or wrong key (401, 403), a key's
/// rate limit (429), load shedding at the concurrency limit (503), the request timeout (503), a
/// body, header or URI over its size limit (413, 431, 414), a request that cannot be read or
/// failed validation (400, 405, 415, 422).
pub const REJECTION_REASONS: [&str; 6] = [
    "auth",
    "rate_limit",
    "overload",
    "timeout",
    "size",
    "validation",
];

/// Reasons of `marquee_ingest_events_rejected_total`: an element that is not a JSON object,
/// one with a field that failed validation (the response names the field), one past a per-key
/// cap ([`crate::caps`]), and events that were valid but could not be appended (the log was
/// unavailable; the client retries).
pub const INGEST_REJECTION_REASONS: [&str; 4] = ["malformed", "invalid", "capped", "unavailable"];

/// The `kind` label of events rejected before their kind could be read.
pub const UNKNOWN_KIND: &str = "unknown";

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The edge's metric handles. Cheap to clone.
#[derive(Clone)]
pub struct HttpMetrics {
    /// `marquee_http_request_duration_seconds{route,status}`.
    pub request_duration: HistogramVec,
    /// `marquee_http_requests_in_flight`.
    pub in_flight: IntGauge,
    /// `marquee_http_requests_rejected_total{reason}`.
    pub rejected: IntCounterVec,
    /// `marquee_ingest_events_accepted_total{kind}`: appended to the log and acknowledged.
    pub events_accepted: IntCounterVec,
    /// `marquee_ingest_events_rejected_total{kind,reason}`.
    pub events_rejected: IntCounterVec,
    /// `marquee_http_forwarded_total{outcome}`: misdirected requests sent on to their owner.
    pub forwarded: IntCounterVec,
    /// `marquee_http_connections_open`: connections the server holds now.
    pub connections_open: IntGauge,
    /// `marquee_http_connections_refused_total`: connections closed at once, over the cap.
    pub connections_refused: IntCounter,
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl HttpMetrics {
    /// Creates the edge's metrics, registers them in `registry` and initialises the label sets
    /// that always exist (reasons, kinds; routes come with [`HttpMetrics::initialise_routes`]).
    pub fn register(registry: &Registry) -> HttpMetrics {
        let metrics = HttpMetrics {
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "marquee_http_request_duration_seconds",
                    "HTTP request duration by route and status class",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "status"],
            )
            .expect("valid metric"),
            in_flight: IntGauge::new(
                "marquee_http_requests_in_flight",
                "HTTP requests being served",
            )
            .expect("valid metric"),
            rejected: counter_vec(
                "marquee_http_requests_rejected_total",
                "HTTP requests refused, by reason (auth, rate_limit, overload, timeout, size, validation)",
                &["reason"],
            ),
            events_accepted: counter_vec(
                "marquee_ingest_events_accepted_total",
                "Events appended to the log and acknowledged, by kind",
                &["kind"],
            ),
            events_rejected: counter_vec(
                "marquee_ingest_events_rejected_total",
                "Events refused at ingest, by kind and reason",
                &["kind", "reason"],
            ),
            forwarded: counter_vec(
                "marquee_http_forwarded_total",
                "Requests about another node's user sent on to that node, by outcome (forwarded, failed)",
                &["outcome"],
            ),
            connections_open: IntGauge::new(
                "marquee_http_connections_open",
                "HTTP connections open",
            )
            .expect("valid metric"),
            connections_refused: IntCounter::new(
                "marquee_http_connections_refused_total",
                "HTTP connections closed as soon as accepted: limits.max_connections were open",
            )
            .expect("valid metric"),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 8] = [
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.rejected.clone()),
            Box::new(metrics.events_accepted.clone()),
            Box::new(metrics.events_rejected.clone()),
            Box::new(metrics.forwarded.clone()),
            Box::new(metrics.connections_open.clone()),
            Box::new(metrics.connections_refused.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        for reason in REJECTION_REASONS {
            metrics.rejected.with_label_values(&[reason]);
        }
        for outcome in ["forwarded", "failed"] {
            metrics.forwarded.with_label_values(&[outcome]);
        }
        for kind in EventKind::ALL {
            metrics.events_accepted.with_label_values(&[kind.as_str()]);
        }
        let kinds = EventKind::ALL.iter().map(|kind| kind.as_str());
        for kind in kinds.chain([UNKNOWN_KIND]) {
            for reason in INGEST_REJECTION_REASONS {
                metrics.events_rejected.with_label_values(&[kind, reason]);
            }
        }
        metrics
    }

    /// Initialises the request histogram for every route (the matched pattern) and status
    /// class; the router calls it with its route table.
    pub fn initialise_routes<'a>(&self, routes: impl IntoIterator<Item = &'a str>) {
        for route in routes {
            for status in STATUS_CLASSES {
                self.request_duration.with_label_values(&[route, status]);
            }
        }
    }
}
