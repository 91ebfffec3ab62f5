//! Partition-parallel processing: several workers, each owning a group of partitions, share the
//! item state through commutative deltas and no lock. What must hold (the "Workers" section of
//! `stream-processor/src/processor.rs`): no item update is lost, memory and disk agree on every
//! item, each user's state is the one a single loop gives, and every partition's offset reaches
//! its end.

use crate::common;

use std::collections::{BTreeMap, HashMap};

use common::ItemSummary;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use marquee_ingest::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use marquee_schemas::{Event, EventKind};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig, ProcessorHandle};
use marquee_vector_store::{IndexConfig, ItemTable, StateStore, StoreConfig};
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 4;

/// 400 users over 4 partitions, all rating the same 30 items: every batch of every worker
/// touches items the other workers touch too.
fn contended_events() -> Vec<Event> {
    (0..24_000u32)
        .map(|i| {
            let user = (i * 7919) % 400;
            let item = (i.wrapping_mul(2_654_435_761) >> 8) % 30;
            Event {
                event_id: format!("e{i}"),
                user_id: format!("u{user}"),
                item_id: format!("m{item}"),
                kind: EventKind::Rating,
                value: Some(1.0 + (i % 5) as f32),
                timestamp: 1_700_000_000_000 + i64::from(i) * 1_000,
                context: BTreeMap::new(),
            }
        })
        .collect()
}

fn store_config() -> StoreConfig {
    common::small_store_config()
}

fn open_log(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(
        dir.join("log"),
        EmbeddedLogConfig {
            partitions: PARTITIONS,
            ..EmbeddedLogConfig::default()
        },
    )
    .unwrap()
}

/// Waits, at most 120 s, until the workers behind `handle` committed `ends`.
async fn wait_for_commits(handle: &ProcessorHandle, ends: &[u64]) {
    let started = Instant::now();
    while handle.committed_offsets() != ends {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "workers did not reach the end: {:?} of {ends:?}",
            handle.committed_offsets()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn engine(log: &EmbeddedLog, state: &Path, workers: usize) -> Engine<EmbeddedLog> {
    let store = StateStore::open(state, &store_config()).unwrap();
    Engine::open(
        log.clone(),
        store,
        ModelConfig::default(),
        IndexConfig::default(),
        ProcessorConfig {
            workers,
            // Small batches: many interleaved commits of the workers.
            max_batch_events: 300,
            ..ProcessorConfig::default()
        },
        Metrics::new(PARTITIONS),
    )
    .unwrap()
}

fn items(table: &ItemTable) -> ItemSummary {
    common::item_summary(table)
}

fn assert_same_items(left: &ItemSummary, right: &ItemSummary, what: &str) {
    assert_eq!(common::item_difference(left, right), None, "{what}");
}

/// Per item: vector, popularity score and co-occurrence mass.
fn item_floats(table: &ItemTable) -> BTreeMap<String, (Vec<f32>, f32, f32)> {
    let table = table.read();
    table
        .numbers()
        .map(|number| {
            (
                table.id(number).unwrap().to_string(),
                (
                    table.stored_vector(number),
                    table.popularity(number).score,
                    table.mass(number),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_items_lose_no_update_and_agree_with_one_loop() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let events = contended_events();
    for chunk in events.chunks(2_000) {
        log.append(chunk.to_vec()).await.unwrap();
    }
    let ends = log.end_offsets().unwrap();

    // Four workers, one per partition, on one state.
    let Engine {
        items: parallel_items,
        processor,
        ..
    } = engine(&log, &dir.path().join("parallel"), 4);
    let handle = processor.handle();
    let cancel = CancellationToken::new();
    let workers = processor.spawn_workers(4, cancel.clone());
    assert_eq!(workers.len(), 4);
    wait_for_commits(&handle, &ends).await;
    cancel.cancel();
    for worker in workers {
        worker.join().unwrap();
    }
    let in_memory = items(&parallel_items);

    // No lost update: each item counts every event on it.
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for event in &events {
        *expected.entry(event.item_id.as_str()).or_default() += 1;
    }
    assert_eq!(in_memory.len(), 30);
    for (item, (count, pairs)) in &in_memory {
        assert_eq!(*count, expected[item.as_str()], "{item}: events counted");
        // Every item follows others in some user's sequence: the lists are in play.
        assert!(!pairs.is_empty(), "{item}: no co-occurrence pairs");
    }

    // Memory and disk agree: the state reopened holds the same items and lists, and the same
    // vectors, popularity and mass up to the order the workers' deltas were summed in.
    let floats_in_memory = item_floats(&parallel_items);
    drop(parallel_items);
    let reopened = engine(&log, &dir.path().join("parallel"), 1);
    assert_same_items(&items(&reopened.items), &in_memory, "disk against memory");
    let floats_on_disk = item_floats(&reopened.items);
    for (item, (vector, popularity, mass)) in &floats_in_memory {
        // Positive events moved every item: the comparison is not of untouched seeds.
        assert!(
            *popularity > 0.0 && *mass > 0.0,
            "{item}: no positive event"
        );
        let (disk_vector, disk_popularity, disk_mass) = &floats_on_disk[item];
        for (memory, disk) in vector.iter().zip(disk_vector) {
            assert!(
                (memory - disk).abs() < 1e-4,
                "{item}: vector {vector:?} vs {disk_vector:?}"
            );
        }
        assert!(
            (popularity - disk_popularity).abs() < 1e-3 * popularity.max(1.0),
            "{item}: popularity {popularity} vs {disk_popularity}"
        );
        assert!(
            (mass - disk_mass).abs() < 1e-3 * mass.max(1.0),
            "{item}: mass"
        );
    }
    assert_eq!(reopened.processor.handle().committed_offsets(), ends);

    // One loop over the same log gives the same users, item counts and co-occurrence lists
    // (each pair comes from one user's sequence, and no list is full here, so the order the
    // workers added them in changes only the last bits). Item vectors are not compared: the
    // workers' SGD steps interleave differently.
    let mut single = engine(&log, &dir.path().join("single"), 1);
    while single.processor.step().unwrap() > 0 {}
    assert_same_items(
        &items(&single.items),
        &in_memory,
        "one loop against workers",
    );
    let parallel_store = StateStore::open_secondary(
        dir.path().join("parallel"),
        dir.path().join("parallel-secondary"),
        &store_config(),
    )
    .unwrap();
    let single_store = StateStore::open_secondary(
        dir.path().join("single"),
        dir.path().join("single-secondary"),
        &store_config(),
    )
    .unwrap();
    for user in 0..400 {
        let id = format!("u{user}");
        let (one, many) = (
            single_store.user(&id).unwrap().unwrap(),
            parallel_store.user(&id).unwrap().unwrap(),
        );
        assert_eq!(one.event_count, many.event_count, "{id}");
        let history = |state: &marquee_vector_store::UserState, table: &ItemTable| {
            let table = table.read();
            state
                .history
                .iter()
                .map(|entry| (table.id(entry.item).unwrap().to_string(), entry.timestamp))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            history(&one, &single.items),
            history(&many, &reopened.items),
            "{id}: history"
        );
    }
}

/// The embedded log, counting the reads the workers make of it.
#[derive(Clone)]
struct CountingLog {
    log: EmbeddedLog,
    reads: Arc<AtomicU64>,
}

impl EventLog for CountingLog {
    fn partition_count(&self) -> u32 {
        self.log.partition_count()
    }

    fn append(
        &self,
        events: Vec<Event>,
    ) -> impl Future<Output = marquee_ingest::Result<Vec<marquee_ingest::Appended>>> + Send {
        self.log.append(events)
    }

    fn read(
        &self,
        partition: u32,
        from_offset: u64,
        max_records: usize,
    ) -> marquee_ingest::Result<marquee_ingest::LogRead> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.log.read(partition, from_offset, max_records)
    }

    fn user_entries(&self, user_id: &str) -> marquee_ingest::Result<Vec<marquee_ingest::LogEntry>> {
        self.log.user_entries(user_id)
    }

    fn erase(&self, positions: &[(u32, u64)]) -> marquee_ingest::Result<()> {
        self.log.erase(positions)
    }

    fn end_offsets(&self) -> marquee_ingest::Result<Vec<u64>> {
        self.log.end_offsets()
    }

    fn wait_for_append(
        &self,
        positions: &[u64],
        timeout: Duration,
    ) -> impl Future<Output = ()> + Send {
        self.log.wait_for_append(positions, timeout)
    }
}

/// Caught-up workers wait for their own partitions: a worker that waited on its stale copy of
/// the other workers' offsets returned at once, for ever, and a node that had taken events
/// spun both loops at full CPU while idle, reading its empty partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_workers_wait_instead_of_polling_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let reads = Arc::new(AtomicU64::new(0));
    let counting = CountingLog {
        log: log.clone(),
        reads: Arc::clone(&reads),
    };
    let Engine { processor, .. } = Engine::open(
        counting.clone(),
        StateStore::open(dir.path().join("state"), &store_config()).unwrap(),
        ModelConfig::default(),
        IndexConfig::default(),
        ProcessorConfig {
            workers: 2,
            ..ProcessorConfig::default()
        },
        Metrics::new(PARTITIONS),
    )
    .unwrap();
    let handle = processor.handle();
    let cancel = CancellationToken::new();
    let workers = processor.spawn_workers(2, cancel.clone());
    // Events in every partition, appended while the workers run.
    let events = contended_events();
    counting.append(events[..4_000].to_vec()).await.unwrap();
    let ends = log.end_offsets().unwrap();
    assert!(
        ends.iter().all(|end| *end > 0),
        "every partition has events"
    );
    wait_for_commits(&handle, &ends).await;

    // Idle for a second: each worker wakes at most every `idle_wait` (200 ms) and reads its two
    // partitions then, about 20 reads in all; a spinning worker makes tens of thousands.
    let before = reads.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_reads = reads.load(Ordering::Relaxed) - before;
    assert!(
        idle_reads <= 100,
        "{idle_reads} reads of the log in a second of idling"
    );

    // Waiting, they still take new events in every partition.
    counting
        .append(events[4_000..8_000].to_vec())
        .await
        .unwrap();
    let ends = log.end_offsets().unwrap();
    wait_for_commits(&handle, &ends).await;
    cancel.cancel();
    for worker in workers {
        worker.join().unwrap();
    }
}
