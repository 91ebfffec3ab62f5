//! Encryption at rest on a real node: with an encryption key, after a clean stop no file of the
//! data directory or of a backup taken while it ran holds a user id or a title in plain text
//! (every byte of every file read raw: SST files, write-ahead logs, manifests, RocksDB's own
//! logs, the saved index, the journals). The same workload on a node without a key does leave
//! both on disk, so the search can find what it looks for. The node reopens its data with the
//! key, and refuses to start without it or with another.

use crate::common;
use crate::privacy::{contains, files};

use std::path::Path;

use common::{caught_up, get_json, post, post_json, start, test_config};
use marquee_node::{NodeConfig, RunningNode};
use marquee_schemas::Cipher;
use serde_json::{Value, json};

/// Strings that occur nowhere but in this test's events and catalogue.
const USER: &str = "viewer-quixotic-7731";
const TITLE: &str = "Zanzibar Nightfall Quintessence";

fn catalogue() -> Value {
    Value::Array(
        (0..30)
            .map(|n| {
                let title = if n == 1 {
                    TITLE.to_owned()
                } else {
                    format!("Movie {n}")
                };
                json!({"item_id": format!("m{n}"), "title": title, "genres": ["Drama"]})
            })
            .collect(),
    )
}

fn events() -> String {
    let mut lines = String::new();
    for step in 0..12u32 {
        for (number, user) in [USER, "u1", "u2", "u3"].iter().enumerate() {
            let item = (number as u32 * 5 + step * 2) % 30;
            let line = json!({
                "event_id": format!("{user}-{step}"),
                "user_id": user,
                "item_id": format!("m{item}"),
                "kind": "rating",
                "value": 4.0,
                "timestamp": 1_700_000_000_000i64 + i64::from(step) * 60_000,
            });
            lines.push_str(&format!("{line}\n"));
        }
    }
    lines
}

fn config(data: &Path, backups: &Path, key: Option<&str>) -> NodeConfig {
    let mut config = test_config(data);
    config.backup_root = Some(backups.to_owned());
    config.cipher = key.map(|hex| Cipher::from_hex(hex).unwrap());
    config
}

/// Loads the catalogue and the events, checks the node serves them, takes a backup and stops.
async fn load_and_stop(config: NodeConfig) {
    let node = start(config).await;
    let base = node.url();
    let (status, answer) = post(
        &format!("{base}/v1/items"),
        "application/json",
        catalogue().to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        &format!("{base}/v1/events"),
        "application/x-ndjson",
        events(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    check_served(&node).await;
    let (status, answer) =
        post_json(&format!("{base}/v1/admin/backups"), &json!({"dir": "b"})).await;
    assert_eq!(status, 201, "{answer}");
    node.shutdown().await.unwrap();
}

/// What a viewer and an operator see: the title found by search, the user's export and list.
async fn check_served(node: &RunningNode) {
    let base = node.url();
    let (status, found) = get_json(&format!("{base}/v1/search?q=zanzibar")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"][0]["item_id"], "m1", "{found}");
    let (status, export) = get_json(&format!("{base}/v1/users/{USER}/export")).await;
    assert_eq!(status, 200, "{export}");
    assert!(export.to_string().contains("m10"), "{export}");
    let (status, list) = get_json(&format!("{base}/v1/users/{USER}/recommendations?count=5")).await;
    assert_eq!(status, 200, "{list}");
    assert!(!common::item_ids(&list).is_empty(), "{list}");
}

/// Every file under the directories holding `needle`.
fn holding(dirs: &[&Path], needle: &str) -> Vec<String> {
    dirs.iter()
        .flat_map(|dir| files(dir))
        .filter(|file| contains(&std::fs::read(file).unwrap(), needle.as_bytes()))
        .map(|file| file.display().to_string())
        .collect()
}

async fn refusal(config: NodeConfig) -> String {
    let node = RunningNode::start(config).await.unwrap();
    assert!(node.wait_ready().await.is_err(), "the node loaded");
    node.shutdown().await.unwrap_err().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_data_directory_and_its_backups_hold_no_user_id_or_title() {
    let dir = tempfile::tempdir().unwrap();
    let key = Cipher::generate_hex().unwrap();

    // Without a key, the same workload leaves both strings on disk: the search below works.
    let (plain, plain_backups) = (dir.path().join("plain"), dir.path().join("plain-backups"));
    load_and_stop(config(&plain, &plain_backups, None)).await;
    for needle in [USER, TITLE] {
        assert!(
            !holding(&[&plain, &plain_backups], needle).is_empty(),
            "a plain data directory holds {needle}"
        );
    }

    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    load_and_stop(config(&data, &backups, Some(&key))).await;
    assert!(backups.join("b").join("state").exists());
    for needle in [USER, TITLE, "Zanzibar"] {
        let found = holding(&[&data, &backups], needle);
        assert!(found.is_empty(), "{needle} is in plain text in {found:?}");
    }
    assert!(
        !data.join("search").exists(),
        "the search index is kept in memory"
    );

    // The key opens everything again; the data directory refuses to start without it, or with
    // another key.
    let node = start(config(&data, &backups, Some(&key))).await;
    check_served(&node).await;
    node.shutdown().await.unwrap();
    let without = refusal(config(&data, &backups, None)).await;
    assert!(
        without.contains("it is encrypted") && without.contains("encryption_key_file"),
        "{without}"
    );
    let other = Cipher::generate_hex().unwrap();
    let wrong = refusal(config(&data, &backups, Some(&other))).await;
    assert!(wrong.contains("created with another key"), "{wrong}");
    // A plain data directory is not opened with a key either (it would mix the two).
    let plain_with_key = refusal(config(&plain, &plain_backups, Some(&key))).await;
    assert!(
        plain_with_key.contains("created without encryption"),
        "{plain_with_key}"
    );
}
