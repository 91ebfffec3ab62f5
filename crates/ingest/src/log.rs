//! The [`EventLog`] trait and its contract.

use std::future::Future;
use std::time::Duration;

use marquee_schemas::Event;

use crate::error::Result;

/// Where an appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub offset: u64,
}

/// One event read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub partition: u32,
    pub offset: u64,
    /// Server time of the append, in milliseconds since the Unix epoch: replay's `--from` and
    /// `--until`, and the freshness metric, are measured on it.
    pub append_ms: i64,
    pub event: Event,
}

/// What one [`EventLog::read`] returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRead {
    /// The events read, in offset order; erased offsets are left out.
    pub entries: Vec<LogEntry>,
    /// The offset the next read of this partition starts from: one past the last offset this
    /// read covered, erased ones included. Equal to `from_offset` at the end of the partition.
    pub next_offset: u64,
}

/// A durable, partitioned, append-only log of events.
///
/// Contract, which every backend passes in the conformance suite (`tests/event_log.rs`):
/// - **Partitioning.** An event goes to partition
///   [`partition_for_user`](marquee_schemas::partition_for_user)`(user_id, partition_count)`, so
///   one user's events are totally ordered.
/// - **Durability on return.** When [`append`](EventLog::append) returns `Ok`, every event of the
///   batch survives a process crash and a power loss (the write-ahead log is synced). On `Err`,
///   none of the batch may be assumed appended, but some may be: callers retry with the same
///   `event_id`s and the processor's de-duplication makes the retry safe.
/// - **Offsets.** Offsets of a partition start at 0 and grow by one per event, without gaps. A
///   batch's events keep their relative order within each partition; the returned vector has one
///   entry per input event, in input order.
/// - **Reads.** [`read`](EventLog::read) covers up to `max_records` consecutive offsets of one
///   partition starting at `from_offset` and returns their events, leaving out erased ones, with
///   the offset to read from next; it covers nothing when `from_offset` is at (or past) the end.
///   It never waits; [`wait_for_append`](EventLog::wait_for_append) does.
/// - **Erasure.** [`erase`](EventLog::erase) makes events unreadable for good without moving
///   any offset (a user's right to erasure). A backend whose history is immutable returns
///   [`Error::Unsupported`](crate::Error::Unsupported) and relies on retention and on the
///   processor's erasure list instead.
/// - **End offsets.** [`end_offsets`](EventLog::end_offsets) is, per partition, the offset the next
///   append will get; every offset below it was written (retention may have dropped the
///   oldest, and erasure some; reads pass over them).
pub trait EventLog: Send + Sync + 'static {
    /// Number of partitions, fixed for the life of the log.
    fn partition_count(&self) -> u32;

    /// Appends `events` durably and returns where each landed, in input order.
    fn append(&self, events: Vec<Event>) -> impl Future<Output = Result<Vec<Appended>>> + Send;

    /// Reads up to `max_records` offsets of `partition` from `from_offset` on, without waiting.
    fn read(&self, partition: u32, from_offset: u64, max_records: usize) -> Result<LogRead>;

    /// Every readable event of `user_id`, oldest first (a scan of the user's partition).
    fn user_entries(&self, user_id: &str) -> Result<Vec<LogEntry>>;

    /// Erases the events at `positions` (`(partition, offset)`) durably: later reads leave them
    /// out, and their bytes leave the storage at its next compaction of them.
    fn erase(&self, positions: &[(u32, u64)]) -> Result<()>;

    /// The next offset of every partition, indexed by partition.
    fn end_offsets(&self) -> Result<Vec<u64>>;

    /// Resolves once some partition's end offset exceeds `positions[partition]`, or after
    /// `timeout`, whichever comes first. Spurious wake-ups are allowed.
    fn wait_for_append(
        &self,
        positions: &[u64],
        timeout: Duration,
    ) -> impl Future<Output = ()> + Send;
}

/// Resolves once some partition's end in `ends` exceeds `positions[partition]`, or after
/// `timeout`: [`EventLog::wait_for_append`] over a watched vector of end offsets, for every
/// backend that keeps one.
pub(crate) async fn wait_for_news(
    mut ends: tokio::sync::watch::Receiver<Vec<u64>>,
    positions: &[u64],
    timeout: Duration,
) {
    let has_news = |ends: &Vec<u64>| {
        ends.iter()
            .zip(positions)
            .any(|(end, position)| end > position)
    };
    let _ = tokio::time::timeout(timeout, ends.wait_for(has_news)).await;
}

/// One record read back from the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub offset: u64,
    pub value: Vec<u8>,
}
