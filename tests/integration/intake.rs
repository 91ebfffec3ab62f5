//! `marquee intake` (the real binary) into a running node: records of a followed NDJSON file
//! (the source that runs everywhere) and of a Fluvio topic (with `MARQUEE_FLUVIO_ENDPOINT`; the
//! same checks), sent at least once and applied once — across a killed and restarted intake,
//! and for a record written twice by its producer — with bad records named by offset while the
//! others go through.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{caught_up, get_json, start, test_config};
use serde_json::{Value, json};

const USERS: usize = 12;

fn intake(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marquee"));
    command.arg("intake").args(args).env("MARQUEE_LOG", "warn");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Event `n`: every fourth without an `event_id` (the intake derives one from its bytes).
fn event(n: usize) -> Value {
    let mut event = json!({
        "user_id": format!("feed-{}", n % USERS),
        "item_id": format!("m{}", (n * 13) % 300),
        "kind": "watch",
        "value": 0.5,
        "timestamp": 1_700_000_000_000_i64 + n as i64 * 1_000,
    });
    if !n.is_multiple_of(4) {
        event["event_id"] = json!(format!("plays-{n}"));
    }
    event
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|n| format!("{}\n", event(n))).collect()
}

/// Per user: the applied event count.
async fn applied(url: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for user in 0..USERS {
        let id = format!("feed-{user}");
        let (_, export) = get_json(&format!("{url}/v1/users/{id}/export")).await;
        let count = export["state"]["event_count"].as_u64().unwrap_or(0);
        counts.insert(id, count);
    }
    counts
}

/// What every user should have once events `0..events` are applied, each once.
fn expected(events: usize) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for n in 0..events {
        *counts.entry(format!("feed-{}", n % USERS)).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_file_is_applied_once_across_restarts_with_bad_records_named() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(&dir.path().join("data"))).await;
    let url = node.url();
    let file = dir.path().join("plays.ndjson");
    let progress = dir.path().join("plays.ndjson.intake-progress");
    let file_arg = file.to_str().unwrap();

    // 100 events, two bad records among them, and a last line still being written.
    let bad_json = "{\"user_id\": \"feed-0\", \"item_id\"\n";
    let bad_kind = format!(
        "{}\n",
        json!({"user_id": "feed-1", "item_id": "m1", "kind": "purchase"})
    );
    append(&file, &lines(0..50));
    let bad_json_at = std::fs::metadata(&file).unwrap().len();
    append(&file, bad_json);
    let bad_kind_at = std::fs::metadata(&file).unwrap().len();
    append(&file, &bad_kind);
    append(&file, &lines(50..100));
    let partial_at = std::fs::metadata(&file).unwrap().len();
    let partial = event(100).to_string();
    append(&file, &partial[..20]);

    let output = intake(&["--file", file_arg, "--url", &url, "--once", "--batch", "30"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("offset {bad_json_at}: not JSON")),
        "{text}"
    );
    assert!(
        text.contains(&format!("offset {bad_kind_at}: kind:")),
        "{text}"
    );
    assert!(
        text.contains("100 events sent, 100 accepted, 2 refused"),
        "{text}"
    );
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&progress).unwrap()).unwrap();
    assert_eq!(
        record["next"],
        json!([partial_at]),
        "the unfinished line is read later"
    );
    caught_up(&node).await;
    assert_eq!(applied(&url).await, expected(100));

    // The line finished, more appended while a following intake runs; killed outright wherever
    // it is (mid-batch or idle), then run again: what it sent is sent again at most, never lost.
    append(&file, &format!("{}\n", &partial[20..]));
    let mut follower = intake(&[
        "--file",
        file_arg,
        "--url",
        &url,
        "--batch",
        "7",
        "--poll-ms",
        "20",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    for start in (101..1_101).step_by(100) {
        append(&file, &lines(start..start + 100));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    common::eventually("the follower to send part of the file", || async {
        let record: Value = serde_json::from_str(&std::fs::read_to_string(&progress).ok()?).ok()?;
        (record["next"][0].as_u64()? > partial_at + 20_000).then_some(())
    })
    .await;
    follower.kill().unwrap();
    follower.wait().unwrap();
    // The producer writes a record again (its retry): the same bytes, the same derived id.
    append(&file, &lines(0..8));
    let output = intake(&["--file", file_arg, "--url", &url, "--once"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    caught_up(&node).await;
    assert_eq!(
        applied(&url).await,
        expected(1_101),
        "each event applied once"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_progress_file_of_another_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.ndjson");
    std::fs::write(&file, "").unwrap();
    let progress = dir.path().join("shared.progress");
    std::fs::write(
        &progress,
        r#"{"source":"file /elsewhere.ndjson","next":[10]}"#,
    )
    .unwrap();
    let output = intake(&[
        "--file",
        file.to_str().unwrap(),
        "--progress-file",
        progress.to_str().unwrap(),
        "--once",
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("records the intake of file /elsewhere.ndjson"),
        "{text}"
    );
}

#[cfg(feature = "fluvio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fluvio_topic_is_applied_once_across_restarts() {
    use marquee_ingest::{FluvioLog, FluvioLogConfig};
    let Ok(endpoint) = std::env::var("MARQUEE_FLUVIO_ENDPOINT") else {
        eprintln!(
            "skipped: set MARQUEE_FLUVIO_ENDPOINT=HOST:PORT (a running Fluvio cluster's SC) to \
             run the intake from a Fluvio topic; the file test above covers the same logic"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(&dir.path().join("data"))).await;
    let url = node.url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("marquee-test-intake-{}", nanos % 1_000_000_000_000);
    let producer = FluvioLog::connect(FluvioLogConfig {
        topic: topic.clone(),
        partitions: 2,
        ..FluvioLogConfig::new(endpoint.clone())
    })
    .await
    .unwrap();
    let records = |range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        range.map(|n| event(n).to_string().into_bytes()).collect()
    };
    producer.append_raw(records(0..300)).await.unwrap();
    producer
        .append_raw(vec![b"not json".to_vec()])
        .await
        .unwrap();
    let progress = dir.path().join("fluvio.progress");
    let args = [
        "--fluvio",
        &endpoint,
        "--topic",
        &topic,
        "--url",
        &url,
        "--progress-file",
        progress.to_str().unwrap(),
        "--once",
    ];
    let output = intake(&args).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("300 events sent, 300 accepted, 1 refused"));
    // More, and some again (a producer's retry): the second run resumes, applies each once.
    producer.append_raw(records(300..500)).await.unwrap();
    producer.append_raw(records(0..50)).await.unwrap();
    let output = intake(&args).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    caught_up(&node).await;
    assert_eq!(applied(&url).await, expected(500));
    node.shutdown().await.unwrap();
}
