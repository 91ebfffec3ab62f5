//! Backup and restore round trip on a real node: a backup taken while the node runs restores,
//! into a new data directory, exactly the users and events of the moment it was taken.

use crate::common;

use std::collections::BTreeMap;

use common::{caught_up, get_json, item_ids, post, post_json, start, test_config};
use marquee_stream_processor::backup::{self, BackupError};
use serde_json::{Value, json};

fn events(round: u32, users: u32) -> String {
    let mut body = String::new();
    for user in 0..users {
        for step in 0..6 {
            let item = (user * 7 + step * 3 + round * 11) % 40;
            body.push_str(
                &json!({
                    "event_id": format!("r{round}-u{user}-{step}"),
                    "user_id": format!("u{user}"),
                    "item_id": format!("m{item}"),
                    "kind": "rating",
                    "value": 4.5,
                    "timestamp": 1_700_000_000_000i64 + i64::from(round * 1000 + step),
                })
                .to_string(),
            );
            body.push('\n');
        }
    }
    body
}

/// Each user's summary (count, seen items) and recommendation list.
async fn snapshot(base: &str, users: u32) -> BTreeMap<String, (Value, Value, Vec<String>)> {
    let mut snapshot = BTreeMap::new();
    for user in 0..users {
        let (status, summary) = get_json(&format!("{base}/v1/users/u{user}")).await;
        assert_eq!(status, 200, "{summary}");
        let (_, list) = get_json(&format!("{base}/v1/users/u{user}/recommendations")).await;
        snapshot.insert(
            format!("u{user}"),
            (
                summary["event_count"].clone(),
                summary["seen_items"].clone(),
                item_ids(&list),
            ),
        );
    }
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_the_state_and_the_log_as_of_when_it_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup_root = dir.path().join("backups");
    let backup_dir = backup_root.join("first");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("keys.json"), "{\"keys\": []}").unwrap();
    let mut config = test_config(&data);
    config.backup_root = Some(backup_root.clone());
    let node = start(config).await;
    let base = node.url();
    let ingest = format!("{base}/v1/events");
    let (status, answer) = post(&ingest, "application/x-ndjson", events(0, 20)).await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    let before = snapshot(&base, 20).await;

    // Refusals name the field; nothing is written outside the backup root.
    let backups = format!("{base}/v1/admin/backups");
    let escape = dir.path().join("escaped");
    for outside in [
        json!(escape),
        json!(format!("{}/../escaped", backup_root.display())),
        json!("../escaped"),
        json!(backup_root),
        json!(""),
    ] {
        let (status, answer) = post_json(&backups, &json!({ "dir": outside })).await;
        assert_eq!(status, 422, "{outside}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("dir:"), "{message}");
        assert!(!escape.exists(), "{outside}");
    }
    std::fs::create_dir_all(backup_root.join("taken")).unwrap();
    std::fs::write(backup_root.join("taken/file"), "x").unwrap();
    let (status, answer) = post_json(&backups, &json!({"dir": "taken"})).await;
    assert_eq!(status, 422, "an existing, non-empty directory: {answer}");

    // A name is a directory inside the root, its owner's only.
    let (status, answer) = post_json(&backups, &json!({"dir": "first"})).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["dir"], backup_dir.display().to_string(), "{answer}");
    assert!(answer["manifest"]["bytes"].as_u64().unwrap() > 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    // Later events are not in the backup.
    let (status, _) = post(&ingest, "application/x-ndjson", events(1, 20)).await;
    assert_eq!(status, 202);
    caught_up(&node).await;
    let after = snapshot(&base, 20).await;
    assert_ne!(before, after, "the second round changed the state");
    node.shutdown().await.unwrap();

    // Restore into a new data directory; a directory that holds a state is refused.
    assert!(matches!(
        backup::restore(&backup_dir, &data, &[]),
        Err(BackupError::TargetInUse(_))
    ));
    let restored = dir.path().join("restored");
    let manifest = backup::restore(&backup_dir, &restored, &[]).unwrap();
    assert_eq!(manifest.format, 1);
    assert!(restored.join("keys.json").exists());
    let node = start(test_config(&restored)).await;
    caught_up(&node).await;
    let services = node.services().unwrap();
    let ends: u64 = marquee_ingest::EventLog::end_offsets(&services.log)
        .unwrap()
        .iter()
        .sum();
    assert_eq!(ends, 20 * 6, "the restored log holds the first round only");
    let restored_snapshot = snapshot(&node.url(), 20).await;
    for (user, (count, seen, list)) in &before {
        let (restored_count, restored_seen, restored_list) = &restored_snapshot[user];
        assert_eq!((count, seen), (restored_count, restored_seen), "{user}");
        assert_eq!(
            list, restored_list,
            "{user}: the same state gives the same list"
        );
    }
    node.shutdown().await.unwrap();
}

/// `POST /v1/admin/backups` as a client that will not wait: 202, a job polled to its end.
async fn backup_async(base: &str, dir: &str) -> Value {
    let request = common::http()
        .post(format!("{base}/v1/admin/backups"))
        .json(&json!({ "dir": dir }));
    let job = common::start_job(request).await;
    assert_eq!(job["kind"], "backup", "{job}");
    common::finished_job(base, job["url"].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_runs_as_a_job_that_says_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"));
    let backup_root = dir.path().join("backups");
    config.backup_root = Some(backup_root.clone());
    let node = start(config).await;
    let base = node.url();
    let (status, _) = post(
        &format!("{base}/v1/events"),
        "application/x-ndjson",
        events(0, 5),
    )
    .await;
    assert_eq!(status, 202);
    caught_up(&node).await;

    let job = backup_async(&base, "nightly").await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let taken = &job["result"];
    assert_eq!(
        taken["dir"],
        backup_root.join("nightly").display().to_string()
    );
    assert!(taken["manifest"]["bytes"].as_u64().unwrap() > 0, "{job}");
    assert!(backup_root.join("nightly/manifest.json").exists());

    // The same directory again: the job fails with the error a waiting request would get.
    let failed = backup_async(&base, "nightly").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["status"], 422, "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nightly"),
        "{failed}"
    );
    let (status, jobs) = get_json(&format!("{base}/v1/admin/jobs")).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [failed["id"].as_str().unwrap(), job["id"].as_str().unwrap()]
    );
    let (status, unknown) = get_json(&format!("{base}/v1/admin/jobs/backup-999")).await;
    assert_eq!(status, 404, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("id:")
    );

    // A client that waits gets the backup itself, as before.
    let (status, answer) = post_json(
        &format!("{base}/v1/admin/backups"),
        &json!({"dir": "waited"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer["manifest"]["bytes"].as_u64().unwrap() > 0);
    node.shutdown().await.unwrap();
}
