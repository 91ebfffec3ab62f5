//! The benchmark harnesses of `docs/PERFORMANCE.md`, run at a small size so that a change that
//! breaks one shows up here. Each test asserts what its run must produce (every event applied,
//! every trial answered, recall against the exact answer), never a speed: speeds are measured
//! by the benchmarks themselves on a quiet machine and reported in `docs/PERFORMANCE.md`.

use marquee_bench::catch_up::{CatchUpOptions, catch_up};
use marquee_bench::freshness::{FreshnessOptions, freshness};
use marquee_bench::index::{IndexBenchOptions, load_input, run};
use marquee_bench::ingest::{IngestOptions, ingest};

#[test]
fn catch_up_applies_every_event_and_the_index_benchmark_runs_on_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let report = catch_up(
        dir.path(),
        &CatchUpOptions {
            events: 20_000,
            users: 2_000,
            items: 500,
            ..CatchUpOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.events, 20_000, "every event of the log applied");
    assert!(report.batches > 0 && report.batch_bytes > 0 && report.state_bytes > 0);

    // The index benchmark reads the state the catch-up left.
    let input = load_input(dir.path(), 2_000, 200, 7).unwrap();
    assert!(
        input.items.len() > 100,
        "{} item vectors",
        input.items.len()
    );
    assert_eq!(input.queries.len(), 200);
    let out = tempfile::tempdir().unwrap();
    let report = run(
        &input,
        &IndexBenchOptions {
            max_connections: vec![16],
            ef_search: vec![10, 400],
            ..IndexBenchOptions::default()
        },
        Some(out.path()),
    )
    .unwrap();
    let libraries: Vec<(&str, usize)> = report
        .rows
        .iter()
        .map(|row| (row.library.as_str(), row.ef_search))
        .collect();
    assert_eq!(
        libraries,
        [
            ("hnsw_rs", 10),
            ("marquee graph", 10),
            ("hnsw_rs", 400),
            ("marquee graph", 400),
            ("marquee VectorIndex::search", 128)
        ]
    );
    // Over a few hundred points the graph search at ef 400 finds most of the exact top 10,
    // and so do the index's own graph and Marquee's own path (which searches it and re-scores
    // its candidates exactly). The MIPS transform of factor vectors, whose norms spread widely,
    // is a graph's hard case (docs/PERFORMANCE-JOURNAL.md, "The index on factor vectors").
    for row in &report.rows[2..] {
        assert!(row.recall_at_10 >= 0.9, "{row:?}");
    }
    // The files hnswlib reads: every point and query in the searched space, and the answers.
    let size = |name: &str| std::fs::metadata(out.path().join(name)).unwrap().len() as usize;
    assert_eq!(size("items.f32"), report.items * report.dimension * 4);
    assert_eq!(size("queries.f32"), report.queries * report.dimension * 4);
    assert_eq!(size("truth.u32"), report.queries * 10 * 4);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["dimension"], report.dimension);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_benchmark_gets_every_event_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let report = ingest(
        dir.path(),
        &IngestOptions {
            events: 6_000,
            batch: 500,
            connections: 2,
            ..IngestOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.events, 6_000);
    // The ceiling wrote the same 6,000 events as a log: it opens as one and holds them all.
    assert!(report.ceiling_events_per_second.is_some());
    let partitions =
        marquee_node::NodeConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap()).partitions;
    let ceiling = marquee_ingest::EmbeddedLog::open(
        dir.path().join("ceiling-log"),
        marquee_ingest::EmbeddedLogConfig {
            partitions,
            ..marquee_ingest::EmbeddedLogConfig::default()
        },
    )
    .unwrap();
    let ends = marquee_ingest::EventLog::end_offsets(&ceiling).unwrap();
    assert_eq!(ends.iter().sum::<u64>(), 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freshness_benchmark_answers_every_trial() {
    let dir = tempfile::tempdir().unwrap();
    let report = freshness(
        dir.path(),
        &FreshnessOptions {
            trials: 20,
            warmup_events: 5_000,
            background_rate: 500,
            users: 500,
            items: 200,
            ..FreshnessOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.trials, 20);
    assert_eq!(
        report.timeouts, 0,
        "a trial saw no list reflecting its rating"
    );
}

#[test]
fn catch_up_on_two_nodes_counts_every_event_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let report = catch_up(
        dir.path(),
        &CatchUpOptions {
            events: 3_000,
            users: 200,
            items: 300,
            nodes: 2,
            ..CatchUpOptions::default()
        },
    )
    .unwrap();
    // The run ends once both nodes' items count all 3,000 events.
    assert_eq!(report.events, 3_000);
    assert!(report.change_records >= 2, "both nodes shipped changes");
    assert!(report.changes_lag_seconds >= 0.0);
}
