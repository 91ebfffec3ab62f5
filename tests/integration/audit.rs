//! The audit log on a real node with keys: an export, an erasure, a backup and a saved filter
//! are each recorded once, with the key id, the route, the request id and the status; reads
//! are not recorded; the user's id never reaches the audit files (a keyed hash stands for it).

use crate::common;

use common::{caught_up, http, start, test_config};
use marquee_api::guard::AuthMode;
use marquee_api::keys::{KeySet, Scope, keys_path};
use serde_json::{Value, json};

const USER: &str = "audited-user-5d1e";

/// Every record of the audit directory, oldest first.
fn records(data: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_actions_and_exports_are_recorded_with_the_key_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = keys_path(dir.path());
    let mut keys = KeySet::default();
    let (admin, admin_record) = keys.create("ops", &[Scope::Admin], None).unwrap();
    let (ingest, _) = keys.create("app", &[Scope::Ingest], None).unwrap();
    keys.save(&path).unwrap();
    let mut config = test_config(dir.path());
    config.auth = AuthMode::On;
    let node = start(config).await;
    let base = node.url();
    let client = http();

    let event = json!({"user_id": USER, "item_id": "m1", "kind": "like"});
    let response = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&ingest)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    caught_up(&node).await;

    let actions = [
        (
            client.get(format!("{base}/v1/users/{USER}/export")),
            "GET /v1/users/{user_id}/export",
            200,
        ),
        (
            client
                .put(format!("{base}/v1/admin/filters/recent"))
                .json(&json!({"expression": "year >= 2000"})),
            "PUT /v1/admin/filters/{name}",
            200,
        ),
        (
            client
                .post(format!("{base}/v1/admin/backups"))
                .json(&json!({"dir": "/etc/marquee-backup"})),
            "POST /v1/admin/backups",
            422,
        ),
        (
            client.delete(format!("{base}/v1/users/{USER}")),
            "DELETE /v1/users/{user_id}",
            200,
        ),
    ];
    let mut expected = Vec::new();
    for (request, action, status) in actions {
        let response = request.bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{action}");
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        expected.push((action, request_id, status));
    }
    // Reads are not actions.
    for read in ["/v1/admin/processor", "/v1/admin/filters"] {
        let response = client
            .get(format!("{base}{read}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{read}");
    }
    // A refused key is no actor of anything.
    let response = client
        .delete(format!("{base}/v1/users/{USER}"))
        .bearer_auth(&ingest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    let erasures = common::metric_sample(
        &metrics,
        r#"marquee_audit_records_total{action="DELETE /v1/users/{user_id}"}"#,
    );
    assert_eq!(erasures, 1.0, "{metrics}");
    node.shutdown().await.unwrap();

    let records = records(dir.path());
    assert_eq!(records.len(), expected.len(), "{records:#?}");
    for (record, (action, request_id, status)) in records.iter().zip(&expected) {
        assert_eq!(record["action"], **action, "{record}");
        assert_eq!(
            record["actor"],
            format!("key:{}", admin_record.id),
            "{record}"
        );
        assert_eq!(record["request_id"], *request_id, "{record}");
        assert_eq!(record["status"], *status, "{record}");
        assert!(record["at_ms"].as_i64().unwrap() > 0, "{record}");
    }
    // The export and the erasure name the same subject, by a hash.
    assert_eq!(records[0]["subject"], records[3]["subject"]);
    assert_eq!(records[0]["subject"].as_str().unwrap().len(), 32);
    assert_eq!(records[1]["parameters"]["name"], "recent");
    for file in std::fs::read_dir(dir.path().join("audit")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(USER.len())
                .any(|window| window == USER.as_bytes()),
            "the user id is in the audit log"
        );
    }
}
