//! `marquee replay` (the real binary) beside a node that keeps serving: the rebuilt state equals
//! the live one for the same events (identical per-user counts and seen items, recommendation
//! lists with a mean top-10 overlap ≥ 0.9), an erased user stays erased, the documented switch
//! (move the rebuilt state in, restart) serves it, and `--until` stops at an append time.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{caught_up, get_json, item_ids, post, start, test_config};
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_ingest::LogBackend;
use marquee_vector_store::{StateStore, StoreConfig};
use serde_json::Value;

const USERS: u64 = 120;

fn synthetic() -> Synthetic {
    Synthetic::new(SyntheticConfig {
        seed: 11,
        users: USERS,
        items: 300,
        clusters: 5,
        events: 12_000,
        ..SyntheticConfig::default()
    })
}

async fn send(url: &str, events: &[marquee_schemas::Event]) {
    for chunk in events.chunks(1_000) {
        let body: String = chunk
            .iter()
            .map(|event| format!("{}\n", serde_json::to_string(event).unwrap()))
            .collect();
        let (status, answer) =
            post(&format!("{url}/v1/events"), "application/x-ndjson", body).await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// Per user: event count, seen items, top 10.
async fn views(url: &str) -> BTreeMap<String, (u64, Value, Vec<String>)> {
    let mut views = BTreeMap::new();
    for user in 0..USERS {
        let id = Synthetic::user_id(user);
        let (status, summary) = get_json(&format!("{url}/v1/users/{id}")).await;
        if status == 404 {
            continue;
        }
        let (_, list) = get_json(&format!("{url}/v1/users/{id}/recommendations")).await;
        views.insert(
            id,
            (
                summary["event_count"].as_u64().unwrap(),
                summary["seen_items"].clone(),
                item_ids(&list),
            ),
        );
    }
    views
}

pub(crate) fn replay(data_dir: &Path, into: &Path, extra: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_marquee"))
        .arg("replay")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--into")
        .arg(into)
        .args(extra)
        .env("MARQUEE_LOG", "warn")
        .output()
        .expect("marquee replay runs");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn event_count(store: &StateStore, user: &str) -> u64 {
    store
        .user(user)
        .unwrap()
        .map_or(0, |state| state.event_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_beside_a_serving_node_rebuilds_the_same_state() {
    replay_beside_a_serving_node_rebuilds_the_same_state(LogBackend::Embedded).await;
}

/// The same with the events in a Fluvio topic: replay reads the topic like any consumer, and
/// the erased user, whose events stay in the topic, is kept out by the copied erasure list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_fluvio_a_replay_beside_a_serving_node_rebuilds_the_same_state() {
    let Some(backend) = common::fluvio_backend("replay") else {
        return;
    };
    replay_beside_a_serving_node_rebuilds_the_same_state(backend).await;
}

async fn replay_beside_a_serving_node_rebuilds_the_same_state(log: LogBackend) {
    let config = |data: &Path| {
        let mut config = test_config(data);
        config.log = log.clone();
        config
    };
    // `replay` is told where the log is, as an operator would.
    let log_flags: Vec<String> = match &log {
        LogBackend::Embedded => Vec::new(),
        LogBackend::Fluvio {
            endpoint, topic, ..
        } => vec![
            "--log".into(),
            "fluvio".into(),
            "--fluvio-endpoint".into(),
            endpoint.clone(),
            "--fluvio-topic".into(),
            topic.clone(),
        ],
    };
    let replay = |data: &Path, into: &Path, window: &[&str]| {
        let mut extra: Vec<&str> = window.to_vec();
        extra.extend(log_flags.iter().map(String::as_str));
        replay(data, into, &extra);
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = start(config(&data)).await;
    let url = node.url();
    let generator = synthetic();
    let catalogue: Vec<Value> = generator
        .items()
        .map(|item| serde_json::to_value(item).unwrap())
        .collect();
    let (status, answer) =
        common::post_json(&format!("{url}/v1/items"), &Value::from(catalogue)).await;
    assert_eq!(status, 200, "{answer}");
    let events: Vec<_> = generator.events().collect();
    let (first, second) = events.split_at(events.len() / 2);

    send(&url, first).await;
    caught_up(&node).await;
    // The append time that separates the halves, for `--until`.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = common::now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(&url, second).await;
    // An erased user's history is not brought back by a replay.
    let erased = Synthetic::user_id(3);
    let response = common::http()
        .delete(format!("{url}/v1/users/{erased}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    caught_up(&node).await;
    let live = views(&url).await;
    assert!(live.len() > 100 && !live.contains_key(&erased));

    // Replays while the node serves: all of it, and up to the middle.
    let rebuilt = dir.path().join("rebuilt");
    replay(&data, &rebuilt, &["--from", "earliest"]);
    let halfway = dir.path().join("halfway");
    replay(&data, &halfway, &["--until", &between.to_string()]);
    let (status, _) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 200, "the node kept serving");

    // `--until`: the first half only, per user.
    {
        let store = StateStore::open(
            halfway.join("state"),
            &StoreConfig {
                dimension: test_config(&data).model.stored_dimension(),
                dedup_window: Duration::from_secs(3600),
                block_cache_bytes: 8 << 20,
                cipher: None,
            },
        )
        .unwrap();
        for user in [0, 1, 2, 7, 50] {
            let id = Synthetic::user_id(user);
            let expected = first.iter().filter(|event| event.user_id == id).count() as u64;
            assert_eq!(event_count(&store, &id), expected, "{id}");
        }
        assert_eq!(
            event_count(&store, &erased),
            0,
            "the erased user stays erased"
        );
    }

    // The documented switch: stop, move the rebuilt state in, start.
    node.shutdown().await.unwrap();
    std::fs::rename(data.join("state"), dir.path().join("old-state")).unwrap();
    std::fs::rename(rebuilt.join("state"), data.join("state")).unwrap();
    let node = start(config(&data)).await;
    caught_up(&node).await;
    let replayed = views(&node.url()).await;
    assert_eq!(
        replayed.keys().collect::<Vec<_>>(),
        live.keys().collect::<Vec<_>>()
    );
    let mut overlap = 0.0;
    for (user, (count, seen, list)) in &live {
        let (replayed_count, replayed_seen, replayed_list) = &replayed[user];
        assert_eq!(count, replayed_count, "{user}: event count");
        assert_eq!(seen, replayed_seen, "{user}: seen items");
        let shared = list
            .iter()
            .filter(|item| replayed_list.contains(item))
            .count();
        overlap += shared as f64 / list.len().max(1) as f64;
    }
    let mean = overlap / live.len() as f64;
    assert!(mean >= 0.9, "mean top-10 overlap {mean:.3}");
    node.shutdown().await.unwrap();
}

#[test]
fn replay_refuses_a_directory_that_is_not_empty_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("into");
    std::fs::create_dir_all(&into).unwrap();
    std::fs::write(into.join("something"), b"x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_marquee"))
        .args(["replay", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--into")
        .arg(&into)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--into") && stderr.contains("not empty"),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_marquee"))
        .args(["replay", "--data-dir"])
        .arg(dir.path().join("absent"))
        .arg("--into")
        .arg(dir.path().join("new"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no event log"), "{stderr}");
}
