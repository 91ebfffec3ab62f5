//! The Prometheus metrics of the processor, the queries, the index and the storage, registered
//! in one [`Registry`] that the HTTP edge adds its own to (`marquee_api::metrics`); the
//! catalogue of both is `docs/METRICS.md`.
//!
//! Handles are created once at start-up. Label sets that always exist (routes and status
//! classes, event kinds and reasons, strategies, partitions, databases) are initialised then,
//! so a query finds them, at zero, before the first request or event: a dashboard panel or an
//! alert over a rate is never empty merely because nothing has happened yet.
//!
//! Gauges that describe a state rather than count events (offsets and lag, index size and age,
//! RocksDB sizes) are set by the `/metrics` handler just before rendering, through
//! [`Metrics::set_offsets`], [`Metrics::set_index`] and [`Metrics::set_storage`]; process figures (resident memory, CPU, file descriptors) come from
//! the `prometheus` crate's process collector, read from `/proc` at each scrape.

use marquee_schemas::EventKind;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::strategy::Strategy;

/// The `source` label of the recommendation counters: where a candidate came from.
pub const SOURCES: [&str; 3] = ["index", "pairs", "content"];

/// The `route` label of the search metrics: full results and autocomplete.
pub const SEARCH_ROUTES: [&str; 2] = ["search", "suggest"];

/// The `db` label of the RocksDB gauges: the event log and the state store.
pub const DATABASES: [&str; 2] = ["log", "state"];

/// All metric handles. Cheap to clone (prometheus handles are `Arc`s).
#[derive(Clone)]
pub struct Metrics {
    /// The registry every metric of a node is registered in, and rendered from.
    pub registry: Registry,
    /// `marquee_processor_events_applied_total{kind}`.
    pub events_applied: IntCounterVec,
    /// `marquee_processor_duplicate_events_total{kind}`: skipped by `event_id`.
    pub events_duplicate: IntCounterVec,
    /// `marquee_log_end_offset{partition}`.
    pub log_end_offset: IntGaugeVec,
    /// `marquee_processor_committed_offset{partition}`.
    pub committed_offset: IntGaugeVec,
    /// `marquee_processor_lag_events`: events appended but not yet applied, all partitions.
    pub processor_lag: IntGauge,
    /// `marquee_processor_paused`: 1 while an operator paused the processor.
    pub processor_paused: IntGauge,
    /// `marquee_processor_failing`: 1 while the last batch failed (the processor retries).
    pub processor_failing: IntGauge,
    /// `marquee_item_changes_outbox_records`: item-change records written and not yet shipped to
    /// the change log (nodes that split the partitions).
    pub item_changes_outbox: IntGauge,
    /// `marquee_item_changes_total{outcome}`: change-log records read, by outcome (`applied`;
    /// `own`: this node's; `known`: their changes were here already).
    pub item_changes: IntCounterVec,
    /// `marquee_item_changes_lag_records`: change-log records not yet read by this node.
    pub item_changes_lag: IntGauge,
    /// `marquee_item_changes_ship_failures_total`: appends to the change log that failed (the
    /// shipper retries).
    pub item_changes_ship_failures: IntCounter,
    /// `marquee_storage_corrupt_records_total{db}`: stored records that failed to decode, each
    /// time one was read (the read fails with an error; nothing is skipped).
    pub corrupt_records: IntCounterVec,
    /// `marquee_event_freshness_seconds`: from an event's acknowledgement to the commit that
    /// makes it visible to queries.
    pub freshness: Histogram,
    /// `marquee_processor_batch_seconds`: time to apply and commit one batch.
    pub batch_duration: Histogram,
    /// `marquee_recommendations_total{strategy}`.
    pub recommendations: IntCounterVec,
    /// `marquee_factor_solves_total`: solves of the item vectors' factorisation.
    pub factor_solves: IntCounter,
    /// `marquee_factor_solve_duration_seconds`.
    pub factor_solve_duration: Histogram,
    /// `marquee_recommendation_candidates_total{source}`: candidates a ranking considered, by
    /// where they came from (`index`, `pairs`, `content`).
    pub recommendation_candidates: IntCounterVec,
    /// `marquee_recommendation_items_total{source}`: items returned in lists, by source (an
    /// item from several sources counts for each).
    pub recommendation_items: IntCounterVec,
    /// `marquee_experiment_impressions_total{experiment,group}`: lists shown (first
    /// impressions), by the experiment group they were served in.
    pub experiment_impressions: IntCounterVec,
    /// `marquee_experiment_attributed_events_total{experiment,group,kind}`: events that named
    /// a shown list, by group and kind.
    pub experiment_attributed: IntCounterVec,
    /// `marquee_unattributed_events_total{kind,reason}`: impressions and events naming a list
    /// that could not count (`unknown_list`, `no_impression`, `expired`).
    pub unattributed: IntCounterVec,
    /// `marquee_search_duration_seconds{route}`: catalogue searches (`search`, `suggest`), from
    /// the parsed query to the ranked answer.
    pub search_duration: HistogramVec,
    /// `marquee_search_empty_total{route}`: searches that matched nothing.
    pub search_empty: IntCounterVec,
    /// `marquee_search_documents`: items in the search index.
    pub search_documents: IntGauge,
    /// `marquee_index_items`.
    pub index_items: IntGauge,
    /// `marquee_index_side_set_items`.
    pub index_side_set_items: IntGauge,
    /// `marquee_index_rebuilds_total`.
    pub index_rebuilds: IntCounter,
    /// `marquee_index_urgent_rebuilds_total`: builds run at the queries' priority because the
    /// side set was urgent (half its bound, or overflowed).
    pub index_urgent_rebuilds: IntCounter,
    /// `marquee_index_abandoned_rebuilds_total`: background builds given up for an urgent one.
    pub index_abandoned_rebuilds: IntCounter,
    /// `marquee_index_build_duration_seconds`.
    pub index_build_duration: Histogram,
    /// `marquee_index_graph_age_seconds`: seconds since the current graph was swapped in.
    pub index_graph_age: prometheus::Gauge,
    /// `marquee_rocksdb_live_data_bytes{db}`.
    pub rocksdb_live_data: IntGaugeVec,
    /// `marquee_rocksdb_pending_compaction_bytes{db}`.
    pub rocksdb_pending_compaction: IntGaugeVec,
    /// `marquee_rocksdb_sst_files_bytes{db}`.
    pub rocksdb_sst_files: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets from 250 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Search latency buckets from 50 µs to 1 s: a search takes about a millisecond.
const SEARCH_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];

/// Index build buckets from 100 ms to 10 minutes.
const BUILD_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0];

/// RocksDB figures of one database, for [`Metrics::set_storage`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageFigures {
    pub live_data_bytes: u64,
    pub pending_compaction_bytes: u64,
    pub sst_files_bytes: u64,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric")
}

impl Metrics {
    /// Creates and registers every metric; `partition_count` initialises the per-partition sets.
    pub fn new(partition_count: u32) -> Metrics {
        let registry = Registry::new();
        let metrics = Metrics {
            events_applied: counter_vec(
                "marquee_processor_events_applied_total",
                "Events applied to the state, by kind",
                &["kind"],
            ),
            events_duplicate: counter_vec(
                "marquee_processor_duplicate_events_total",
                "Events skipped because their event_id was applied before, by kind",
                &["kind"],
            ),
            log_end_offset: gauge_vec(
                "marquee_log_end_offset",
                "Next offset of each log partition",
                &["partition"],
            ),
            committed_offset: gauge_vec(
                "marquee_processor_committed_offset",
                "Next offset the processor will apply, per partition",
                &["partition"],
            ),
            processor_lag: gauge(
                "marquee_processor_lag_events",
                "Events appended to the log and not yet applied",
            ),
            processor_paused: gauge(
                "marquee_processor_paused",
                "1 while the processor is paused by an operator",
            ),
            processor_failing: gauge(
                "marquee_processor_failing",
                "1 while the processor's last batch failed (it retries)",
            ),
            item_changes_outbox: gauge(
                "marquee_item_changes_outbox_records",
                "Item-change records waiting in the outbox to be shipped to the change log",
            ),
            item_changes: counter_vec(
                "marquee_item_changes_total",
                "Change-log records read, by outcome (applied, own, known)",
                &["outcome"],
            ),
            item_changes_lag: gauge(
                "marquee_item_changes_lag_records",
                "Change-log records not yet read by this node",
            ),
            item_changes_ship_failures: IntCounter::new(
                "marquee_item_changes_ship_failures_total",
                "Appends of item changes to the change log that failed (retried)",
            )
            .expect("valid metric"),
            corrupt_records: counter_vec(
                "marquee_storage_corrupt_records_total",
                "Reads that met a stored record that does not decode, by database (log, state)",
                &["db"],
            ),
            freshness: histogram(
                "marquee_event_freshness_seconds",
                "Time from an event's acknowledgement to the commit that makes it visible",
                &LATENCY_BUCKETS,
            ),
            batch_duration: histogram(
                "marquee_processor_batch_seconds",
                "Time to apply and commit one processor batch",
                &LATENCY_BUCKETS,
            ),
            recommendations: counter_vec(
                "marquee_recommendations_total",
                "Recommendation responses by strategy",
                &["strategy"],
            ),
            factor_solves: IntCounter::new(
                "marquee_factor_solves_total",
                "Solves of the item vectors' factorisation",
            )
            .expect("valid metric"),
            factor_solve_duration: histogram(
                "marquee_factor_solve_duration_seconds",
                "Duration of solves of the item vectors' factorisation",
                &BUILD_BUCKETS,
            ),
            recommendation_candidates: counter_vec(
                "marquee_recommendation_candidates_total",
                "Candidates rankings considered, by source (index, pairs, content)",
                &["source"],
            ),
            recommendation_items: counter_vec(
                "marquee_recommendation_items_total",
                "Items returned in lists, by source (index, pairs, content)",
                &["source"],
            ),
            experiment_impressions: counter_vec(
                "marquee_experiment_impressions_total",
                "Lists shown (first impressions), by experiment and group",
                &["experiment", "group"],
            ),
            experiment_attributed: counter_vec(
                "marquee_experiment_attributed_events_total",
                "Events naming a shown list, by experiment, group and kind",
                &["experiment", "group", "kind"],
            ),
            unattributed: counter_vec(
                "marquee_unattributed_events_total",
                "Impressions and events naming a list that could not count, by kind and reason",
                &["kind", "reason"],
            ),
            search_duration: HistogramVec::new(
                HistogramOpts::new(
                    "marquee_search_duration_seconds",
                    "Catalogue searches, from the parsed query to the ranked answer, by route",
                )
                .buckets(SEARCH_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric"),
            search_empty: counter_vec(
                "marquee_search_empty_total",
                "Catalogue searches that matched no item, by route",
                &["route"],
            ),
            search_documents: gauge("marquee_search_documents", "Items in the search index"),
            index_items: gauge("marquee_index_items", "Items in the current HNSW graph"),
            index_side_set_items: gauge(
                "marquee_index_side_set_items",
                "Changed items scored exactly beside the graph",
            ),
            index_rebuilds: IntCounter::new(
                "marquee_index_rebuilds_total",
                "Completed HNSW graph builds",
            )
            .expect("valid metric"),
            index_urgent_rebuilds: IntCounter::new(
                "marquee_index_urgent_rebuilds_total",
                "HNSW graph builds run at the queries' priority (the side set at half its bound or overflowed)",
            )
            .expect("valid metric"),
            index_abandoned_rebuilds: IntCounter::new(
                "marquee_index_abandoned_rebuilds_total",
                "Background HNSW graph builds abandoned part way",
            )
            .expect("valid metric"),
            index_build_duration: histogram(
                "marquee_index_build_duration_seconds",
                "Duration of HNSW graph builds",
                &BUILD_BUCKETS,
            ),
            index_graph_age: prometheus::Gauge::new(
                "marquee_index_graph_age_seconds",
                "Seconds since the current HNSW graph was swapped in",
            )
            .expect("valid metric"),
            rocksdb_live_data: gauge_vec(
                "marquee_rocksdb_live_data_bytes",
                "Estimated live data in RocksDB, by database",
                &["db"],
            ),
            rocksdb_pending_compaction: gauge_vec(
                "marquee_rocksdb_pending_compaction_bytes",
                "Estimated bytes RocksDB still has to compact, by database",
                &["db"],
            ),
            rocksdb_sst_files: gauge_vec(
                "marquee_rocksdb_sst_files_bytes",
                "Size of all SST files, by database",
                &["db"],
            ),
            registry,
        };
        metrics.register_all();
        metrics.initialise_labels(partition_count);
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.events_applied.clone()),
            Box::new(self.events_duplicate.clone()),
            Box::new(self.log_end_offset.clone()),
            Box::new(self.committed_offset.clone()),
            Box::new(self.processor_lag.clone()),
            Box::new(self.processor_paused.clone()),
            Box::new(self.processor_failing.clone()),
            Box::new(self.freshness.clone()),
            Box::new(self.batch_duration.clone()),
            Box::new(self.recommendations.clone()),
            Box::new(self.factor_solves.clone()),
            Box::new(self.factor_solve_duration.clone()),
            Box::new(self.recommendation_candidates.clone()),
            Box::new(self.recommendation_items.clone()),
            Box::new(self.experiment_impressions.clone()),
            Box::new(self.experiment_attributed.clone()),
            Box::new(self.unattributed.clone()),
            Box::new(self.search_duration.clone()),
            Box::new(self.search_empty.clone()),
            Box::new(self.search_documents.clone()),
            Box::new(self.index_items.clone()),
            Box::new(self.index_side_set_items.clone()),
            Box::new(self.index_rebuilds.clone()),
            Box::new(self.index_urgent_rebuilds.clone()),
            Box::new(self.index_abandoned_rebuilds.clone()),
            Box::new(self.index_build_duration.clone()),
            Box::new(self.index_graph_age.clone()),
            Box::new(self.corrupt_records.clone()),
            Box::new(self.item_changes_outbox.clone()),
            Box::new(self.item_changes.clone()),
            Box::new(self.item_changes_lag.clone()),
            Box::new(self.item_changes_ship_failures.clone()),
            Box::new(self.rocksdb_live_data.clone()),
            Box::new(self.rocksdb_pending_compaction.clone()),
            Box::new(self.rocksdb_sst_files.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "marquee",
            )),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    fn initialise_labels(&self, partition_count: u32) {
        for kind in EventKind::ALL {
            let kind = kind.as_str();
            self.events_applied.with_label_values(&[kind]);
            self.events_duplicate.with_label_values(&[kind]);
        }
        for partition in 0..partition_count {
            let label = partition.to_string();
            self.log_end_offset.with_label_values(&[label.as_str()]);
            self.committed_offset.with_label_values(&[label.as_str()]);
        }
        for outcome in ["applied", "own", "known"] {
            self.item_changes.with_label_values(&[outcome]);
        }
        for route in SEARCH_ROUTES {
            self.search_duration.with_label_values(&[route]);
            self.search_empty.with_label_values(&[route]);
        }
        for source in SOURCES {
            self.recommendation_candidates.with_label_values(&[source]);
            self.recommendation_items.with_label_values(&[source]);
        }
        for strategy in Strategy::ALL {
            self.recommendations.with_label_values(&[strategy.as_str()]);
        }
        for reason in ["unknown_list", "no_impression", "expired"] {
            self.unattributed
                .with_label_values(&[EventKind::Impression.as_str(), reason]);
        }
        for db in DATABASES {
            self.corrupt_records.with_label_values(&[db]);
            self.rocksdb_live_data.with_label_values(&[db]);
            self.rocksdb_pending_compaction.with_label_values(&[db]);
            self.rocksdb_sst_files.with_label_values(&[db]);
        }
    }

    /// Sets the RocksDB gauges of database `db` (one of [`DATABASES`]).
    pub fn set_storage(&self, db: &str, figures: StorageFigures) {
        let as_gauge = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        self.rocksdb_live_data
            .with_label_values(&[db])
            .set(as_gauge(figures.live_data_bytes));
        self.rocksdb_pending_compaction
            .with_label_values(&[db])
            .set(as_gauge(figures.pending_compaction_bytes));
        self.rocksdb_sst_files
            .with_label_values(&[db])
            .set(as_gauge(figures.sst_files_bytes));
    }

    /// Sets the offset gauges and the lag from the log's end offsets and the processor's
    /// committed offsets (both per partition).
    pub fn set_offsets(&self, ends: &[u64], committed: &[u64]) {
        let mut lag = 0u64;
        for (partition, (end, committed)) in ends.iter().zip(committed).enumerate() {
            let label = partition.to_string();
            self.log_end_offset
                .with_label_values(&[label.as_str()])
                .set(*end as i64);
            self.committed_offset
                .with_label_values(&[label.as_str()])
                .set(*committed as i64);
            lag += end.saturating_sub(*committed);
        }
        self.processor_lag.set(lag as i64);
    }

    /// Sets the index gauges from its statistics.
    pub fn set_index(&self, stats: &marquee_vector_store::IndexStats) {
        self.index_items.set(stats.indexed_items as i64);
        self.index_side_set_items.set(stats.side_set_items as i64);
        self.index_graph_age.set(stats.graph_age_seconds);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// Per-kind event counts gathered during a batch and added to a counter after its commit, so a
/// batch that fails and is retried is not counted twice.
#[derive(Debug, Default, Clone, Copy)]
pub struct KindCounts([u64; EventKind::ALL.len()]);

impl KindCounts {
    pub fn add(&mut self, kind: EventKind) {
        let slot = EventKind::ALL
            .iter()
            .position(|candidate| *candidate == kind)
            .expect("every kind is in ALL");
        self.0[slot] += 1;
    }

    /// Adds the counts to `counter` (labelled by kind).
    pub fn publish(&self, counter: &IntCounterVec) {
        for (kind, count) in EventKind::ALL.iter().zip(self.0) {
            if count > 0 {
                counter.with_label_values(&[kind.as_str()]).inc_by(count);
            }
        }
    }
}
