//! Partition-parallel processing: several workers, each owning a group of partitions, share the
//! item state. What must hold (the "Workers" section of `stream-processor/src/processor.rs`):
//! no item update is lost, memory and disk agree on every item, each user's state is the one a
//! single loop gives, and every partition's offset reaches its end.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use marquee_ingest::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use marquee_schemas::{Event, EventKind};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig};
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
                value: Some(1.0 + ((i + user) % 5) as f32),
                timestamp: 1_700_000_000_000 + i64::from(i) * 1_000,
                context: BTreeMap::new(),
            }
        })
        .collect()
}

fn store_config() -> StoreConfig {
    StoreConfig {
        dimension: ModelConfig::default().dimension,
        dedup_window: Duration::from_secs(3600),
        block_cache_bytes: 16 << 20,
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

/// Per item: event count and co-occurrence list, as the table holds them.
fn items(table: &ItemTable) -> BTreeMap<String, (u64, Vec<(String, u32)>)> {
    let table = table.read();
    table
        .numbers()
        .map(|number| {
            let pairs = table
                .neighbours(number)
                .entries()
                .iter()
                .map(|&(to, weight)| {
                    // Weights to 1e-4: the order of additions from two workers can move the
                    // last bits of a sum.
                    (
                        table.id(to).unwrap().to_string(),
                        (weight * 1e4).round() as u32,
                    )
                })
                .collect();
            (
                table.id(number).unwrap().to_string(),
                (table.event_count(number), pairs),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_items_lose_no_update_and_agree_with_one_loop() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(
        dir.path().join("log"),
        EmbeddedLogConfig {
            partitions: PARTITIONS,
            ..EmbeddedLogConfig::default()
        },
    )
    .unwrap();
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
    let started = Instant::now();
    while handle.committed_offsets() != ends {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "workers did not reach the end: {:?} of {ends:?}",
            handle.committed_offsets()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    for (item, (count, _)) in &in_memory {
        assert_eq!(*count, expected[item.as_str()], "{item}: events counted");
    }

    // Memory and disk agree: the state reopened holds the same items and lists.
    drop(parallel_items);
    let reopened = engine(&log, &dir.path().join("parallel"), 1);
    assert_eq!(
        items(&reopened.items),
        in_memory,
        "disk differs from memory"
    );
    assert_eq!(reopened.processor.handle().committed_offsets(), ends);

    // One loop over the same log gives the same users and the same item counts.
    let mut single = engine(&log, &dir.path().join("single"), 1);
    while single.processor.step().unwrap() > 0 {}
    let single_items = items(&single.items);
    for (item, (count, _)) in &single_items {
        assert_eq!(in_memory[item].0, *count, "{item}");
    }
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
