//! Nodes that split the partitions: each applies the events of its own partitions and takes the
//! other nodes' item changes from the change log ("Nodes" in
//! `stream-processor/src/processor.rs`, `docs/SCALING.md`). What must hold:
//!
//! - every node's item table counts every event once, whichever node applied it, and agrees
//!   with one node applying everything (counts, co-occurrence lists);
//! - a user's state is on the node that owns the user's partition, the same as one node gives;
//! - a record of the change log sent twice is applied once;
//! - a partition taken over from a lost node, by a node with no state for it, is rebuilt from
//!   the log without counting its events a second time in the items.
//!
//! The same test body runs on the embedded log with an embedded change log (two nodes in one
//! process, in CI), and on Fluvio (an event topic and a change topic) when
//! `MARQUEE_FLUVIO_ENDPOINT` names a running cluster; it prints that it skipped otherwise.

use crate::common;

use std::collections::{BTreeMap, HashMap};

use common::ItemSummary;
use std::path::Path;
use std::time::{Duration, Instant};

use marquee_ingest::{
    AnyChangeLog, AnyLog, ChangeLog, EmbeddedChangeLog, EmbeddedLog, EmbeddedLogConfig, EventLog,
    LogBackend,
};
use marquee_schemas::{Event, EventKind, partition_for_user};
use marquee_stream_processor::{Engine, Metrics, ModelConfig, ProcessorConfig};
use marquee_vector_store::{IndexConfig, ItemTable, StateStore, StoreConfig};
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 4;

/// 400 users over 4 partitions rating the same 30 items, so every item is changed from every
/// partition, and so from both nodes.
fn events(range: std::ops::Range<u32>) -> Vec<Event> {
    range
        .map(|i| {
            let user = (i * 7919) % 400;
            let item = (i.wrapping_mul(2_654_435_761) >> 8) % 30;
            Event {
                event_id: format!("e{i}"),
                user_id: format!("u{user}"),
                item_id: format!("m{item}"),
                kind: if i % 3 == 0 {
                    EventKind::View
                } else {
                    EventKind::Rating
                },
                value: (i % 3 != 0).then_some(1.0 + (i % 5) as f32),
                timestamp: 1_700_000_000_000 + i64::from(i) * 1_000,
                context: BTreeMap::new(),
            }
        })
        .collect()
}

fn store_config() -> StoreConfig {
    common::small_store_config()
}

/// The embedded event log (4 partitions) and an embedded change log under `dir`: nodes in one
/// process sharing both.
fn embedded_backends(dir: &Path) -> (AnyLog, AnyChangeLog) {
    let log = EmbeddedLog::open(
        dir.join("log"),
        EmbeddedLogConfig {
            partitions: PARTITIONS,
            ..EmbeddedLogConfig::default()
        },
    )
    .unwrap();
    let changes = EmbeddedChangeLog::open(dir.join("changes")).unwrap();
    (AnyLog::Embedded(log), AnyChangeLog::Embedded(changes))
}

/// One node: its own state, applying `partitions` (all when `None`), and that state.
fn engine(
    log: &AnyLog,
    state: &Path,
    partitions: Option<Vec<u32>>,
) -> (Engine<AnyLog>, StateStore) {
    let store = StateStore::open(state, &store_config()).unwrap();
    let engine = Engine::open(
        log.clone(),
        store.clone(),
        ModelConfig::default(),
        IndexConfig::default(),
        ProcessorConfig {
            workers: 2,
            // Small batches: many change records, interleaved between the nodes.
            max_batch_events: 300,
            partitions,
            ..ProcessorConfig::default()
        },
        Metrics::new(PARTITIONS),
    )
    .unwrap();
    (engine, store)
}

/// A node that runs: its item table and what stops it.
struct Node {
    items: ItemTable,
    store: StateStore,
    handle: marquee_stream_processor::ProcessorHandle,
    cancel: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(log: &AnyLog, changes: &AnyChangeLog, state: &Path, partitions: Vec<u32>) -> Node {
        let (
            Engine {
                items, processor, ..
            },
            store,
        ) = engine(log, state, Some(partitions));
        let processor = processor.with_changes(changes.clone()).unwrap();
        let handle = processor.handle();
        let cancel = CancellationToken::new();
        let threads = processor.spawn_workers(2, cancel.clone());
        Node {
            items,
            store,
            handle,
            cancel,
            threads,
        }
    }

    fn stop(self) {
        self.cancel.cancel();
        for thread in self.threads {
            thread.join().unwrap();
        }
    }
}

fn items(table: &ItemTable) -> ItemSummary {
    common::item_summary(table)
}

/// Waits, at most 120 s, until `table` agrees with `expected`.
async fn converges(table: &ItemTable, expected: &ItemSummary, what: &str) {
    let started = Instant::now();
    loop {
        let Some(problem) = common::item_difference(&items(table), expected) else {
            return;
        };
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: the item table did not converge: {problem}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `handle` committed `ends` for the partitions it owns.
async fn applied(handle: &marquee_stream_processor::ProcessorHandle, ends: &[u64], what: &str) {
    let started = Instant::now();
    while handle.lag_offsets(ends) != ends {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: did not apply its partitions: {:?} of {ends:?}",
            handle.committed_offsets()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one node applying every partition gives: its items, and its state for the users.
fn reference(log: &AnyLog, state: &Path) -> (ItemSummary, StateStore) {
    let (mut single, store) = engine(log, state, None);
    while single.processor.step().unwrap() > 0 {}
    (items(&single.items), store)
}

fn assert_same_users(node: &StateStore, owned: &[u32], reference: &StateStore, what: &str) {
    for user in 0..400 {
        let id = format!("u{user}");
        let expected = reference.user(&id).unwrap().map(|state| state.event_count);
        let found = node.user(&id).unwrap().map(|state| state.event_count);
        if owned.contains(&partition_for_user(&id, PARTITIONS)) {
            assert_eq!(found, expected, "{what}: {id}'s events");
        } else {
            assert_eq!(found, None, "{what}: {id} belongs to another node");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_splitting_the_partitions_share_every_item_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let (log, changes) = embedded_backends(dir.path());
    nodes_share_item_changes(log, changes, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fluvio_nodes_splitting_the_partitions_share_every_item_change_once() {
    let Some(backend) = common::fluvio_backend("cluster") else {
        return;
    };
    let LogBackend::Fluvio { topic, .. } = &backend else {
        unreachable!("a Fluvio backend")
    };
    let changes_topic = format!("{topic}-changes");
    let dir = tempfile::tempdir().unwrap();
    let log = AnyLog::open(&backend, &dir.path().join("log"), PARTITIONS, None)
        .await
        .unwrap();
    let changes = AnyChangeLog::open(&backend, &changes_topic).await.unwrap();
    nodes_share_item_changes(log, changes, dir.path()).await;
}

async fn nodes_share_item_changes(log: AnyLog, changes: AnyChangeLog, dir: &Path) {
    let first = events(0..12_000);
    for chunk in first.chunks(2_000) {
        log.append(chunk.to_vec()).await.unwrap();
    }
    let ends = log.end_offsets().unwrap();
    assert!(
        ends.iter().all(|&end| end > 0),
        "every partition has events"
    );

    // Two nodes, two partitions each, on states of their own.
    let a = Node::start(&log, &changes, &dir.join("a"), vec![0, 1]);
    let b = Node::start(&log, &changes, &dir.join("b"), vec![2, 3]);
    applied(&a.handle, &ends, "node a").await;
    applied(&b.handle, &ends, "node b").await;
    let (expected, reference_store) = reference(&log, &dir.join("reference"));
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for event in &first {
        *counts.entry(event.item_id.as_str()).or_default() += 1;
    }
    for (item, (count, pairs)) in &expected {
        assert_eq!(*count, counts[item.as_str()], "the reference counts {item}");
        assert!(!pairs.is_empty(), "{item} has neighbours");
    }
    // Each node's items hold both nodes' events: the same counts and lists as one node.
    converges(&a.items, &expected, "node a").await;
    converges(&b.items, &expected, "node b").await;
    // Users stay on the node of their partition.
    assert_same_users(&a.store, &[0, 1], &reference_store, "node a");
    assert_same_users(&b.store, &[2, 3], &reference_store, "node b");
    assert!(a.handle.owns(0) && !a.handle.owns(2));

    // A record sent twice (a shipper that failed after its append) is applied once: send the
    // first one again, then more events; the tables must reach the counts of all events, not
    // more.
    let record = changes.read(0, 1).unwrap().remove(0);
    changes.append(vec![record.value]).await.unwrap();
    let second = events(12_000..14_000);
    log.append(second.clone()).await.unwrap();
    let ends = log.end_offsets().unwrap();
    applied(&a.handle, &ends, "node a").await;
    applied(&b.handle, &ends, "node b").await;
    let (expected, reference_store) = reference(&log, &dir.join("reference-2"));
    converges(&a.items, &expected, "node a after a duplicate").await;
    converges(&b.items, &expected, "node b after a duplicate").await;

    // Memory and disk agree: node a's state reopened holds the same items, and its outbox was
    // shipped.
    let a_items = items(&a.items);
    let a_store = a.store.clone();
    a.stop();
    assert!(
        a_store.outbox(1).unwrap().is_empty(),
        "node a shipped its outbox"
    );
    drop(a_store);
    let (reopened, _) = engine(&log, &dir.join("a"), Some(vec![0, 1]));
    assert_eq!(
        common::item_difference(&items(&reopened.items), &a_items),
        None,
        "node a on disk"
    );
    drop(reopened);

    // Node b is lost. Node c, with no state at all, takes over its partitions: it reads the
    // change log (b's changes included), then applies the partitions' events to their users
    // only, up to where b's shipped changes end, and applies the rest as an owner. Nothing is
    // counted twice, and b's users are rebuilt.
    let b_store_dir = dir.join("b");
    b.stop();
    std::fs::remove_dir_all(&b_store_dir).unwrap();
    let c = Node::start(&log, &changes, &dir.join("c"), vec![2, 3]);
    applied(&c.handle, &ends, "node c").await;
    converges(&c.items, &expected, "node c, after the takeover").await;
    assert_same_users(&c.store, &[2, 3], &reference_store, "node c");

    // Node a comes back; both go on together.
    let a = Node::start(&log, &changes, &dir.join("a"), vec![0, 1]);
    let third = events(14_000..16_000);
    log.append(third).await.unwrap();
    let ends = log.end_offsets().unwrap();
    applied(&a.handle, &ends, "node a, restarted").await;
    applied(&c.handle, &ends, "node c").await;
    let (expected, _) = reference(&log, &dir.join("reference-3"));
    converges(&a.items, &expected, "node a, restarted").await;
    converges(&c.items, &expected, "node c").await;
    a.stop();
    c.stop();
}

/// Two serving nodes on one Fluvio cluster, each applying half the partitions: either takes
/// events for any user; each answers for the users of its own partitions and forwards a
/// request about the others to their node (the answer the owner gives, marked as served by
/// it), or, for a request already forwarded once, answers 421 naming the owner; both count
/// every event in their items. Fluvio only: the embedded log is one machine's, and a node
/// refuses to split its partitions (checked in `src/config.rs`'s tests); the forwarding layer's
/// own cases run everywhere (`crates/api/src/middleware/forward.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fluvio_serving_nodes_split_the_users_and_send_the_others_to_their_node() {
    let Some(backend) = common::fluvio_backend("serving") else {
        return;
    };
    let LogBackend::Fluvio { topic, .. } = &backend else {
        unreachable!("a Fluvio backend")
    };
    let changes_topic = format!("{topic}-changes");
    let dir = tempfile::tempdir().unwrap();
    let ports = [common::free_port(), common::free_port()];
    let urls = ports.map(|port| format!("http://127.0.0.1:{port}"));
    let owned = [vec![0, 1], vec![2, 3]];
    let mut nodes = Vec::new();
    for index in 0..2 {
        let mut config = common::test_config(&dir.path().join(format!("node{index}")));
        config.listen = format!("127.0.0.1:{}", ports[index]).parse().unwrap();
        config.log = backend.clone();
        config.partitions = PARTITIONS;
        config.cluster = Some(marquee_node::ClusterConfig {
            partitions: owned[index].clone(),
            changes_topic: changes_topic.clone(),
            peers: vec![(urls[1 - index].clone(), owned[1 - index].clone())],
            forward: true,
        });
        nodes.push(common::start(config).await);
    }

    // Every event goes in through node 0, whoever its user.
    let sent = events(0..3_000);
    for chunk in sent.chunks(500) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|event| serde_json::to_value(event).unwrap())
            .collect();
        let (status, answer) = common::post_json(
            &format!("{}/v1/events", urls[0]),
            &serde_json::Value::Array(body),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
    let expected: u64 = sent.iter().filter(|event| event.item_id == "m7").count() as u64;
    for url in &urls {
        common::eventually("both nodes count every event of m7", || async {
            let (status, item) = common::get_json(&format!("{url}/v1/items/m7")).await;
            (status == 200 && item["event_count"] == expected).then_some(())
        })
        .await;
        common::eventually("no lag", || async {
            let (_, ready) = common::get_json(&format!("{url}/readyz")).await;
            (ready["processor_lag_events"] == 0).then_some(())
        })
        .await;
    }

    for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        let owner = partition_for_user(user, PARTITIONS) as usize / 2;
        let other = 1 - owner;
        // The user's node has the user's state: every event of theirs, whichever node took it.
        let events_of_user = sent.iter().filter(|event| event.user_id == user).count();
        let (status, summary) = common::get_json(&format!("{}/v1/users/{user}", urls[owner])).await;
        assert_eq!(status, 200, "{user} on its node: {summary}");
        assert_eq!(summary["event_count"], events_of_user, "{user}: {summary}");
        let (status, answer) =
            common::get_json(&format!("{}/v1/users/{user}/recommendations", urls[owner])).await;
        assert_eq!(status, 200, "{user} on its node: {answer}");
        // Asked of the other node: forwarded, the owner's answer.
        let response = common::http()
            .get(format!("{}/v1/users/{user}", urls[other]))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "{user} through the other node"
        );
        assert_eq!(
            response.headers()["x-marquee-served-by"],
            urls[owner].as_str()
        );
        let forwarded: serde_json::Value = response.json().await.unwrap();
        assert_eq!(forwarded, summary, "{user}: the owner's summary");
        // Already forwarded once (two nodes that disagree about an owner): 421, never a loop.
        let response = common::http()
            .get(format!("{}/v1/users/{user}/recommendations", urls[other]))
            .header("x-marquee-forwarded", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 421, "{user} on the other node");
        assert_eq!(
            response.headers()["x-marquee-owner"].to_str().unwrap(),
            urls[owner]
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "misdirected");
        assert_eq!(body["error"]["owner"], urls[owner].as_str());
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("user_id:"),
            "{body}"
        );
        let (status, _) =
            common::get_json(&format!("{}/v1/users/{user}/export", urls[other])).await;
        assert_eq!(status, 200, "{user}'s export through the other node");
    }
    // An erasure through the node that does not own the user: done by the owner.
    let user = ["u1", "u2", "u3", "u4", "u5", "u6"]
        .into_iter()
        .find(|user| partition_for_user(user, PARTITIONS) >= 2)
        .expect("a user of node 1");
    let response = common::http()
        .delete(format!("{}/v1/users/{user}", urls[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{user}'s erasure through node 0"
    );
    let (status, _) = common::get_json(&format!("{}/v1/users/{user}", urls[1])).await;
    assert_eq!(status, 404, "{user} erased on its node");
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

/// A lost node's partitions taken over from its latest backup: the new owner resumes from the
/// backup's offsets, reads in the change log what the lost node shipped after the backup, and
/// applies those events to users only, so nothing is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_taken_over_from_a_backup_counts_no_event_twice() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (log, changes) = embedded_backends(dir);
    log.append(events(0..8_000)).await.unwrap();
    let ends = log.end_offsets().unwrap();
    let a = Node::start(&log, &changes, &dir.join("a"), vec![0, 1]);
    let b = Node::start(&log, &changes, &dir.join("b"), vec![2, 3]);
    applied(&a.handle, &ends, "node a").await;
    applied(&b.handle, &ends, "node b").await;
    let (expected, _) = reference(&log, &dir.join("reference"));
    converges(&b.items, &expected, "node b").await;

    // Node b's backup, then more events it applies and ships before it is lost.
    b.store.checkpoint(&dir.join("b-backup")).unwrap();
    log.append(events(8_000..12_000)).await.unwrap();
    let ends = log.end_offsets().unwrap();
    applied(&a.handle, &ends, "node a").await;
    applied(&b.handle, &ends, "node b").await;
    let (expected, reference_store) = reference(&log, &dir.join("reference-2"));
    converges(&a.items, &expected, "node a").await;
    converges(&b.items, &expected, "node b").await;
    b.stop();

    // Node c starts on the backup, behind what b shipped.
    let c = Node::start(&log, &changes, &dir.join("b-backup"), vec![2, 3]);
    applied(&c.handle, &ends, "node c").await;
    converges(&c.items, &expected, "node c, from the backup").await;
    assert_same_users(&c.store, &[2, 3], &reference_store, "node c");
    a.stop();
    c.stop();
}
