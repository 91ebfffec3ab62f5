//! A corrupt stored record, written into the real RocksDB files of a stopped node, gives an error
//! and a metric when it is read — never a panic, never a silent skip: the query that meets it
//! answers 500 `corrupt_record`, and the processor stops before it, says it is failing, and
//! retries instead of passing over it.

use crate::common;

use common::{caught_up, eventually, get_json, get_text, post, start, test_config};
use marquee_schemas::partition_for_user;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_an_error_and_a_metric_never_a_panic_or_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(test_config(dir.path())).await;
    let base = node.url();
    let body: String = ["u1", "u2", "u1", "u2"]
        .iter()
        .enumerate()
        .map(|(n, user)| {
            format!(
                "{}\n",
                json!({"event_id": format!("e{n}"), "user_id": user, "item_id": format!("m{n}"), "kind": "like"})
            )
        })
        .collect();
    let (status, _) = post(&format!("{base}/v1/events"), "application/x-ndjson", body).await;
    assert_eq!(status, 202);
    caught_up(&node).await;
    let partitions = marquee_ingest::EventLog::partition_count(&node.services().unwrap().log);
    let ends = marquee_ingest::EventLog::end_offsets(&node.services().unwrap().log).unwrap();
    // Everything into the SST files, so the plain RocksDB handle below (which lacks the
    // state's merge operator) replays no write-ahead log.
    node.services().unwrap().store.flush_all().unwrap();
    let log = node.services().unwrap().log.as_embedded().unwrap();
    log.compact_all().unwrap();
    node.shutdown().await.unwrap();

    // Damage: u1's state record, and a log record after u2's last event.
    {
        let path = dir.path().join("state");
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, &names).unwrap();
        db.put_cf(db.cf_handle("users").unwrap(), b"u1", b"\x01not a user")
            .unwrap();
    }
    let broken_partition = partition_for_user("u2", partitions);
    let broken_offset = ends[broken_partition as usize];
    {
        let path = dir.path().join("log");
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, &names).unwrap();
        let mut key = broken_partition.to_be_bytes().to_vec();
        key.extend_from_slice(&broken_offset.to_be_bytes());
        db.put_cf(db.cf_handle("events").unwrap(), key, b"\x01not an event")
            .unwrap();
    }

    let node = start(test_config(dir.path())).await;
    let base = node.url();
    // The query that reads the corrupt user: 500, a code that says why, and the node goes on.
    let (status, body) = get_json(&format!("{base}/v1/users/u1")).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "corrupt_record");
    let (status, _) = get_json(&format!("{base}/v1/users/u2")).await;
    assert_eq!(status, 200, "other users are readable");
    let (status, _) = get_json(&format!("{base}/healthz")).await;
    assert_eq!(status, 200);

    // The processor stops at the corrupt log record: failing, counted, not skipped.
    let metrics = eventually("the processor to report the corrupt record", || {
        let url = format!("{base}/metrics");
        async move {
            let metrics = get_text(&url).await;
            (common::metric_sample(&metrics, "marquee_processor_failing") == 1.0).then_some(metrics)
        }
    })
    .await;
    assert!(
        common::metric_sample(
            &metrics,
            "marquee_storage_corrupt_records_total{db=\"log\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        common::metric_sample(
            &metrics,
            "marquee_storage_corrupt_records_total{db=\"state\"}"
        ) >= 1.0,
        "{metrics}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, status) = get_json(&format!("{base}/v1/admin/processor")).await;
    assert_eq!(status["failing"], true, "{status}");
    assert_eq!(
        status["committed_offsets"][broken_partition as usize], broken_offset,
        "the processor did not pass over the corrupt record: {status}"
    );
    node.shutdown().await.unwrap();
}
