//! The journals of erasures and revoked keys on a real node: every way of replacing a state —
//! a restore from a backup taken before the erasure, a rebuild from a log that still holds the
//! erased user's events, a replay whose window an erasure fell into — keeps an erased user
//! erased and a revoked key revoked.

use crate::common;

use std::path::Path;

use common::{caught_up, post, post_json, start, test_config};
use marquee_api::guard::AuthMode;
use marquee_api::keys::{KeySet, Scope, keys_path};
use marquee_node::RunningNode;
use marquee_stream_processor::backup;
use serde_json::json;

/// Distinctive ids, so that a search of the files cannot match another id.
const ERASED: &str = "erased-before-the-restore";
const ERASED_LATER: &str = "erased-during-the-replay";
const KEPT: &str = "kept-throughout";

fn events(users: &[&str]) -> String {
    let mut body = String::new();
    for (number, user) in users.iter().enumerate() {
        for step in 0..8 {
            let item = (number * 5 + step * 3) % 30;
            body.push_str(
                &json!({
                    "event_id": format!("{user}-{step}"),
                    "user_id": user,
                    "item_id": format!("m{item}"),
                    "kind": "rating",
                    "value": 4.5,
                    "timestamp": 1_700_000_000_000i64 + step as i64,
                })
                .to_string(),
            );
            body.push('\n');
        }
    }
    body
}

async fn user_status(node: &RunningNode, user: &str, key: &str) -> u16 {
    common::http()
        .get(format!("{}/v1/users/{user}/export", node.url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Starts a node on `data` with auth on, and checks what every replaced state must show: the
/// erased users are unknown (their export is 404), the kept one is there, the revoked key is
/// refused and the admin key is not.
async fn check(data: &Path, erased: &[&str], admin: &str, revoked: &str, what: &str) {
    let mut config = test_config(data);
    config.auth = AuthMode::On;
    let node = start(config).await;
    caught_up(&node).await;
    for user in erased {
        assert_eq!(user_status(&node, user, admin).await, 404, "{what}: {user}");
    }
    assert_eq!(user_status(&node, KEPT, admin).await, 200, "{what}: {KEPT}");
    assert_eq!(
        user_status(&node, KEPT, revoked).await,
        401,
        "{what}: the revoked key"
    );
    node.shutdown().await.unwrap();
}

fn remove_state(data: &Path) {
    for part in ["state", "log", "index", "search"] {
        let path = data.join(part);
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rebuild_and_replay_keep_erased_users_erased_and_revoked_keys_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&data).unwrap();
    let mut keys = KeySet::default();
    let (admin, _) = keys.create("operator", &[Scope::Admin], None).unwrap();
    let (revoked, revoked_record) = keys.create("leaked", &[Scope::Admin], None).unwrap();
    keys.save(&keys_path(&data)).unwrap();

    let mut config = test_config(&data);
    config.backup_root = Some(backups.clone());
    let node = start(config).await;
    let (status, answer) = post(
        &format!("{}/v1/events", node.url()),
        "application/x-ndjson",
        events(&[ERASED, ERASED_LATER, KEPT]),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    caught_up(&node).await;
    let (status, answer) = post_json(
        &format!("{}/v1/admin/backups", node.url()),
        &json!({"dir": "before"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let response = common::http()
        .delete(format!("{}/v1/users/{ERASED}", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    node.shutdown().await.unwrap();
    let mut keys = KeySet::load(&keys_path(&data)).unwrap();
    keys.revoke(&revoked_record.id).unwrap();
    keys.save(&keys_path(&data)).unwrap();

    // 1. Restore the backup from before the erasure and the revocation, keys file included.
    remove_state(&data);
    std::fs::remove_file(keys_path(&data)).unwrap();
    backup::restore(&backups.join("before"), &data, &[]).unwrap();
    let restored_keys = std::fs::read_to_string(keys_path(&data)).unwrap();
    assert!(
        restored_keys.contains(&revoked_record.id),
        "the backup's keys file lists the revoked key"
    );
    check(&data, &[ERASED], &admin, &revoked, "restored").await;

    // 2. Rebuild from a log that still holds the erased user's events: the backup's log,
    // without its state.
    remove_state(&data);
    backup::restore(&backups.join("before"), &data, &[]).unwrap();
    std::fs::remove_dir_all(data.join("state")).unwrap();
    check(&data, &[ERASED], &admin, &revoked, "rebuilt from the log").await;

    // 3. A replay, then an erasure on the node before the switch to the replayed state.
    let node = start(test_config(&data)).await;
    caught_up(&node).await;
    let into = dir.path().join("replayed");
    crate::replay::replay(&data, &into, &[]);
    let response = common::http()
        .delete(format!("{}/v1/users/{ERASED_LATER}", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    node.shutdown().await.unwrap();
    std::fs::remove_dir_all(data.join("state")).unwrap();
    std::fs::rename(into.join("state"), data.join("state")).unwrap();
    check(
        &data,
        &[ERASED, ERASED_LATER],
        &admin,
        &revoked,
        "replayed and switched",
    )
    .await;

    // No file of the data directory holds an erased id (the journal holds keyed hashes).
    for file in crate::privacy::files(&data) {
        let bytes = std::fs::read(&file).unwrap();
        for user in [ERASED, ERASED_LATER] {
            assert!(
                !crate::privacy::contains(&bytes, user.as_bytes()),
                "{} holds {user}",
                file.display()
            );
        }
    }
    let journal = std::fs::read_to_string(data.join("erasures.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2, "{journal}");
}
