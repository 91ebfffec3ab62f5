//! The embedded event log: a RocksDB instance of its own (`<data-dir>/log`).
//!
//! Layout (all RocksDB code of this crate is in this module):
//! - column family `events`: key = partition (u32, big-endian) ‖ offset (u64, big-endian), value =
//!   a versioned [`LogRecord`] (append time and event). Big-endian keys make RocksDB's
//!   byte order the offset order, so a read is one iterator seek.
//! - column family `default`: `partition_count` (u32, big-endian), fixed at creation.
//!
//! Appends go through one writer thread that owns the next offsets. It takes every request queued
//! while the previous write was syncing and writes them as one batch with one `fsync` of the
//! write-ahead log (group commit), then answers each request. A request is answered only after
//! the synced write returned, so an acknowledged event is durable. The queue in front of the
//! writer is bounded ([`EmbeddedLogConfig::queue_capacity`]); when it is full, `append` waits.
//!
//! The log is the source of truth that replay rebuilds state from; it is trimmed only by the
//! retention the operator configures ([`EmbeddedLog::trim_before`]: entries older than the
//! retention, and already applied, are deleted; reads pass over the gap) and by erasure (a user's right to be forgotten): an erased entry's value is replaced by
//! the one-byte marker [`ERASED`] (a format version no record has), so offsets stay dense, reads
//! skip it, and the original bytes leave the files when RocksDB compacts them —
//! [`EventLog::erase`] asks for that compaction of the erased range at once.
//!
//! **Encryption at rest** ([`EmbeddedLogConfig::cipher`], chosen when the log is created and
//! recorded in `default` under `encryption`): every record is sealed
//! ([`marquee_schemas::Cipher::seal`]) before it is written and opened when it is read. The keys
//! (partition and offset) and the erased marker stay plain; a sealed record is never one byte.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use marquee_schemas::{Cipher, Event, LogRecord, decode_record, encode_record, partition_for_user};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode,
    Options, WriteBatch, WriteOptions,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use crate::error::{Error, Result};
use crate::log::{Appended, EventLog, LogEntry, LogRead, wait_for_news};
use marquee_schemas::now_ms;

mod ceiling;
pub use ceiling::write_ceiling;

pub(crate) const EVENTS_CF: &str = "events";
/// The value of an erased entry.
pub const ERASED: &[u8] = &[0xff];
const PARTITION_COUNT_KEY: &[u8] = b"partition_count";
/// Present in `default` in an encrypted log: [`ENCRYPTION_CHECK`] sealed with its key.
const ENCRYPTION_KEY: &[u8] = b"encryption";
const ENCRYPTION_CHECK: &[u8] = b"marquee log";
/// Upper bound of events written in one group commit; bounds the memory of one batch.
const MAX_EVENTS_PER_COMMIT: usize = 50_000;

/// What the log stores for each event.
type StoredEntry = LogRecord;

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedLogConfig {
    /// Partition count used when the log is created; an existing log must match it.
    pub partitions: u32,
    /// Append requests that may wait for the writer thread before `append` itself waits.
    pub queue_capacity: usize,
    /// Sync the write-ahead log before an append returns (durable acknowledgements). Only the
    /// evaluator, which replays a file it can read again, turns this off.
    pub sync: bool,
    /// Encryption at rest (see the module docs); `None`: records are stored plain. A log
    /// keeps what it was created with.
    pub cipher: Option<Cipher>,
}

impl Default for EmbeddedLogConfig {
    fn default() -> Self {
        EmbeddedLogConfig {
            partitions: 4,
            queue_capacity: 1024,
            sync: true,
            cipher: None,
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
    /// Compactions of erased entries still running ([`EmbeddedLog::close`] waits for them).
    erasures: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
    path: PathBuf,
    cipher: Option<Cipher>,
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

pub(crate) fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_max_background_jobs(2);
    // The MANIFEST names the first and last key of every file, so an erased user's id can stay
    // in it as the boundary of a file long compacted away; a small limit makes RocksDB rewrite
    // it (with only the live files) often, besides at every start.
    options.set_max_manifest_file_size(MAX_MANIFEST_BYTES);
    options
}

/// See `db_options`.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

pub(crate) fn events_cf_options() -> Options {
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
        let created = db.get(PARTITION_COUNT_KEY)?.is_none();
        check_encryption(&db, &path, config.cipher.as_ref(), created)?;
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
                let mut batch = WriteBatch::default();
                batch.put(PARTITION_COUNT_KEY, config.partitions.to_be_bytes());
                if let Some(cipher) = &config.cipher {
                    batch.put(ENCRYPTION_KEY, cipher.seal(ENCRYPTION_CHECK));
                }
                db.write_opt(batch, &sync)?;
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
        let writer_cipher = config.cipher.clone();
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
                    writer_cipher,
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
                erasures: parking_lot::Mutex::new(Vec::new()),
                path,
                cipher: config.cipher,
            }),
        })
    }

    /// Opens the log at `primary` read-only, as a RocksDB secondary instance (its own files in
    /// `secondary_dir`), beside the node that writes it: the entries appended and synced up to
    /// the call, read without stopping or slowing the writer. Appends fail with
    /// [`Error::Closed`]; the end offsets are those of the moment of opening.
    pub fn open_secondary(
        primary: impl AsRef<Path>,
        secondary_dir: impl AsRef<Path>,
        cipher: Option<Cipher>,
    ) -> Result<EmbeddedLog> {
        let path = primary.as_ref().to_path_buf();
        if !path.join("CURRENT").exists() {
            return Err(Error::NotFound(path.display().to_string()));
        }
        let mut options = db_options();
        options.create_if_missing(false);
        // A secondary instance keeps every file open (RocksDB requires it).
        options.set_max_open_files(-1);
        let descriptors = vec![ColumnFamilyDescriptor::new(EVENTS_CF, events_cf_options())];
        let db = DB::open_cf_descriptors_as_secondary(
            &options,
            &path,
            &secondary_dir.as_ref().to_path_buf(),
            descriptors,
        )?;
        db.try_catch_up_with_primary()?;
        check_encryption(&db, &path, cipher.as_ref(), false)?;
        let partition_count = db
            .get(PARTITION_COUNT_KEY)?
            .and_then(|bytes| bytes.as_slice().try_into().ok().map(u32::from_be_bytes))
            .ok_or(Error::CorruptRecord {
                partition: 0,
                offset: 0,
                source: marquee_schemas::CodecError::Empty,
            })?;
        let db = Arc::new(db);
        let end_offsets = (0..partition_count)
            .map(|partition| next_offset(&db, partition))
            .collect::<Result<Vec<u64>>>()?;
        info!(path = %path.display(), partition_count, ?end_offsets, "event log opened read-only (secondary)");
        let (_offsets_sender, offsets_receiver) = watch::channel(end_offsets);
        Ok(EmbeddedLog {
            inner: Arc::new(Inner {
                db,
                partition_count,
                requests: parking_lot::Mutex::new(None),
                end_offsets: offsets_receiver,
                writer: parking_lot::Mutex::new(None),
                erasures: parking_lot::Mutex::new(Vec::new()),
                path,
                cipher,
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

    /// Retention: deletes, per partition, the entries appended before `cutoff_ms`, but never at
    /// or past `keep_from[partition]` (the processor's committed offsets: nothing unapplied is
    /// dropped). Offsets do not move; reads pass over the trimmed range. Returns the entries
    /// deleted. The bytes leave the files at RocksDB's next compaction of them, which this
    /// starts.
    pub fn trim_before(&self, cutoff_ms: i64, keep_from: &[u64]) -> Result<u64> {
        let db = &self.inner.db;
        let cf = db
            .cf_handle(EVENTS_CF)
            .expect("events column family exists");
        let mut deleted = 0;
        for partition in 0..self.inner.partition_count {
            let limit = keep_from.get(partition as usize).copied().unwrap_or(0);
            let mut first_kept = None;
            let mut first_present = None;
            for item in db.iterator_cf(
                &cf,
                IteratorMode::From(&entry_key(partition, 0), Direction::Forward),
            ) {
                let (key, value) = item?;
                let Some((found_partition, offset)) = parse_offset(&key) else {
                    break;
                };
                if found_partition != partition {
                    break;
                }
                first_present.get_or_insert(offset);
                if offset >= limit {
                    first_kept = Some(offset);
                    break;
                }
                let Some(stored) =
                    decode_entry(partition, offset, &value, self.inner.cipher.as_ref())?
                else {
                    continue;
                };
                if stored.append_ms >= cutoff_ms {
                    first_kept = Some(offset);
                    break;
                }
            }
            let (Some(start), Some(end)) = (first_present, first_kept.or(Some(limit))) else {
                continue;
            };
            if end <= start {
                continue;
            }
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(&cf, entry_key(partition, start), entry_key(partition, end));
            db.write_opt(batch, &sync)?;
            db.compact_range_cf(
                &cf,
                Some(entry_key(partition, start)),
                Some(entry_key(partition, end)),
            );
            deleted += end - start;
        }
        Ok(deleted)
    }

    /// Compacts the whole log now, dropping every overwritten or erased value from the files
    /// (used by tests and by operators who need erased bytes gone at once).
    pub fn compact_all(&self) -> Result<()> {
        let db = &self.inner.db;
        db.flush()?;
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, EVENTS_CF] {
            if let Some(cf) = db.cf_handle(name) {
                db.flush_cf(&cf)?;
                db.compact_range_cf_opt(&cf, None::<&[u8]>, None::<&[u8]>, &options);
            }
        }
        Ok(())
    }

    /// Stops the writer after the requests already queued; later appends fail with
    /// [`Error::Closed`]. Idempotent. Then waits for the compactions of erased entries (their
    /// old values then are in no file) and flushes the memtables, so the next open has no
    /// write-ahead log to replay (on a large log that replay was most of a restart).
    pub fn close(&self) {
        self.inner.requests.lock().take();
        let erasures: Vec<_> = std::mem::take(&mut *self.inner.erasures.lock());
        for compaction in erasures {
            let _ = compaction.join();
        }
        let Some(writer) = self.inner.writer.lock().take() else {
            return;
        };
        let _ = writer.join();
        let db = &self.inner.db;
        for name in [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, EVENTS_CF] {
            if let Some(cf) = db.cf_handle(name)
                && let Err(error) = db.flush_cf(&cf)
            {
                tracing::warn!(%error, "could not flush the log's memtables at close");
            }
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

/// Places `event` at the next offset of its partition (advancing `next`) and encodes the
/// record the log stores for it: the writer's step, which the ceiling shares so that both write
/// the same keys and bytes.
pub(crate) fn place(
    event: &Event,
    partition_count: u32,
    next: &mut [u64],
    append_ms: i64,
    cipher: Option<&Cipher>,
) -> Result<(Appended, [u8; 12], Vec<u8>)> {
    let partition = partition_for_user(&event.user_id, partition_count);
    let offset = next[partition as usize];
    next[partition as usize] += 1;
    let record = StoredEntry {
        append_ms,
        event: event.clone(),
    };
    let mut bytes = encode_record(&record).map_err(Error::Encode)?;
    if let Some(cipher) = cipher {
        bytes = cipher.seal(&bytes);
    }
    Ok((
        Appended { partition, offset },
        entry_key(partition, offset),
        bytes,
    ))
}

/// Refuses a log opened with another encryption choice than it was created with (`created`:
/// the log is new, and the marker is written with it).
fn check_encryption(db: &DB, path: &Path, cipher: Option<&Cipher>, created: bool) -> Result<()> {
    let problem = match (db.get(ENCRYPTION_KEY)?, cipher) {
        (Some(_), None) => {
            "it is encrypted: set [storage] encryption_key_file (or MARQUEE_ENCRYPTION_KEY) to \
             the key it was created with"
        }
        (Some(marker), Some(cipher)) => match cipher.open(&marker) {
            Ok(check) if check == ENCRYPTION_CHECK => return Ok(()),
            _ => "the encryption key does not open it: it was created with another key",
        },
        (None, Some(_)) if !created => {
            "it was created without encryption and an encryption key is set: encryption is \
             chosen when a data directory is created; unset the key to open this one"
        }
        (None, _) => return Ok(()),
    };
    Err(Error::Encryption {
        path: path.display().to_string(),
        problem,
    })
}

/// Decodes a stored value (opened first in an encrypted log): `None` for an erased entry.
fn decode_entry(
    partition: u32,
    offset: u64,
    value: &[u8],
    cipher: Option<&Cipher>,
) -> Result<Option<LogEntry>> {
    if value == ERASED {
        return Ok(None);
    }
    let opened;
    let value = match cipher {
        Some(cipher) => {
            opened = cipher
                .open(value)
                .map_err(|_| Error::Sealed { partition, offset })?;
            opened.as_slice()
        }
        None => value,
    };
    let stored: StoredEntry = decode_record(value).map_err(|source| Error::CorruptRecord {
        partition,
        offset,
        source,
    })?;
    Ok(Some(LogEntry {
        partition,
        offset,
        append_ms: stored.append_ms,
        event: stored.event,
    }))
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
    cipher: Option<Cipher>,
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
                match place(
                    event,
                    partition_count,
                    &mut request_next,
                    append_ms,
                    cipher.as_ref(),
                ) {
                    Ok((placed, key, bytes)) => {
                        encoded.push((key, bytes));
                        appended.push(placed);
                    }
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
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

    fn read(&self, partition: u32, from_offset: u64, max_records: usize) -> Result<LogRead> {
        if partition >= self.inner.partition_count {
            return Err(Error::NoSuchPartition {
                partition,
                partition_count: self.inner.partition_count,
            });
        }
        let end = self.inner.end_offsets.borrow()[partition as usize];
        let mut read = LogRead {
            entries: Vec::new(),
            next_offset: from_offset,
        };
        if from_offset >= end || max_records == 0 {
            return Ok(read);
        }
        let db = &self.inner.db;
        let cf = db
            .cf_handle(EVENTS_CF)
            .expect("events column family exists");
        let start = entry_key(partition, from_offset);
        let last = from_offset + (max_records as u64).min(end - from_offset);
        read.entries.reserve((last - from_offset) as usize);
        for item in db.iterator_cf(&cf, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            let Some((found_partition, offset)) = parse_offset(&key) else {
                break;
            };
            if found_partition != partition || offset >= last {
                break;
            }
            if let Some(entry) =
                decode_entry(partition, offset, &value, self.inner.cipher.as_ref())?
            {
                read.entries.push(entry);
            }
        }
        // Every offset below the end was written; one without a key was trimmed by retention.
        read.next_offset = last;
        Ok(read)
    }

    fn user_entries(&self, user_id: &str) -> Result<Vec<LogEntry>> {
        let partition = partition_for_user(user_id, self.inner.partition_count);
        let end = self.inner.end_offsets.borrow()[partition as usize];
        let db = &self.inner.db;
        let cf = db
            .cf_handle(EVENTS_CF)
            .expect("events column family exists");
        let start = entry_key(partition, 0);
        let mut found = Vec::new();
        for item in db.iterator_cf(&cf, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            match parse_offset(&key) {
                Some((found_partition, offset)) if found_partition == partition && offset < end => {
                    if let Some(entry) =
                        decode_entry(partition, offset, &value, self.inner.cipher.as_ref())?
                        && entry.event.user_id == user_id
                    {
                        found.push(entry);
                    }
                }
                _ => break,
            }
        }
        Ok(found)
    }

    fn erase(&self, positions: &[(u32, u64)]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let db = &self.inner.db;
        let cf = db
            .cf_handle(EVENTS_CF)
            .expect("events column family exists");
        let mut batch = WriteBatch::default();
        for &(partition, offset) in positions {
            batch.put_cf(&cf, entry_key(partition, offset), ERASED);
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        db.write_opt(batch, &sync)?;
        // Out of the memtables and so out of the write-ahead log files, which RocksDB deletes
        // once every column family with data in them is flushed.
        db.flush_cf(&cf)?;
        db.flush()?;
        let mut by_partition: Vec<(u32, u64, u64)> = Vec::new();
        for &(partition, offset) in positions {
            match by_partition.iter_mut().find(|range| range.0 == partition) {
                Some(range) => {
                    range.1 = range.1.min(offset);
                    range.2 = range.2.max(offset);
                }
                None => by_partition.push((partition, offset, offset)),
            }
        }
        // Out of the SST files: a compaction of the erased ranges, in the background (it may
        // rewrite much of a partition, and the erasure is already in force).
        let db = Arc::clone(db);
        let compaction = std::thread::Builder::new()
            .name("log-erase-compaction".into())
            .spawn(move || {
                let cf = db
                    .cf_handle(EVENTS_CF)
                    .expect("events column family exists");
                let mut options = rocksdb::CompactOptions::default();
                options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                for (partition, first, last) in by_partition {
                    db.compact_range_cf_opt(
                        &cf,
                        Some(entry_key(partition, first)),
                        Some(entry_key(partition, last + 1)),
                        &options,
                    );
                }
            })
            .map_err(|_| Error::Closed)?;
        let mut erasures = self.inner.erasures.lock();
        erasures.retain(|running| !running.is_finished());
        erasures.push(compaction);
        Ok(())
    }

    fn end_offsets(&self) -> Result<Vec<u64>> {
        Ok(self.inner.end_offsets.borrow().clone())
    }

    async fn wait_for_append(&self, positions: &[u64], timeout: Duration) {
        wait_for_news(self.inner.end_offsets.clone(), positions, timeout).await;
    }
}
