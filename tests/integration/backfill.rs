//! `marquee backfill` (the real binary) into a running node: original timestamps kept, ids
//! given to lines without one, a run killed midway resumed from its progress file with nothing
//! lost and nothing applied twice, bad lines reported by number while the others go through,
//! and `backfill movielens` on the shared data set.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{caught_up, get_json, start, test_config};
use serde_json::{Value, json};

const USERS: usize = 40;
const EVENTS: usize = 6_000;

/// Event lines: every third without an `event_id`, all with a timestamp in the past.
fn lines() -> Vec<Value> {
    (0..EVENTS)
        .map(|n| {
            let mut event = json!({
                "user_id": format!("hist-{}", n % USERS),
                "item_id": format!("m{}", (n * 7) % 500),
                "kind": "rating",
                "value": 1.0 + (n % 9) as f64 / 2.0,
                "timestamp": 1_600_000_000_000_i64 + n as i64 * 60_000,
            });
            if n % 3 != 0 {
                event["event_id"] = json!(format!("hist-event-{n}"));
            }
            event
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn backfill(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marquee"));
    command
        .arg("backfill")
        .args(args)
        .env("MARQUEE_LOG", "warn");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Per user: applied event count and the timestamps of the history, from the export.
async fn per_user(url: &str) -> BTreeMap<String, (u64, BTreeSet<i64>)> {
    let mut users = BTreeMap::new();
    for user in 0..USERS {
        let id = format!("hist-{user}");
        let (_, export) = get_json(&format!("{url}/v1/users/{id}/export")).await;
        let stamps = export["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["event"]["timestamp"].as_i64().unwrap())
            .collect();
        users.insert(
            id,
            (export["state"]["event_count"].as_u64().unwrap(), stamps),
        );
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backfill_resumes_and_applies_every_line_once_with_its_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(&dir.path().join("data"))).await;
    let url = node.url();
    let file = dir.path().join("history.ndjson");
    let lines = lines();
    write_lines(&file, &lines);
    let progress = dir.path().join("history.ndjson.backfill-progress");

    // A slow run (1,000 events/s), killed after about two seconds.
    let mut slow = backfill(&[file.to_str().unwrap(), "--url", &url, "--rate", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::eventually("some progress recorded", || async {
        std::fs::read_to_string(&progress)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .filter(|record| record["done"].as_u64() >= Some(1_000))
    })
    .await;
    slow.kill().unwrap();
    slow.wait().unwrap();
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&progress).unwrap()).unwrap();
    let done = record["done"].as_u64().unwrap();
    assert!(done > 0 && done < EVENTS as u64, "{record}");

    // The second run starts after what the first one recorded, and completes.
    let output = backfill(&[file.to_str().unwrap(), "--url", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("resuming after {done} of {EVENTS}")),
        "{}",
        stderr(&output)
    );
    assert!(
        !progress.exists(),
        "the progress file is removed at the end"
    );

    caught_up(&node).await;
    let users = per_user(&url).await;
    for (user, (count, stamps)) in &users {
        let expected: BTreeSet<i64> = lines
            .iter()
            .filter(|line| line["user_id"] == user.as_str())
            .map(|line| line["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!(*count, expected.len() as u64, "{user}: applied once each");
        assert_eq!(stamps, &expected, "{user}: original timestamps");
    }

    // The whole file again: every line is known by its id (own or derived), nothing changes.
    let again = backfill(&[file.to_str().unwrap(), "--url", &url])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    caught_up(&node).await;
    let counts_after: Vec<u64> = per_user(&url)
        .await
        .values()
        .map(|(count, _)| *count)
        .collect();
    let counts_before: Vec<u64> = users.values().map(|(count, _)| *count).collect();
    assert_eq!(counts_after, counts_before);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_named_by_number_and_the_others_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(&dir.path().join("data"))).await;
    let url = node.url();
    let file = dir.path().join("mixed.ndjson");
    let good = json!({"user_id": "mixed", "item_id": "m1", "kind": "like", "timestamp": 1_600_000_000_000_i64});
    let no_time = json!({"user_id": "mixed", "item_id": "m2", "kind": "like"});
    let bad_value = json!({"user_id": "mixed", "item_id": "m3", "kind": "rating", "value": 9, "timestamp": 1_600_000_000_000_i64});
    let good_too = json!({"user_id": "mixed", "item_id": "m4", "kind": "view", "timestamp": 1_600_000_060_000_i64});
    let text = format!("{good}\n{no_time}\n\nnot json\n{bad_value}\n{good_too}\n");
    std::fs::write(&file, text).unwrap();

    let output = backfill(&[file.to_str().unwrap(), "--url", &url])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "refused lines make the command fail"
    );
    let text = stderr(&output);
    assert!(text.contains("line 2: timestamp:"), "{text}");
    assert!(text.contains("line 4: not JSON"), "{text}");
    assert!(text.contains("line 5: value:"), "{text}");
    assert!(text.contains("3 lines were refused"), "{text}");
    caught_up(&node).await;
    let (_, export) = get_json(&format!("{url}/v1/users/mixed/export")).await;
    assert_eq!(export["state"]["event_count"], 2, "{export}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_movielens_sends_the_catalogue_and_the_ratings() {
    let Some(movielens) = marquee_datasets::movielens::shared_small_dataset() else {
        eprintln!("skipped: ml-latest-small not found (set MARQUEE_MOVIELENS_DIR)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(&dir.path().join("data"))).await;
    let url = node.url();
    let progress = dir.path().join("ml.progress");
    let output = backfill(&[
        "movielens",
        movielens.to_str().unwrap(),
        "--url",
        &url,
        "--progress-file",
        progress.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    caught_up(&node).await;
    let (_, user) = get_json(&format!("{url}/v1/users/1")).await;
    assert_eq!(user["event_count"], 232, "user 1 rated 232 movies");
    let (status, item) = get_json(&format!("{url}/v1/items/1")).await;
    assert_eq!(status, 200);
    assert_eq!(item["title"], "Toy Story");
    node.shutdown().await.unwrap();
}
