//! The `EventLog` conformance suite. Every backend must pass it; it runs here against the
//! embedded RocksDB backend.

use std::collections::BTreeMap;
use std::time::Duration;

use marquee_ingest::{EmbeddedLog, EmbeddedLogConfig, EventLog};
use marquee_schemas::{Event, EventKind, partition_for_user};

fn event(user: &str, sequence: u32) -> Event {
    Event {
        event_id: format!("{user}-{sequence}"),
        user_id: user.to_owned(),
        item_id: format!("m{sequence}"),
        kind: EventKind::View,
        value: None,
        timestamp: 1_000 + i64::from(sequence),
        context: BTreeMap::new(),
    }
}

/// The contract of `EventLog`, for any backend.
async fn conformance<L: EventLog>(log: &L) {
    let partitions = log.partition_count();
    assert!(partitions > 0);
    let start = log.end_offsets().unwrap();
    assert_eq!(start.len(), partitions as usize);

    // Offsets: one per event, in input order, consecutive within a partition.
    let batch: Vec<Event> = (0..40)
        .map(|i| event(&format!("user{}", i % 7), i))
        .collect();
    let appended = log.append(batch.clone()).await.unwrap();
    assert_eq!(appended.len(), batch.len());
    let mut expected_next = start.clone();
    for (event, place) in batch.iter().zip(&appended) {
        assert_eq!(
            place.partition,
            partition_for_user(&event.user_id, partitions)
        );
        assert_eq!(place.offset, expected_next[place.partition as usize]);
        expected_next[place.partition as usize] += 1;
    }
    assert_eq!(log.end_offsets().unwrap(), expected_next);

    // Reads return the events, in order, from any offset, bounded by max_records.
    for partition in 0..partitions {
        let from = start[partition as usize];
        let entries = log.read(partition, from, 1000).unwrap();
        let wanted: Vec<&Event> = batch
            .iter()
            .filter(|event| partition_for_user(&event.user_id, partitions) == partition)
            .collect();
        assert_eq!(entries.len(), wanted.len());
        for (offset, (entry, event)) in entries.iter().zip(&wanted).enumerate() {
            assert_eq!(entry.offset, from + offset as u64);
            assert_eq!(&entry.event, *event);
            assert!(entry.append_ms > 0);
        }
        if entries.len() > 1 {
            let tail = log.read(partition, from + 1, 1).unwrap();
            assert_eq!(tail.len(), 1);
            assert_eq!(tail[0].offset, from + 1);
        }
        let end = expected_next[partition as usize];
        assert!(log.read(partition, end, 10).unwrap().is_empty());
    }

    // An empty append appends nothing.
    assert!(log.append(Vec::new()).await.unwrap().is_empty());
    assert_eq!(log.end_offsets().unwrap(), expected_next);

    // wait_for_append returns at the timeout when nothing comes, and early when something does.
    log.wait_for_append(&expected_next, Duration::from_millis(50))
        .await;
    let waiting = log.wait_for_append(&expected_next, Duration::from_secs(600));
    let append = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.append(vec![event("late", 99)]).await.unwrap()
    };
    let ((), late) = tokio::join!(waiting, append);
    assert_eq!(late.len(), 1);
}

#[tokio::test]
async fn embedded_log_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
    conformance(&log).await;
}

#[tokio::test]
async fn embedded_log_keeps_acknowledged_events_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
    // Concurrent writers share group commits.
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8 {
        let log = log.clone();
        writers.spawn(async move {
            let events: Vec<Event> = (0..50).map(|i| event(&format!("w{writer}"), i)).collect();
            log.append(events).await.unwrap().len()
        });
    }
    let appended: usize = writers.join_all().await.into_iter().sum();
    assert_eq!(appended, 400);
    let ends = log.end_offsets().unwrap();
    log.close();
    drop(log);

    let reopened = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
    assert_eq!(reopened.end_offsets().unwrap(), ends);
    let total: usize = (0..reopened.partition_count())
        .map(|partition| reopened.read(partition, 0, 10_000).unwrap().len())
        .sum();
    assert_eq!(total, 400);
    // Each writer's events stay in order within their partition.
    for writer in 0..8 {
        let user = format!("w{writer}");
        let partition = partition_for_user(&user, reopened.partition_count());
        let sequence: Vec<String> = reopened
            .read(partition, 0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|entry| entry.event.user_id == user)
            .map(|entry| entry.event.event_id)
            .collect();
        let expected: Vec<String> = (0..50).map(|i| format!("{user}-{i}")).collect();
        assert_eq!(sequence, expected);
    }
    let mismatch = EmbeddedLog::open(
        dir.path().join("other"),
        EmbeddedLogConfig {
            partitions: 2,
            ..EmbeddedLogConfig::default()
        },
    );
    assert!(mismatch.is_ok());
    drop(reopened);
    let wrong_count = EmbeddedLog::open(
        dir.path(),
        EmbeddedLogConfig {
            partitions: 8,
            ..EmbeddedLogConfig::default()
        },
    );
    assert!(
        wrong_count.is_err(),
        "a log cannot be reopened with another partition count"
    );
}
