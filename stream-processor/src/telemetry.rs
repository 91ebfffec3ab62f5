//! Every Prometheus metric of Marquee, defined and registered in one place.
//!
//! Handles are created once at start-up; label sets that always exist (event kinds, results,
//! strategies, partitions) are initialised then, so queries find them before the first event.

use marquee_schemas::EventKind;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::query::Strategy;

/// Results an event can have, as the `result` label of `marquee_events_total`.
pub const EVENT_RESULTS: [&str; 4] = ["accepted", "rejected", "applied", "duplicate"];

/// All metric handles. Cheap to clone (prometheus handles are `Arc`s).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `marquee_http_request_duration_seconds{route,status}`.
    pub http_request_duration: HistogramVec,
    /// `marquee_events_total{kind,result}`: accepted/rejected at ingest, applied/duplicate in the
    /// processor.
    pub events: IntCounterVec,
    /// `marquee_log_end_offset{partition}`.
    pub log_end_offset: IntGaugeVec,
    /// `marquee_processor_committed_offset{partition}`.
    pub committed_offset: IntGaugeVec,
    /// `marquee_processor_lag_events`: events appended but not yet applied, all partitions.
    pub processor_lag: IntGauge,
    /// `marquee_event_freshness_seconds`: from append to the commit that makes it visible.
    pub freshness: Histogram,
    /// `marquee_processor_batch_seconds`: time to apply and commit one batch.
    pub batch_duration: Histogram,
    /// `marquee_recommendations_total{strategy}`.
    pub recommendations: IntCounterVec,
    /// `marquee_index_items`.
    pub index_items: IntGauge,
    /// `marquee_index_side_set_items`.
    pub index_side_set_items: IntGauge,
    /// `marquee_index_rebuilds_total`.
    pub index_rebuilds: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets from 250 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Metrics {
    /// Creates and registers every metric; `partition_count` initialises the per-partition sets.
    pub fn new(partition_count: u32) -> Metrics {
        let registry = Registry::new();
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "marquee_http_request_duration_seconds",
                "HTTP request duration by route and status class",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "status"],
        )
        .expect("valid metric");
        let events = IntCounterVec::new(
            Opts::new("marquee_events_total", "Events by kind and result"),
            &["kind", "result"],
        )
        .expect("valid metric");
        let log_end_offset = IntGaugeVec::new(
            Opts::new(
                "marquee_log_end_offset",
                "Next offset of each log partition",
            ),
            &["partition"],
        )
        .expect("valid metric");
        let committed_offset = IntGaugeVec::new(
            Opts::new(
                "marquee_processor_committed_offset",
                "Next offset the processor will apply, per partition",
            ),
            &["partition"],
        )
        .expect("valid metric");
        let processor_lag = IntGauge::new(
            "marquee_processor_lag_events",
            "Events appended to the log and not yet applied",
        )
        .expect("valid metric");
        let freshness = Histogram::with_opts(
            HistogramOpts::new(
                "marquee_event_freshness_seconds",
                "Time from an event's append to the commit that makes it visible",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let batch_duration = Histogram::with_opts(
            HistogramOpts::new(
                "marquee_processor_batch_seconds",
                "Time to apply and commit one processor batch",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let recommendations = IntCounterVec::new(
            Opts::new(
                "marquee_recommendations_total",
                "Recommendation responses by strategy",
            ),
            &["strategy"],
        )
        .expect("valid metric");
        let index_items =
            IntGauge::new("marquee_index_items", "Items in the current HNSW graph").expect("valid");
        let index_side_set_items = IntGauge::new(
            "marquee_index_side_set_items",
            "Changed items scored exactly beside the graph",
        )
        .expect("valid metric");
        let index_rebuilds = IntCounter::new(
            "marquee_index_rebuilds_total",
            "Completed HNSW graph builds",
        )
        .expect("valid metric");

        for collector in [
            Box::new(http_request_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(events.clone()),
            Box::new(log_end_offset.clone()),
            Box::new(committed_offset.clone()),
            Box::new(processor_lag.clone()),
            Box::new(freshness.clone()),
            Box::new(batch_duration.clone()),
            Box::new(recommendations.clone()),
            Box::new(index_items.clone()),
            Box::new(index_side_set_items.clone()),
            Box::new(index_rebuilds.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        for kind in EventKind::ALL {
            for result in EVENT_RESULTS {
                events.with_label_values(&[kind.as_str(), result]);
            }
        }
        // Events rejected before their kind could be read.
        events.with_label_values(&["unknown", "rejected"]);
        for partition in 0..partition_count {
            let label = partition.to_string();
            log_end_offset.with_label_values(&[label.as_str()]);
            committed_offset.with_label_values(&[label.as_str()]);
        }
        for strategy in Strategy::ALL {
            recommendations.with_label_values(&[strategy.as_str()]);
        }
        Metrics {
            registry,
            http_request_duration,
            events,
            log_end_offset,
            committed_offset,
            processor_lag,
            freshness,
            batch_duration,
            recommendations,
            index_items,
            index_side_set_items,
            index_rebuilds,
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
