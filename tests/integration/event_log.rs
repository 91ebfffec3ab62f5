//! The `EventLog` conformance suite, and the `ChangeLog` one. Every backend must pass them; they
//! run here against the embedded RocksDB backends, and against Fluvio when
//! `MARQUEE_FLUVIO_ENDPOINT` names a running cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use marquee_ingest::{ChangeLog, EmbeddedChangeLog, EmbeddedLog, EmbeddedLogConfig, EventLog};
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

/// The contract of `ChangeLog`, for any backend: one ordered stream of the records as sent,
/// offsets dense from the end at the start, reads that never wait and stop at `max_records`,
/// and a wait that returns once something is appended.
async fn change_log_conformance<C: ChangeLog + Clone>(log: &C) {
    let start = log.end_offset().unwrap();
    assert!(
        log.read(start, 10).unwrap().is_empty(),
        "nothing past the end"
    );
    let records: Vec<Vec<u8>> = (0..25u8).map(|i| vec![i; usize::from(i) + 1]).collect();
    log.append(records[..10].to_vec()).await.unwrap();
    log.append(records[10..].to_vec()).await.unwrap();
    log.append(Vec::new()).await.unwrap();
    assert_eq!(log.end_offset().unwrap(), start + 25);
    let read = log.read(start, 100).unwrap();
    assert_eq!(read.len(), 25);
    for (index, (record, sent)) in read.iter().zip(&records).enumerate() {
        assert_eq!(record.offset, start + index as u64);
        assert_eq!(&record.value, sent);
    }
    let middle = log.read(start + 7, 5).unwrap();
    assert_eq!(
        middle
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        (start + 7..start + 12).collect::<Vec<_>>()
    );

    // A waiter wakes on another writer's append.
    let end = log.end_offset().unwrap();
    let writer = log.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer.append(vec![b"late".to_vec()]).await.unwrap();
    });
    let waited = std::time::Instant::now();
    log.wait_for_append(end - 1, Duration::from_secs(30)).await;
    log.wait_for_append(end, Duration::from_secs(30)).await;
    assert!(
        waited.elapsed() < Duration::from_secs(30),
        "the wait ended on the append, not on its timeout"
    );
    append.await.unwrap();
    assert_eq!(log.read(end, 10).unwrap()[0].value, b"late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_change_log_passes_the_conformance_suite_and_keeps_records_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedChangeLog::open(dir.path().join("changes")).unwrap();
    change_log_conformance(&log).await;
    let end = log.end_offset().unwrap();
    let last = log.read(end - 1, 1).unwrap();
    drop(log);
    let reopened = EmbeddedChangeLog::open(dir.path().join("changes")).unwrap();
    assert_eq!(reopened.end_offset().unwrap(), end);
    assert_eq!(reopened.read(end - 1, 1).unwrap(), last);
    change_log_conformance(&reopened).await;
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
        let read = log.read(partition, from, 1000).unwrap();
        let entries = read.entries;
        let wanted: Vec<&Event> = batch
            .iter()
            .filter(|event| partition_for_user(&event.user_id, partitions) == partition)
            .collect();
        assert_eq!(entries.len(), wanted.len());
        assert_eq!(read.next_offset, from + wanted.len() as u64);
        for (offset, (entry, event)) in entries.iter().zip(&wanted).enumerate() {
            assert_eq!(entry.offset, from + offset as u64);
            assert_eq!(&entry.event, *event);
            assert!(entry.append_ms > 0);
        }
        if entries.len() > 1 {
            let tail = log.read(partition, from + 1, 1).unwrap();
            assert_eq!(tail.entries.len(), 1);
            assert_eq!(tail.entries[0].offset, from + 1);
            assert_eq!(tail.next_offset, from + 2);
        }
        let end = expected_next[partition as usize];
        let at_end = log.read(partition, end, 10).unwrap();
        assert!(at_end.entries.is_empty());
        assert_eq!(at_end.next_offset, end);
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

/// Erasure: a user's events are found, erased for good, and skipped by reads that still cover
/// their offsets; other users' events and every offset stay.
async fn erasure_conformance<L: EventLog>(log: &L) {
    let partitions = log.partition_count();
    let batch: Vec<Event> = (0..60)
        .map(|i| event(&format!("eraser{}", i % 3), 1000 + i))
        .collect();
    log.append(batch).await.unwrap();
    let ends = log.end_offsets().unwrap();
    let victim = log.user_entries("eraser1").unwrap();
    assert_eq!(victim.len(), 20);
    assert!(victim.iter().all(|entry| entry.event.user_id == "eraser1"));
    assert!(
        victim
            .windows(2)
            .all(|pair| pair[0].offset < pair[1].offset)
    );
    let positions: Vec<(u32, u64)> = victim
        .iter()
        .map(|entry| (entry.partition, entry.offset))
        .collect();
    match log.erase(&positions) {
        Err(marquee_ingest::Error::Unsupported(_)) => {
            eprintln!("skipped: this backend cannot erase (it relies on the erasure list)");
            return;
        }
        outcome => outcome.unwrap(),
    }
    assert!(log.user_entries("eraser1").unwrap().is_empty());
    assert_eq!(log.user_entries("eraser0").unwrap().len(), 20);
    assert_eq!(log.end_offsets().unwrap(), ends, "offsets do not move");
    let partition = victim[0].partition;
    let read = log.read(partition, 0, 100_000).unwrap();
    assert_eq!(read.next_offset, ends[partition as usize]);
    assert!(
        read.entries
            .iter()
            .all(|entry| entry.event.user_id != "eraser1")
    );
    // A read that covers only erased offsets returns nothing and still moves on.
    let first = victim[0].offset;
    let only_erased = log.read(partition, first, 1).unwrap();
    assert!(only_erased.entries.is_empty());
    assert_eq!(only_erased.next_offset, first + 1);
    assert!(partitions > 0);
}

/// 8 concurrent writers `w0`…`w7` append 50 events each; every one is acknowledged.
async fn write_concurrently<L: EventLog + Clone>(log: &L) {
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
}

/// The events of the 8 concurrent writers `w0`…`w7` (50 each), in each writer's order.
fn assert_writers_in_order<L: EventLog>(log: &L) {
    for writer in 0..8 {
        let user = format!("w{writer}");
        let partition = partition_for_user(&user, log.partition_count());
        let sequence: Vec<String> = log
            .read(partition, 0, 10_000)
            .unwrap()
            .entries
            .into_iter()
            .filter(|entry| entry.event.user_id == user)
            .map(|entry| entry.event.event_id)
            .collect();
        let expected: Vec<String> = (0..50).map(|i| format!("{user}-{i}")).collect();
        assert_eq!(sequence, expected);
    }
}

#[tokio::test]
async fn embedded_log_erases_a_users_events_without_moving_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
    erasure_conformance(&log).await;
}

#[tokio::test]
async fn retention_drops_old_applied_entries_and_reads_pass_over_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
    let users: Vec<String> = (0..8).map(|n| format!("r{n}")).collect();
    let old: Vec<Event> = (0..40)
        .map(|i| event(&users[(i % 8) as usize], i))
        .collect();
    log.append(old).await.unwrap();
    let middle = log.end_offsets().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let recent: Vec<Event> = (40..80)
        .map(|i| event(&users[(i % 8) as usize], i))
        .collect();
    log.append(recent).await.unwrap();
    let ends = log.end_offsets().unwrap();

    // Nothing past the committed offsets goes, however old.
    let nothing_applied = vec![0; ends.len()];
    assert_eq!(log.trim_before(cutoff, &nothing_applied).unwrap(), 0);
    // Everything older than the cutoff and applied goes; the rest stays.
    let deleted = log.trim_before(cutoff, &ends).unwrap();
    assert_eq!(deleted, 40);
    assert_eq!(log.end_offsets().unwrap(), ends, "offsets do not move");
    for partition in 0..log.partition_count() {
        let read = log.read(partition, 0, 100_000).unwrap();
        assert_eq!(read.next_offset, ends[partition as usize]);
        let from_middle = middle[partition as usize];
        assert!(read.entries.iter().all(|entry| entry.offset >= from_middle));
        assert_eq!(
            read.entries.len() as u64,
            ends[partition as usize] - from_middle
        );
        // A read inside the trimmed range covers it and moves on.
        if from_middle > 0 {
            let trimmed = log.read(partition, 0, 1).unwrap();
            assert!(trimmed.entries.is_empty());
            assert_eq!(trimmed.next_offset, 1);
        }
    }
    // Appends go on after the trimmed range.
    let appended = log.append(vec![event("r0", 99)]).await.unwrap();
    assert_eq!(appended[0].offset, ends[appended[0].partition as usize]);
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
    write_concurrently(&log).await;
    let ends = log.end_offsets().unwrap();
    log.close();
    drop(log);

    let reopened = EmbeddedLog::open(dir.path(), EmbeddedLogConfig::default()).unwrap();
    assert_eq!(reopened.end_offsets().unwrap(), ends);
    let total: usize = (0..reopened.partition_count())
        .map(|partition| reopened.read(partition, 0, 10_000).unwrap().entries.len())
        .sum();
    assert_eq!(total, 400);
    // Each writer's events stay in order within their partition.
    assert_writers_in_order(&reopened);
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

/// The Fluvio backend, against a real cluster: these tests run only when
/// `MARQUEE_FLUVIO_ENDPOINT` holds the `HOST:PORT` of a running cluster's SC (docs/OPERATIONS.md
/// says how to start one), and print that they were skipped otherwise. There is no stand-in
/// Fluvio; the logic above them is the same suite the embedded backend passes on every run.
#[cfg(feature = "fluvio")]
mod fluvio {
    use super::*;
    use marquee_ingest::{Error, FluvioLog, FluvioLogConfig};

    fn endpoint() -> Option<String> {
        match std::env::var("MARQUEE_FLUVIO_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
            _ => {
                eprintln!(
                    "skipped: set MARQUEE_FLUVIO_ENDPOINT=HOST:PORT (a running Fluvio cluster's \
                     SC) to run the Fluvio backend's tests"
                );
                None
            }
        }
    }

    /// A topic of its own per test and run, so runs against one cluster never meet.
    fn config(endpoint: String, name: &str, partitions: u32) -> FluvioLogConfig {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        FluvioLogConfig {
            topic: format!("marquee-test-{name}-{}", nanos % 1_000_000_000_000),
            partitions,
            ..FluvioLogConfig::new(endpoint)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fluvio_log_passes_the_conformance_suite() {
        let Some(endpoint) = endpoint() else { return };
        let log = FluvioLog::connect(config(endpoint, "conformance", 4))
            .await
            .unwrap();
        conformance(&log).await;
    }

    /// Reads cover every record of producer batches larger than one default Fluvio fetch
    /// (about 1 MiB): the default left such a batch out and the read went on past it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fluvio_reads_miss_no_record_of_large_batches() {
        let Some(endpoint) = endpoint() else { return };
        let log = FluvioLog::connect(config(endpoint.clone(), "large", 1))
            .await
            .unwrap();
        // 20,000 events of one user (about 3 MiB): several full 1 MiB batches.
        let events: Vec<Event> = (0..20_000).map(|i| event("heavy", i)).collect();
        for chunk in events.chunks(5_000) {
            log.append(chunk.to_vec()).await.unwrap();
        }
        let read = log.read(0, 0, 100_000).unwrap();
        assert_eq!(read.entries.len(), 20_000);
        assert!(
            read.entries
                .iter()
                .enumerate()
                .all(|(index, entry)| entry.offset == index as u64)
        );

        let topic = config(endpoint.clone(), "large-changes", 1).topic;
        let changes = marquee_ingest::FluvioChangeLog::connect(&endpoint, &topic, 1)
            .await
            .unwrap();
        let records: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 200_000]).collect();
        changes.append(records.clone()).await.unwrap();
        let read = changes.read(0, 100).unwrap();
        assert_eq!(read.len(), 40, "every 200 kB record read back");
        assert!(
            read.iter()
                .zip(&records)
                .all(|(read, sent)| &read.value == sent)
        );
        // Records over Fluvio's batch limit travel in chunks and come back whole, one at a time
        // when asked for one.
        let large: Vec<Vec<u8>> = (0..3u8)
            .map(|i| {
                (0..5_000_000u32)
                    .map(|byte| (byte % 251) as u8 ^ i)
                    .collect()
            })
            .collect();
        changes.append(large.clone()).await.unwrap();
        let end = read.last().unwrap().offset + 1;
        let first = changes.read(end, 1).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].value, large[0]);
        // A read may stop before `max_records` (here at a record of 20 chunks): read on.
        let mut rest = Vec::new();
        while rest.len() < 2 {
            let from = rest
                .last()
                .map_or(first[0].offset, |record: &marquee_ingest::ChangeRecord| {
                    record.offset
                })
                + 1;
            let read = changes.read(from, 10).unwrap();
            assert!(!read.is_empty(), "the records are all there");
            rest.extend(read);
        }
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].value, large[1]);
        assert_eq!(rest[1].value, large[2]);
        assert_eq!(rest[1].offset + 1, changes.end_offset().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fluvio_change_log_passes_the_conformance_suite() {
        let Some(endpoint) = endpoint() else { return };
        let topic = config(endpoint.clone(), "changes", 1).topic;
        let log = marquee_ingest::FluvioChangeLog::connect(&endpoint, &topic, 1)
            .await
            .unwrap();
        change_log_conformance(&log).await;
        // Another node sees the same records.
        let other = marquee_ingest::FluvioChangeLog::connect(&endpoint, &topic, 1)
            .await
            .unwrap();
        assert_eq!(other.end_offset().unwrap(), log.end_offset().unwrap());
        assert_eq!(other.read(0, 100).unwrap(), log.read(0, 100).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fluvio_log_finds_a_users_events_and_leaves_erasure_to_the_erasure_list() {
        let Some(endpoint) = endpoint() else { return };
        let log = FluvioLog::connect(config(endpoint, "erasure", 3))
            .await
            .unwrap();
        erasure_conformance(&log).await;
        assert!(matches!(log.erase(&[(0, 0)]), Err(Error::Unsupported(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fluvio_log_keeps_acknowledged_events_and_their_order_across_reconnect() {
        let Some(endpoint) = endpoint() else { return };
        let config = config(endpoint, "reconnect", 4);
        let log = FluvioLog::connect(config.clone()).await.unwrap();
        write_concurrently(&log).await;
        let ends = log.end_offsets().unwrap();
        drop(log);

        // A second client (another node) sees the same end offsets and events.
        let reconnected = FluvioLog::connect(config.clone()).await.unwrap();
        assert_eq!(reconnected.end_offsets().unwrap(), ends);
        assert_writers_in_order(&reconnected);
        // A client's end offsets follow what other clients append.
        let other = FluvioLog::connect(config.clone()).await.unwrap();
        other.append(vec![event("w0", 500)]).await.unwrap();
        let partition = partition_for_user("w0", 4) as usize;
        let mut expected = ends.clone();
        expected[partition] += 1;
        reconnected
            .wait_for_append(&ends, Duration::from_secs(30))
            .await;
        assert_eq!(reconnected.end_offsets().unwrap(), expected);

        let wrong_count = FluvioLog::connect(FluvioLogConfig {
            partitions: 8,
            ..config
        })
        .await;
        assert!(
            matches!(wrong_count, Err(Error::PartitionCountMismatch { .. })),
            "a topic cannot be used with another partition count"
        );
    }

    #[tokio::test]
    async fn an_unreachable_fluvio_is_a_clear_error_at_start() {
        // No cluster needed: nothing listens on this port of the loopback.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let error = FluvioLog::connect(FluvioLogConfig {
            connect_timeout: Duration::from_secs(5),
            ..FluvioLogConfig::new(format!("127.0.0.1:{port}"))
        })
        .await
        .unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error}");
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
    }
}
