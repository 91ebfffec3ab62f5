//! The erasure list, for logs that cannot rewrite history (Fluvio keeps records until its
//! retention drops them): an erased user's events that stay in the log are never applied again,
//! while events the user sends after the erasure are.
//!
//! The log here is the real embedded log with its `erase` refused, which is exactly how an
//! immutable backend answers; everything else is the production processor and state.

use std::time::Duration;

use marquee_ingest::{
    Appended, EmbeddedLog, EmbeddedLogConfig, Error, EventLog, LogEntry, LogRead, Result,
};
use marquee_schemas::{Event, EventKind};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig};
use marquee_vector_store::{IndexConfig, StateStore, StoreConfig};

/// The embedded log, refusing to erase like a backend whose history is immutable.
#[derive(Clone)]
struct ImmutableLog(EmbeddedLog);

impl EventLog for ImmutableLog {
    fn partition_count(&self) -> u32 {
        self.0.partition_count()
    }

    async fn append(&self, events: Vec<Event>) -> Result<Vec<Appended>> {
        self.0.append(events).await
    }

    fn read(&self, partition: u32, from_offset: u64, max_records: usize) -> Result<LogRead> {
        self.0.read(partition, from_offset, max_records)
    }

    fn user_entries(&self, user_id: &str) -> Result<Vec<LogEntry>> {
        self.0.user_entries(user_id)
    }

    fn erase(&self, _positions: &[(u32, u64)]) -> Result<()> {
        Err(Error::Unsupported("erase events: its history is immutable"))
    }

    fn end_offsets(&self) -> Result<Vec<u64>> {
        self.0.end_offsets()
    }

    async fn wait_for_append(&self, positions: &[u64], timeout: Duration) {
        self.0.wait_for_append(positions, timeout).await;
    }
}

fn like(event_id: &str, user_id: &str, item_id: &str, timestamp: i64) -> Event {
    Event {
        event_id: event_id.into(),
        user_id: user_id.into(),
        item_id: item_id.into(),
        kind: EventKind::Like,
        value: None,
        timestamp,
        context: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_left_in_an_immutable_log_are_never_applied_again_after_an_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let log = ImmutableLog(
        EmbeddedLog::open(dir.path().join("log"), EmbeddedLogConfig::default()).unwrap(),
    );
    let model = ModelConfig::default();
    let store = StateStore::open(
        dir.path().join("state"),
        &StoreConfig {
            dimension: model.stored_dimension(),
            dedup_window: Duration::from_secs(3600),
            block_cache_bytes: 8 << 20,
            cipher: None,
        },
    )
    .unwrap();
    let config = ProcessorConfig {
        erasure_key: [7; 32],
        ..ProcessorConfig::default()
    };
    let Engine { mut processor, .. } = Engine::open(
        log.clone(),
        store.clone(),
        model,
        IndexConfig::default(),
        config,
        Metrics::new(4),
    )
    .unwrap();

    let t = 1_700_000_000_000;
    log.append(vec![
        like("v1", "victim", "m1", t),
        like("v2", "victim", "m2", t + 1),
        like("o1", "other", "m1", t + 2),
    ])
    .await
    .unwrap();
    while processor.step().unwrap() > 0 {}
    assert_eq!(store.user("victim").unwrap().unwrap().event_count, 2);
    // Appended, not yet applied.
    log.append(vec![like("v3", "victim", "m3", t + 3)])
        .await
        .unwrap();

    let erasure = processor.erase("victim").unwrap();
    assert!(!erasure.log_erased, "this log keeps its history");
    assert_eq!((erasure.log_events, erasure.applied_events), (3, 2));
    assert!(store.user("victim").unwrap().is_none());
    // The events are still in the log; the processor passes over them.
    assert_eq!(log.user_entries("victim").unwrap().len(), 3);
    while processor.step().unwrap() > 0 {}
    assert!(store.user("victim").unwrap().is_none());
    assert!(store.seen_items("victim").unwrap().is_empty());

    // The list survives a restart (it is in the state, keyed, without the raw id).
    assert_eq!(store.load_erasures().unwrap().len(), 1);
    let hash = marquee_stream_processor::erasure_hash(&[7; 32], "victim");
    assert_eq!(store.load_erasures().unwrap()[0].0, hash);

    // Events sent after the erasure are a new start, and are applied.
    tokio::time::sleep(Duration::from_millis(5)).await;
    log.append(vec![like("v4", "victim", "m4", t + 4)])
        .await
        .unwrap();
    while processor.step().unwrap() > 0 {}
    let returned = store.user("victim").unwrap().unwrap();
    assert_eq!(returned.event_count, 1);
    assert_eq!(store.user("other").unwrap().unwrap().event_count, 1);
}
