//! The embedded event log: a RocksDB instance of its own (`<data-dir>/log`).
//!
//! Layout (all RocksDB code of this crate is in this module):
//! - column family `events`: key = partition (u32, big-endian) ‖ offset (u64, big-endian), value =
//!   a versioned record of [`StoredEntry`] (append time and event). Big-endian keys make RocksDB's
//!   byte order the offset order, so a read is one iterator seek.
//! - column family `default`: `partition_count` (u32, big-endian), fixed at creation.
//!
//! Appends go through one writer thread that owns the next offsets. It takes every request queued
//! while the previous write was syncing and writes them as one batch with one `fsync` of the
//! write-ahead log (group commit), then answers each request. A request is answered only after
//! the synced write returned, so an acknowledged event is durable. The queue in front of the
//! writer is bounded ([`EmbeddedLogConfig::queue_capacity`]); when it is full, `append` waits.
//!
//! The log is never trimmed: it is the source of truth that replay rebuilds state from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bincode::{Decode, Encode};
use marquee_schemas::{Event, decode_record, encode_record, partition_for_user};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode,
    Options, WriteBatch, WriteOptions,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use crate::error::{Error, Result};
use crate::log::{Appended, EventLog, LogEntry};

const EVENTS_CF: &str = "events";
const PARTITION_COUNT_KEY: &[u8] = b"partition_count";
/// Upper bound of events written in one group commit; bounds the memory of one batch.
const MAX_EVENTS_PER_COMMIT: usize = 50_000;

/// What the log stores for each event.
#[derive(Debug, Clone, Encode, Decode)]
struct StoredEntry {
    append_ms: i64,
    event: Event,
}

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedLogConfig {
    /// Partition count used when the log is created; an existing log must match it.
    pub partitions: u32,
    /// Append requests that may wait for the writer thread before `append` itself waits.
    pub queue_capacity: usize,
    /// Sync the write-ahead log before an append returns (durable acknowledgements). Only
    /// the evaluator, which replays a file it can read again, turns this off.
    pub sync: bool,
}

impl Default for EmbeddedLogConfig {
    fn default() -> Self {
        EmbeddedLogConfig {
            partitions: 4,
            queue_capacity: 1024,
            sync: true,
        }
    }
}

struct AppendRequest {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Vec<Appended>>>,
}

/// The embedded, RocksDB-backed [`EventLog`]. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<DB>,
    partition_count: u32,
    /// Queue to the writer thread; `None` once closed.
    requests: parking_lot::Mutex<Option<mpsc::Sender<AppendRequest>>>,
    /// End offsets, published by the writer after each synced write.
    end_offsets: watch::Receiver<Vec<u64>>,
    writer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("path", &self.inner.path)
            .field("partition_count", &self.inner.partition_count)
            .finish()
    }
}

fn entry_key(partition: u32, offset: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&partition.to_be_bytes());
    key[4..].copy_from_slice(&offset.to_be_bytes());
    key
}

fn parse_offset(key: &[u8]) -> Option<(u32, u64)> {
    let partition = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let offset = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    Some((partition, offset))
}

fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_max_background_jobs(2);
    options
}

fn events_cf_options() -> Options {
    let mut options = db_options();
    let mut table = BlockBasedOptions::default();
    table.set_block_size(32 * 1024);
    options.set_block_based_table_factory(&table);
    // Keys are appended in order within each partition; a larger write buffer means fewer,
    // larger sorted files.
    options.set_write_buffer_size(64 * 1024 * 1024);
    options
}

impl EmbeddedLog {
    /// An integer RocksDB property (`rocksdb.estimate-live-data-size`, …) summed over the log's
    /// column families; 0 where RocksDB does not know it.
    pub fn property_sum(&self, property: &str) -> u64 {
        [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, EVENTS_CF]
            .iter()
            .filter_map(|name| self.inner.db.cf_handle(name))
            .filter_map(|cf| {
                self.inner
                    .db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Opens the log at `path`, creating it with `config.partitions` partitions when absent.
    pub fn open(path: impl AsRef<Path>, config: EmbeddedLogConfig) -> Result<EmbeddedLog> {
        let path = path.as_ref().to_path_buf();
        let descriptors = vec![ColumnFamilyDescriptor::new(EVENTS_CF, events_cf_options())];
        let db = Arc::new(DB::open_cf_descriptors(&db_options(), &path, descriptors)?);
        let partition_count = match db.get(PARTITION_COUNT_KEY)? {
            Some(bytes) => {
                let existing = u32::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                    Error::CorruptRecord {
                        partition: 0,
                        offset: 0,
                        source: marquee_schemas::CodecError::Empty,
                    }
                })?);
                if existing != config.partitions {
                    return Err(Error::PartitionCountMismatch {
                        path: path.display().to_string(),
                        existing,
                        requested: config.partitions,
                    });
                }
                existing
            }
            None => {
                let mut sync = WriteOptions::default();
                sync.set_sync(true);
                db.put_opt(PARTITION_COUNT_KEY, config.partitions.to_be_bytes(), &sync)?;
                config.partitions
            }
        };
        let end_offsets = (0..partition_count)
            .map(|partition| next_offset(&db, partition))
            .collect::<Result<Vec<u64>>>()?;
        info!(path = %path.display(), partition_count, ?end_offsets, "event log opened");
        let (offsets_sender, offsets_receiver) = watch::channel(end_offsets.clone());
        let (request_sender, request_receiver) = mpsc::channel(config.queue_capacity.max(1));
        let writer_db = Arc::clone(&db);
        let sync_writes = config.sync;
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                run_writer(
                    writer_db,
                    partition_count,
                    end_offsets,
                    request_receiver,
                    offsets_sender,
                    sync_writes,
                )
            })
            .expect("spawning the log writer thread");
        Ok(EmbeddedLog {
            inner: Arc::new(Inner {
                db,
                partition_count,
                requests: parking_lot::Mutex::new(Some(request_sender)),
                end_offsets: offsets_receiver,
                writer: parking_lot::Mutex::new(Some(writer)),
                path,
            }),
        })
    }

    /// Writes a consistent copy of the log to `dir` (which must not exist): a RocksDB
    /// checkpoint, hard links to the immutable files where `dir` is on the same filesystem. Every
    /// append acknowledged before the call is in it.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.inner.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// Stops the writer after the requests already queued; later appends fail with
    /// [`Error::Closed`]. Idempotent.
    pub fn close(&self) {
        self.inner.requests.lock().take();
        if let Some(writer) = self.inner.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.requests.lock().take();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

/// The offset after the last stored entry of `partition`.
fn next_offset(db: &DB, partition: u32) -> Result<u64> {
    let cf = db
        .cf_handle(EVENTS_CF)
        .expect("events column family exists");
    let upper = entry_key(partition, u64::MAX);
    let mut iterator = db.iterator_cf(&cf, IteratorMode::From(&upper, Direction::Reverse));
    match iterator.next().transpose()? {
        Some((key, _)) => match parse_offset(&key) {
            Some((found_partition, offset)) if found_partition == partition => Ok(offset + 1),
            _ => Ok(0),
        },
        None => Ok(0),
    }
}

fn run_writer(
    db: Arc<DB>,
    partition_count: u32,
    mut end_offsets: Vec<u64>,
    mut requests: mpsc::Receiver<AppendRequest>,
    published: watch::Sender<Vec<u64>>,
    sync_writes: bool,
) {
    let mut sync = WriteOptions::default();
    sync.set_sync(sync_writes);
    while let Some(first) = requests.blocking_recv() {
        let mut group = vec![first];
        let mut queued_events = group[0].events.len();
        while queued_events < MAX_EVENTS_PER_COMMIT {
            match requests.try_recv() {
                Ok(request) => {
                    queued_events += request.events.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        let append_ms = now_ms();
        let mut next = end_offsets.clone();
        let mut batch = WriteBatch::default();
        let cf = db
            .cf_handle(EVENTS_CF)
            .expect("events column family exists");
        let mut placements: Vec<Result<Vec<Appended>>> = Vec::with_capacity(group.len());
        for request in &group {
            let mut appended = Vec::with_capacity(request.events.len());
            let mut encoded = Vec::with_capacity(request.events.len());
            let mut failure = None;
            let mut request_next = next.clone();
            for event in &request.events {
                let partition = partition_for_user(&event.user_id, partition_count);
                let offset = request_next[partition as usize];
                request_next[partition as usize] += 1;
                let record = StoredEntry {
                    append_ms,
                    event: event.clone(),
                };
                match encode_record(&record) {
                    Ok(bytes) => encoded.push((entry_key(partition, offset), bytes)),
                    Err(error) => {
                        failure = Some(Error::Encode(error));
                        break;
                    }
                }
                appended.push(Appended { partition, offset });
            }
            match failure {
                Some(error) => placements.push(Err(error)),
                None => {
                    for (key, value) in encoded {
                        batch.put_cf(&cf, key, value);
                    }
                    next = request_next;
                    placements.push(Ok(appended));
                }
            }
        }
        match db.write_opt(batch, &sync) {
            Ok(()) => {
                end_offsets = next;
                published.send_replace(end_offsets.clone());
                for (request, placement) in group.into_iter().zip(placements) {
                    let _ = request.reply.send(placement);
                }
            }
            Err(storage_error) => {
                error!(error = %storage_error, "log append failed");
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(Error::Storage(storage_error.clone())));
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

impl EventLog for EmbeddedLog {
    fn partition_count(&self) -> u32 {
        self.inner.partition_count
    }

    async fn append(&self, events: Vec<Event>) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sender = self.inner.requests.lock().clone().ok_or(Error::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(AppendRequest { events, reply })
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    fn read(&self, partition: u32, from_offset: u64, max_records: usize) -> Result<Vec<LogEntry>> {
        if partition >= self.inner.partition_count {
            return Err(Error::NoSuchPartition {
                partition,
                partition_count: self.inner.partition_count,
            });
        }
        let end = self.inner.end_offsets.borrow()[partition as usize];
        if from_offset >= end || max_records == 0 {
            return Ok(Vec::new());
        }
        let db = &self.inner.db;
        let cf = db
            .cf_handle(EVENTS_CF)
            .expect("events column family exists");
        let start = entry_key(partition, from_offset);
        let wanted = max_records.min((end - from_offset) as usize);
        let mut entries = Vec::with_capacity(wanted);
        for item in db.iterator_cf(&cf, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            let Some((found_partition, offset)) = parse_offset(&key) else {
                break;
            };
            if found_partition != partition || offset >= end {
                break;
            }
            let stored: StoredEntry =
                decode_record(&value).map_err(|source| Error::CorruptRecord {
                    partition,
                    offset,
                    source,
                })?;
            entries.push(LogEntry {
                partition,
                offset,
                append_ms: stored.append_ms,
                event: stored.event,
            });
            if entries.len() == wanted {
                break;
            }
        }
        Ok(entries)
    }

    fn end_offsets(&self) -> Result<Vec<u64>> {
        Ok(self.inner.end_offsets.borrow().clone())
    }

    async fn wait_for_append(&self, positions: &[u64], timeout: Duration) {
        let mut receiver = self.inner.end_offsets.clone();
        let has_news = |ends: &Vec<u64>| {
            ends.iter()
                .zip(positions)
                .any(|(end, position)| end > position)
        };
        let _ = tokio::time::timeout(timeout, receiver.wait_for(has_news)).await;
    }
}
