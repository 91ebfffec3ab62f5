//! The change log: the topic that carries the item changes of processors on other machines.
//!
//! When the partitions of the event log are split between nodes (`docs/SCALING.md`), each node
//! applies the events of its own partitions, and the items those events change must change on
//! every node. A node's processor writes what each batch did to items (an encoded record of
//! `marquee_vector_store::ItemChanges`) to an outbox in the batch's own write, ships the outbox
//! here, and consumes everything here into its item table. Records are opaque bytes to this
//! crate; their identity (the event offsets they come from) is inside them, so a record appended
//! twice is recognised by its reader.
//!
//! Contract, checked against every backend by `tests/event_log.rs`:
//! - **One ordered stream.** Offsets start at 0 and grow by one per record, without gaps; the
//!   records of one [`append`](ChangeLog::append) keep their order.
//! - **Durability on return**, as for the event log: when `append` returns `Ok`, the records
//!   survive a crash; on `Err`, some may have been appended, and the caller sends them again.
//! - **Reads never wait**; [`wait_for_append`](ChangeLog::wait_for_append) does.
//!
//! Backends: [`EmbeddedChangeLog`], a RocksDB instance of its own (nodes in one process, and
//! the tests); on Fluvio, a topic of one partition (`marquee-item-deltas` by default), so every
//! node reads the records in one order.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use tokio::sync::watch;

use crate::config::LogBackend;
use crate::error::Result;
#[cfg(feature = "fluvio")]
use crate::fluvio::FluvioLog;
use crate::log::{ChangeRecord, wait_for_news};

/// A durable, ordered log of opaque records shared by every node (see the module docs).
pub trait ChangeLog: Send + Sync + 'static {
    /// Appends `records` durably, in order.
    fn append(&self, records: Vec<Vec<u8>>) -> impl Future<Output = Result<()>> + Send;

    /// Up to `max_records` records from `from_offset` on, without waiting.
    fn read(&self, from_offset: u64, max_records: usize) -> Result<Vec<ChangeRecord>>;

    /// The offset the next append will get.
    fn end_offset(&self) -> Result<u64>;

    /// Resolves once the end offset exceeds `position`, or after `timeout`. Spurious wake-ups
    /// are allowed.
    fn wait_for_append(&self, position: u64, timeout: Duration) -> impl Future<Output = ()> + Send;
}

/// The change log in a RocksDB instance of its own: key = offset (u64, big-endian), value = the
/// record. Every append is one synced write.
#[derive(Clone, Debug)]
pub struct EmbeddedChangeLog {
    inner: Arc<EmbeddedInner>,
}

#[derive(Debug)]
struct EmbeddedInner {
    db: DB,
    /// The next offset; held across the write, so appends are ordered.
    next: parking_lot::Mutex<u64>,
    end: watch::Sender<Vec<u64>>,
}

impl EmbeddedChangeLog {
    /// Opens the change log at `path`, creating it when absent.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedChangeLog> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let db = DB::open(&options, path.as_ref())?;
        let next = match db.iterator(IteratorMode::End).next() {
            Some(item) => {
                let (key, _) = item?;
                key.as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_or(0, |last| last + 1)
            }
            None => 0,
        };
        let (end, _) = watch::channel(vec![next]);
        Ok(EmbeddedChangeLog {
            inner: Arc::new(EmbeddedInner {
                db,
                next: parking_lot::Mutex::new(next),
                end,
            }),
        })
    }
}

impl ChangeLog for EmbeddedChangeLog {
    async fn append(&self, records: Vec<Vec<u8>>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut next = inner.next.lock();
            let mut batch = WriteBatch::default();
            for (index, record) in records.iter().enumerate() {
                batch.put((*next + index as u64).to_be_bytes(), record);
            }
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            inner.db.write_opt(batch, &sync)?;
            *next += records.len() as u64;
            let end = *next;
            inner.end.send_modify(|ends| ends[0] = end);
            Ok(())
        })
        .await
        .map_err(|_| crate::Error::Closed)?
    }

    fn read(&self, from_offset: u64, max_records: usize) -> Result<Vec<ChangeRecord>> {
        let mut records = Vec::new();
        let start = from_offset.to_be_bytes();
        for item in self
            .inner
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            if records.len() >= max_records {
                break;
            }
            let (key, value) = item?;
            let Ok(offset) = key.as_ref().try_into().map(u64::from_be_bytes) else {
                break;
            };
            records.push(ChangeRecord {
                offset,
                value: value.into_vec(),
            });
        }
        Ok(records)
    }

    fn end_offset(&self) -> Result<u64> {
        Ok(*self.inner.next.lock())
    }

    async fn wait_for_append(&self, position: u64, timeout: Duration) {
        wait_for_news(self.inner.end.subscribe(), &[position], timeout).await;
    }
}

/// The change log on a Fluvio topic of one partition (a [`FluvioLog`] of that topic, read and
/// written as raw records).
///
/// Fluvio refuses batches over its maximum (2 MiB by default), and a processor batch's changes
/// can be larger: a record over [`CHUNK_BYTES`] is sent as consecutive chunks and put together
/// again by [`read`](ChangeLog::read), which gives it the offset of its last chunk. Every Fluvio
/// record starts with a byte saying which it is: `0` a whole record, `1` a chunk, followed by
/// the chunk's index and the chunk count (u32, big-endian each). Chunks of an append that failed
/// part-way, sent again whole by the shipper, are incomplete and passed over.
#[cfg(feature = "fluvio")]
#[derive(Clone, Debug)]
pub struct FluvioChangeLog {
    log: FluvioLog,
}

#[cfg(feature = "fluvio")]
impl FluvioChangeLog {
    /// Connects to the cluster at `endpoint` and creates `topic` (one partition, `replication`
    /// replicas) when absent.
    pub async fn connect(endpoint: &str, topic: &str, replication: u32) -> Result<FluvioChangeLog> {
        let config = crate::fluvio::FluvioLogConfig {
            topic: topic.to_owned(),
            partitions: 1,
            replication,
            ..crate::fluvio::FluvioLogConfig::new(endpoint)
        };
        Ok(FluvioChangeLog {
            log: FluvioLog::connect(config).await?,
        })
    }
}

/// Records larger than this travel as chunks of this size on Fluvio.
#[cfg(feature = "fluvio")]
pub const CHUNK_BYTES: usize = 256 * 1024;

#[cfg(feature = "fluvio")]
const WHOLE: u8 = 0;
#[cfg(feature = "fluvio")]
const CHUNK: u8 = 1;

/// A record as Fluvio records: whole, or in chunks (see [`FluvioChangeLog`]).
#[cfg(feature = "fluvio")]
fn frame(record: &[u8], framed: &mut Vec<Vec<u8>>) {
    if record.len() <= CHUNK_BYTES {
        let mut whole = Vec::with_capacity(record.len() + 1);
        whole.push(WHOLE);
        whole.extend_from_slice(record);
        framed.push(whole);
        return;
    }
    let count = record.len().div_ceil(CHUNK_BYTES) as u32;
    for (index, part) in record.chunks(CHUNK_BYTES).enumerate() {
        let mut chunk = Vec::with_capacity(part.len() + 9);
        chunk.push(CHUNK);
        chunk.extend_from_slice(&(index as u32).to_be_bytes());
        chunk.extend_from_slice(&count.to_be_bytes());
        chunk.extend_from_slice(part);
        framed.push(chunk);
    }
}

/// Puts framed Fluvio records back together, in order: whole records and complete chunk runs,
/// each with the offset of its last Fluvio record; the offset from which the rest must be read
/// again (an incomplete run at the end), if any.
#[cfg(feature = "fluvio")]
fn unframe(raw: Vec<ChangeRecord>) -> Result<(Vec<ChangeRecord>, Option<u64>)> {
    let corrupt = |offset: u64| crate::Error::CorruptRecord {
        partition: 0,
        offset,
        source: marquee_schemas::CodecError::Empty,
    };
    let mut records = Vec::new();
    // The run being put together: its first offset, the next index, the count, the bytes.
    let mut run: Option<(u64, u32, u32, Vec<u8>)> = None;
    for record in raw {
        match record.value.first() {
            Some(&WHOLE) => {
                run = None;
                records.push(ChangeRecord {
                    offset: record.offset,
                    value: record.value[1..].to_vec(),
                });
            }
            Some(&CHUNK) if record.value.len() >= 9 => {
                let number = |at: usize| {
                    u32::from_be_bytes(record.value[at..at + 4].try_into().expect("4 bytes"))
                };
                let (index, count) = (number(1), number(5));
                let part = &record.value[9..];
                if index == 0 {
                    run = Some((record.offset, 0, count, Vec::new()));
                }
                match &mut run {
                    Some((_, next, run_count, bytes)) if *next == index && *run_count == count => {
                        bytes.extend_from_slice(part);
                        *next += 1;
                        if *next == count {
                            let (_, _, _, value) = run.take().expect("a run");
                            records.push(ChangeRecord {
                                offset: record.offset,
                                value,
                            });
                        }
                    }
                    // A chunk of a run that was cut short (an append that failed part-way):
                    // the shipper sent the record again whole, after it.
                    _ => run = None,
                }
            }
            _ => return Err(corrupt(record.offset)),
        }
    }
    Ok((records, run.map(|(first, ..)| first)))
}

#[cfg(feature = "fluvio")]
impl ChangeLog for FluvioChangeLog {
    async fn append(&self, records: Vec<Vec<u8>>) -> Result<()> {
        let mut framed = Vec::with_capacity(records.len());
        for record in &records {
            frame(record, &mut framed);
        }
        self.log.append_raw(framed).await
    }

    fn read(&self, from_offset: u64, max_records: usize) -> Result<Vec<ChangeRecord>> {
        let mut fetch = max_records.max(1);
        loop {
            let raw = self.log.read_raw(from_offset, fetch)?;
            let fetched = raw.len();
            let (mut records, incomplete) = unframe(raw)?;
            records.truncate(max_records);
            match incomplete {
                // A run cut by this read's bound, and nothing whole before it: read further.
                Some(_) if records.is_empty() && fetched == fetch => fetch *= 2,
                // A run not yet all committed: the records before it now, the run later.
                _ => return Ok(records),
            }
        }
    }

    fn end_offset(&self) -> Result<u64> {
        use crate::log::EventLog;
        Ok(self.log.end_offsets()?.first().copied().unwrap_or(0))
    }

    async fn wait_for_append(&self, position: u64, timeout: Duration) {
        use crate::log::EventLog;
        self.log.wait_for_append(&[position], timeout).await;
    }
}

/// An opened change log of any backend.
#[derive(Clone, Debug)]
pub enum AnyChangeLog {
    Embedded(EmbeddedChangeLog),
    #[cfg(feature = "fluvio")]
    Fluvio(FluvioChangeLog),
}

impl AnyChangeLog {
    /// Opens the change log beside the event log `backend` names: on Fluvio, `topic` (created
    /// with one partition and the event topic's replication when absent).
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) for the embedded event log, which is
    /// one machine's (nodes in one process share an [`EmbeddedChangeLog`] instead); the
    /// backend's connection errors.
    pub async fn open(backend: &LogBackend, topic: &str) -> Result<AnyChangeLog> {
        match backend {
            LogBackend::Embedded => Err(crate::Error::Unsupported(
                "split the partitions between nodes: the embedded log is one machine's; \
                 use log.backend = \"fluvio\"",
            )),
            #[cfg(feature = "fluvio")]
            LogBackend::Fluvio {
                endpoint,
                replication,
                ..
            } => FluvioChangeLog::connect(endpoint, topic, *replication)
                .await
                .map(AnyChangeLog::Fluvio),
            #[cfg(not(feature = "fluvio"))]
            LogBackend::Fluvio { .. } => {
                let _ = topic;
                Err(crate::Error::Unsupported(
                    "use Fluvio: this binary was built without the `fluvio` cargo feature",
                ))
            }
        }
    }
}

impl ChangeLog for AnyChangeLog {
    async fn append(&self, records: Vec<Vec<u8>>) -> Result<()> {
        match self {
            AnyChangeLog::Embedded(log) => log.append(records).await,
            #[cfg(feature = "fluvio")]
            AnyChangeLog::Fluvio(log) => log.append(records).await,
        }
    }

    fn read(&self, from_offset: u64, max_records: usize) -> Result<Vec<ChangeRecord>> {
        match self {
            AnyChangeLog::Embedded(log) => log.read(from_offset, max_records),
            #[cfg(feature = "fluvio")]
            AnyChangeLog::Fluvio(log) => log.read(from_offset, max_records),
        }
    }

    fn end_offset(&self) -> Result<u64> {
        match self {
            AnyChangeLog::Embedded(log) => log.end_offset(),
            #[cfg(feature = "fluvio")]
            AnyChangeLog::Fluvio(log) => log.end_offset(),
        }
    }

    async fn wait_for_append(&self, position: u64, timeout: Duration) {
        match self {
            AnyChangeLog::Embedded(log) => log.wait_for_append(position, timeout).await,
            #[cfg(feature = "fluvio")]
            AnyChangeLog::Fluvio(log) => log.wait_for_append(position, timeout).await,
        }
    }
}
