//! The Fluvio backend: the event log as a topic of a Fluvio cluster (cargo feature `fluvio`).
//!
//! - **Topic.** Created at start when absent, with the configured partition count and
//!   replication factor; an existing topic must have the configured partition count (a topic's
//!   partitions, like the embedded log's, are what user → partition assignment rests on).
//! - **Partitioning.** The record key is the `user_id`, and a [`Partitioner`] of our own places it
//!   with [`partition_for_user`], the hash every backend shares, so a user's events keep their
//!   partition when the backend changes (and `replay` and the conformance suite see the same
//!   placement).
//! - **Values.** The same versioned [`LogRecord`] as the embedded log: the node's append time and
//!   the event.
//! - **Acknowledgement.** [`append`](EventLog::append) returns once every record's metadata came
//!   back with [`Isolation::ReadCommitted`]: the records are committed to the partition's
//!   in-sync replicas. Fluvio writes them to its segment files without an `fsync`, so what
//!   survives the loss of a machine is what the replication factor gives (see
//!   `docs/OPERATIONS.md`). The producer is at-least-once ([`DeliverySemantic::AtLeastOnce`],
//!   retried with backoff) and has no idempotent mode: a retried batch can land twice, and the
//!   processor's `event_id` de-duplication applies it once.
//! - **Reads.** [`read`](EventLog::read) is a bounded fetch of what the partition holds now (a
//!   consumer stream with `disable_continuous`, committed records only), run to completion on
//!   the calling thread. Consumer offsets are never stored in Fluvio: the processor keeps them in
//!   the state's RocksDB write batch, beside the state they produced.
//! - **Waiting.** One tail stream per partition, from the end, records the highest offset seen;
//!   [`wait_for_append`](EventLog::wait_for_append) wakes on it (or on this node's own appends).
//! - **End offsets.** Fetched from the cluster at start (the last record of each partition),
//!   then kept by the tail streams and this node's own appends, so reading them costs no round
//!   trip (`/readyz` and `/metrics` read them); they trail the cluster by the tail's delivery
//!   time.
//! - **Erasure.** Fluvio's history is immutable: [`erase`](EventLog::erase) answers
//!   [`Error::Unsupported`] and the processor's erasure list blocks the user's events (the bytes
//!   leave with the topic's retention). [`user_entries`](EventLog::user_entries) scans the user's
//!   partition from its first record, an administrative operation.
//!
//! Fluvio's client runs on its own executor (`async-global-executor`, `async-io`), so its futures
//! can be awaited from tokio, and blocked on from the processor's thread.

use std::sync::Arc;
use std::time::Duration;

use fluvio::consumer::{ConsumerConfigExt, RetryMode};
use fluvio::metadata::topic::TopicSpec;
use fluvio::{
    DeliverySemantic, Fluvio, FluvioClusterConfig, Isolation, Offset, Partitioner,
    PartitionerConfig, RetryPolicy, TopicProducerConfigBuilder, TopicProducerPool,
};
use futures_util::StreamExt;
use marquee_schemas::{Event, LogRecord, decode_record, encode_record, partition_for_user};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::DEFAULT_TOPIC;
use crate::error::{Error, Result};
use crate::log::{Appended, EventLog, LogEntry, LogRead, wait_for_news};
use marquee_schemas::now_ms;

/// Settings of the Fluvio backend.
#[derive(Debug, Clone)]
pub struct FluvioLogConfig {
    /// The cluster's SC public endpoint, `HOST:PORT` (a local cluster listens on 9003).
    pub endpoint: String,
    /// The topic holding the events.
    pub topic: String,
    /// Partitions of the topic when it is created; an existing topic must match.
    pub partitions: u32,
    /// Replicas per partition when the topic is created (at most the cluster's SPU count).
    pub replication: u32,
    /// How long start-up waits for the cluster before it gives up with an error.
    pub connect_timeout: Duration,
    /// Take an existing topic's partition count as it is, rather than requiring
    /// [`partitions`](Self::partitions): a topic other systems write to (the intake topic of
    /// `marquee intake`), whose partitions place nothing of Marquee's.
    pub adopt_partitions: bool,
    /// How long one append waits for the cluster (retries included) before it fails; the API
    /// then answers 503 and the client retries. Below the API's 10 s request timeout, so the
    /// answer names the log rather than a timeout.
    pub append_timeout: Duration,
}

impl FluvioLogConfig {
    /// The defaults for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> FluvioLogConfig {
        FluvioLogConfig {
            endpoint: endpoint.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            partitions: 4,
            replication: 1,
            connect_timeout: Duration::from_secs(10),
            adopt_partitions: false,
            append_timeout: Duration::from_secs(5),
        }
    }
}

/// The event log on a Fluvio topic. Cheap to clone.
#[derive(Clone)]
pub struct FluvioLog {
    inner: Arc<Inner>,
}

struct Inner {
    fluvio: Fluvio,
    /// `None` after a failed append: the next append opens a new producer. A Fluvio producer
    /// whose retries ran out stays failed ("retry timeout limit reached") even after the
    /// cluster recovered.
    producer: parking_lot::Mutex<Option<Arc<TopicProducerPool>>>,
    config: FluvioLogConfig,
    /// Per partition, one past the highest committed offset known (fetched at start, then
    /// appended here or seen by the tail stream): the end offsets, which `wait_for_append`
    /// watches.
    known_ends: watch::Sender<Vec<u64>>,
}

impl std::fmt::Debug for FluvioLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FluvioLog")
            .field("endpoint", &self.inner.config.endpoint)
            .field("topic", &self.inner.config.topic)
            .field("partitions", &self.inner.config.partitions)
            .finish()
    }
}

impl Inner {
    /// Raises the known end of each `(partition, end)` that is past it, waking the waiters.
    fn raise_ends(&self, ends: &[(u32, u64)]) {
        self.known_ends.send_if_modified(|known| {
            let mut newer = false;
            for &(partition, end) in ends {
                let slot = &mut known[partition as usize];
                if end > *slot {
                    *slot = end;
                    newer = true;
                }
            }
            newer
        });
    }
}

/// Places a record by its key, the `user_id`, with the hash every backend uses.
struct UserPartitioner;

impl Partitioner for UserPartitioner {
    fn partition(&self, config: &PartitionerConfig, key: Option<&[u8]>, _value: &[u8]) -> u32 {
        let user_id = key.map(String::from_utf8_lossy).unwrap_or_default();
        partition_for_user(&user_id, config.partition_count())
    }
}

fn unavailable(endpoint: &str, what: &str, error: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("Fluvio at {endpoint}: {what}: {error:#}"))
}

impl FluvioLog {
    /// Connects to the cluster, creates the topic when absent, and starts the tail streams.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the cluster cannot be reached within
    /// [`FluvioLogConfig::connect_timeout`] or refuses the topic;
    /// [`Error::PartitionCountMismatch`] when the topic exists with another partition count.
    pub async fn connect(config: FluvioLogConfig) -> Result<FluvioLog> {
        let endpoint = config.endpoint.clone();
        let connect = async {
            let cluster = FluvioClusterConfig::new(endpoint.clone());
            let fluvio = Fluvio::connect_with_config(&cluster)
                .await
                .map_err(|error| unavailable(&endpoint, "cannot connect", error))?;
            let partitions = ensure_topic(&fluvio, &config).await?;
            let producer = open_producer(&fluvio, &config).await?;
            Ok::<_, Error>((fluvio, producer, partitions))
        };
        let (fluvio, producer, partitions) = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| {
                unavailable(
                    &endpoint,
                    "cannot connect",
                    format!("no answer within {:?}", config.connect_timeout),
                )
            })??;
        let (known_ends, _) = watch::channel(vec![0; partitions as usize]);
        let log = FluvioLog {
            inner: Arc::new(Inner {
                fluvio,
                producer: parking_lot::Mutex::new(Some(Arc::new(producer))),
                config: FluvioLogConfig {
                    partitions,
                    ..config
                },
                known_ends,
            }),
        };
        let ends = log.fetch_end_offsets().await?;
        log.inner.known_ends.send_modify(|known| *known = ends);
        for partition in 0..partitions {
            log.spawn_tail(partition);
        }
        info!(
            endpoint = %log.inner.config.endpoint,
            topic = %log.inner.config.topic,
            partitions,
            "connected to Fluvio"
        );
        Ok(log)
    }

    /// The topic this log writes to.
    pub fn topic(&self) -> &str {
        &self.inner.config.topic
    }

    /// Follows `partition` from its end and records the offsets it sees, for `wait_for_append`.
    /// Restarts after an error, with backoff; stops when the log is dropped.
    fn spawn_tail(&self, partition: u32) {
        let weak = Arc::downgrade(&self.inner);
        fluvio_future::task::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let start = inner.known_ends.borrow()[partition as usize];
                let config = ConsumerConfigExt::builder()
                    .topic(inner.config.topic.clone())
                    .partition(partition)
                    .offset_start(Offset::absolute(start as i64).unwrap_or_else(|_| Offset::end()))
                    .max_bytes(MAX_FETCH_BYTES)
                    .isolation(Isolation::ReadCommitted)
                    .retry_mode(RetryMode::Disabled)
                    .build();
                let stream = match config {
                    Ok(config) => inner.fluvio.consumer_with_config(config).await,
                    Err(error) => Err(error),
                };
                drop(inner);
                match stream {
                    Ok(mut stream) => {
                        backoff = Duration::from_millis(100);
                        while let Some(record) = stream.next().await {
                            let Some(inner) = weak.upgrade() else { return };
                            match record {
                                Ok(record) => {
                                    let next = record.offset() as u64 + 1;
                                    inner.raise_ends(&[(partition, next)]);
                                }
                                Err(error) => {
                                    warn!(partition, %error, "Fluvio tail stream failed; restarting");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => {
                        warn!(partition, error = %format!("{error:#}"), "cannot follow a Fluvio partition; retrying");
                    }
                }
                fluvio_future::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// The producer, opening a new one when the last append failed.
    async fn producer(&self) -> Result<Arc<TopicProducerPool>> {
        if let Some(producer) = self.inner.producer.lock().clone() {
            return Ok(producer);
        }
        let producer = Arc::new(open_producer(&self.inner.fluvio, &self.inner.config).await?);
        *self.inner.producer.lock() = Some(Arc::clone(&producer));
        Ok(producer)
    }

    /// Sends `events` and waits for every record's committed acknowledgement.
    async fn produce(&self, events: Vec<Event>) -> Result<Vec<Appended>> {
        let append_ms = now_ms();
        let records = events
            .into_iter()
            .map(|event| {
                let key = event.user_id.clone().into_bytes();
                let value =
                    encode_record(&LogRecord { append_ms, event }).map_err(Error::Encode)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        self.produce_records(records).await
    }

    /// Sends `(key, value)` records and waits for every record's committed acknowledgement.
    async fn produce_records(&self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<Appended>> {
        let endpoint = &self.inner.config.endpoint;
        let producer = self.producer().await?;
        let mut outputs = Vec::with_capacity(records.len());
        for (key, value) in records {
            let output = producer
                .send(key, value)
                .await
                .map_err(|error| unavailable(endpoint, "append failed", error))?;
            outputs.push(output);
        }
        let mut appended = Vec::with_capacity(outputs.len());
        for output in outputs {
            let metadata = output
                .wait()
                .await
                .map_err(|error| unavailable(endpoint, "append failed", error))?;
            appended.push(Appended {
                partition: metadata.partition_id(),
                offset: metadata.offset() as u64,
            });
        }
        let ends: Vec<(u32, u64)> = appended
            .iter()
            .map(|place| (place.partition, place.offset + 1))
            .collect();
        self.inner.raise_ends(&ends);
        Ok(appended)
    }

    /// The topic's partition count.
    pub fn partition_count(&self) -> u32 {
        self.inner.config.partitions
    }

    /// Up to `max_records` committed records of `partition` from `from_offset`, as stored
    /// (`(offset, value)`): a topic other systems write to, read by `marquee intake`.
    pub async fn read_values(
        &self,
        partition: u32,
        from_offset: u64,
        max_records: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.fetch_records(partition, from_offset, max_records)
            .await
    }

    /// Appends raw records without a key, with the append timeout of [`EventLog::append`]:
    /// the change log's records (`crate::changes`), and a test's intake records.
    pub async fn append_raw(&self, values: Vec<Vec<u8>>) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let records = values
            .into_iter()
            .map(|value| (Vec::new(), value))
            .collect();
        self.within_append_timeout(self.produce_records(records))
            .await
            .map(|_| ())
    }

    /// `produce`'s outcome within the append timeout: the producer reconnects to a lost SPU
    /// forever, and the caller gets an answer in time. After a failure, the next append opens
    /// a new producer.
    async fn within_append_timeout<T>(
        &self,
        produce: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let timeout = self.inner.config.append_timeout;
        let outcome = tokio::time::timeout(timeout, produce)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(
                    &self.inner.config.endpoint,
                    "append failed",
                    format!("no acknowledgement within {timeout:?}"),
                ))
            });
        if outcome.is_err() && self.inner.producer.lock().take().is_some() {
            warn!("a Fluvio append failed; the next append opens a new producer");
        }
        outcome
    }

    /// Up to `max_records` raw records of partition 0 from `from_offset`.
    pub(crate) fn read_raw(
        &self,
        from_offset: u64,
        max_records: usize,
    ) -> Result<Vec<crate::log::ChangeRecord>> {
        let records =
            fluvio_future::task::run_block_on(self.fetch_records(0, from_offset, max_records))?;
        Ok(records
            .into_iter()
            .map(|(offset, value)| crate::log::ChangeRecord { offset, value })
            .collect())
    }

    /// The committed records of `partition` from `offset` to the partition's end as the stream
    /// starts (Fluvio's `disable_continuous`), without retries: errors reach the caller.
    async fn bounded_consumer(
        &self,
        partition: u32,
        offset: Offset,
    ) -> Result<
        impl futures_util::Stream<
            Item = std::result::Result<
                fluvio::consumer::ConsumerRecord,
                fluvio::dataplane::link::ErrorCode,
            >,
        > + Unpin
        + use<>,
    > {
        let endpoint = &self.inner.config.endpoint;
        let config = ConsumerConfigExt::builder()
            .topic(self.inner.config.topic.clone())
            .partition(partition)
            .offset_start(offset)
            .disable_continuous(true)
            .max_bytes(MAX_FETCH_BYTES)
            .isolation(Isolation::ReadCommitted)
            .retry_mode(RetryMode::Disabled)
            .build()
            .map_err(|error| unavailable(endpoint, "consumer settings", error))?;
        self.inner
            .fluvio
            .consumer_with_config(config)
            .await
            .map_err(|error| unavailable(endpoint, "cannot read", error))
    }

    /// Up to `max_records` committed records of `partition` from `from_offset`, decoded.
    async fn fetch(
        &self,
        partition: u32,
        from_offset: u64,
        max_records: usize,
    ) -> Result<Vec<LogEntry>> {
        self.fetch_records(partition, from_offset, max_records)
            .await?
            .into_iter()
            .map(|(offset, value)| {
                let stored: LogRecord =
                    decode_record(&value).map_err(|source| Error::CorruptRecord {
                        partition,
                        offset,
                        source,
                    })?;
                Ok(LogEntry {
                    partition,
                    offset,
                    append_ms: stored.append_ms,
                    event: stored.event,
                })
            })
            .collect()
    }

    /// Up to `max_records` committed records of `partition` from `from_offset`, as stored:
    /// `(offset, value)`.
    async fn fetch_records(
        &self,
        partition: u32,
        from_offset: u64,
        max_records: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let endpoint = &self.inner.config.endpoint;
        let mut records = Vec::new();
        if max_records == 0 {
            return Ok(records);
        }
        let offset = Offset::absolute(from_offset as i64)
            .map_err(|error| unavailable(endpoint, "bad offset", error))?;
        let stalled = || read_stalled(endpoint);
        let mut stream = within(READ_IDLE_TIMEOUT, self.bounded_consumer(partition, offset))
            .await
            .ok_or_else(stalled)??;
        while let Some(record) = within(READ_IDLE_TIMEOUT, stream.next())
            .await
            .ok_or_else(stalled)?
        {
            let record = record.map_err(|error| unavailable(endpoint, "read failed", error))?;
            let offset = record.offset() as u64;
            if offset < from_offset {
                continue;
            }
            records.push((offset, record.value().to_vec()));
            if records.len() >= max_records {
                break;
            }
        }
        Ok(records)
    }

    /// One past the last committed offset of every partition, as the cluster has it now.
    async fn fetch_end_offsets(&self) -> Result<Vec<u64>> {
        let endpoint = &self.inner.config.endpoint;
        let mut ends = Vec::with_capacity(self.inner.config.partitions as usize);
        for partition in 0..self.inner.config.partitions {
            let stalled = || read_stalled(endpoint);
            let mut stream = within(
                READ_IDLE_TIMEOUT,
                self.bounded_consumer(partition, Offset::from_end(1)),
            )
            .await
            .ok_or_else(stalled)??;
            let end = match within(READ_IDLE_TIMEOUT, stream.next())
                .await
                .ok_or_else(stalled)?
            {
                Some(Ok(record)) => record.offset() as u64 + 1,
                Some(Err(error)) => return Err(unavailable(endpoint, "read failed", error)),
                None => 0,
            };
            ends.push(end);
        }
        Ok(ends)
    }
}

/// Creates the topic when absent; returns its partition count.
async fn ensure_topic(fluvio: &Fluvio, config: &FluvioLogConfig) -> Result<u32> {
    let endpoint = &config.endpoint;
    let admin = fluvio.admin().await;
    let existing = admin
        .list::<TopicSpec, String>(vec![config.topic.clone()])
        .await
        .map_err(|error| unavailable(endpoint, "cannot list topics", error))?;
    if let Some(topic) = existing
        .into_iter()
        .find(|topic| topic.name == config.topic)
    {
        let partitions = topic.spec.partitions();
        if partitions != config.partitions && !config.adopt_partitions {
            return Err(Error::PartitionCountMismatch {
                path: format!("Fluvio topic {} at {endpoint}", config.topic),
                existing: partitions,
                requested: config.partitions,
            });
        }
        return Ok(partitions);
    }
    let spec = TopicSpec::new_computed(config.partitions, config.replication, None);
    admin
        .create(config.topic.clone(), false, spec)
        .await
        .map_err(|error| unavailable(endpoint, "cannot create the topic", error))?;
    info!(topic = %config.topic, partitions = config.partitions, "created the Fluvio topic");
    // The partitions need a leader before the first produce; wait until the topic answers.
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    loop {
        let ready = admin
            .list::<fluvio::metadata::partition::PartitionSpec, String>(vec![])
            .await
            .map(|partitions| {
                partitions
                    .iter()
                    .filter(|partition| {
                        partition
                            .name
                            .rsplit_once('-')
                            .is_some_and(|(topic, _)| topic == config.topic)
                            && partition.status.is_online()
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= config.partitions as usize {
            return Ok(config.partitions);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(unavailable(
                endpoint,
                "the new topic has no leaders",
                format!("{ready} of {} partitions online", config.partitions),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Most bytes one fetch of a read may return: several of the producer's batches (1 MiB
/// each). Fluvio's default (about 1 MiB) left a batch that did not fit out of a fetch, and the
/// bounded stream went on past it: records went missing from reads.
const MAX_FETCH_BYTES: i32 = 16 << 20;

/// Longest wait for the next record of a bounded read (or for the read to start). A read that
/// gets nothing for this long is an error the processor retries with a new consumer: a
/// consumer of an SPU that went away and came back can otherwise wait forever.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The error of a read that got nothing for [`READ_IDLE_TIMEOUT`].
fn read_stalled(endpoint: &str) -> Error {
    unavailable(
        endpoint,
        "read failed",
        format!("no answer within {READ_IDLE_TIMEOUT:?}"),
    )
}

/// `future`'s output, or `None` when it did not finish within `limit` (on Fluvio's timer, so it
/// works inside `run_block_on`).
async fn within<F: std::future::Future>(limit: Duration, future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    let timer = std::pin::pin!(fluvio_future::timer::sleep(limit));
    match futures_util::future::select(future, timer).await {
        futures_util::future::Either::Left((output, _)) => Some(output),
        futures_util::future::Either::Right(_) => None,
    }
}

/// A producer of the log's topic: records keyed by user id and placed by [`UserPartitioner`],
/// acknowledged once committed, retried within the append timeout.
async fn open_producer(fluvio: &Fluvio, config: &FluvioLogConfig) -> Result<TopicProducerPool> {
    let endpoint = &config.endpoint;
    let producer_config = TopicProducerConfigBuilder::default()
        .partitioner(Arc::new(UserPartitioner))
        .isolation(Isolation::ReadCommitted)
        .delivery_semantic(DeliverySemantic::AtLeastOnce(RetryPolicy {
            max_retries: 8,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            timeout: config.append_timeout,
            ..RetryPolicy::default()
        }))
        .timeout(config.append_timeout)
        // No explicit flush: `flush` sends the partitions' batches one after another (four
        // round trips per append, ~50 ms here), while the linger timer sends them in parallel
        // after 1 ms. Batches up to 1 MiB carry a whole request's records for a partition
        // (1,000 events ≈ 150 KiB).
        .linger(Duration::from_millis(1))
        .batch_size(1 << 20)
        .max_request_size(4 << 20)
        .build()
        .map_err(|error| unavailable(endpoint, "producer settings", error))?;
    fluvio
        .topic_producer_with_config(config.topic.clone(), producer_config)
        .await
        .map_err(|error| unavailable(endpoint, "cannot open a producer", error))
}

impl EventLog for FluvioLog {
    fn partition_count(&self) -> u32 {
        self.inner.config.partitions
    }

    async fn append(&self, events: Vec<Event>) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.within_append_timeout(self.produce(events)).await
    }

    fn read(&self, partition: u32, from_offset: u64, max_records: usize) -> Result<LogRead> {
        let partition_count = self.inner.config.partitions;
        if partition >= partition_count {
            return Err(Error::NoSuchPartition {
                partition,
                partition_count,
            });
        }
        let entries =
            fluvio_future::task::run_block_on(self.fetch(partition, from_offset, max_records))?;
        // Offsets of a topic are dense: the read covered up to its last record.
        let next_offset = entries.last().map_or(from_offset, |last| last.offset + 1);
        Ok(LogRead {
            entries,
            next_offset,
        })
    }

    fn user_entries(&self, user_id: &str) -> Result<Vec<LogEntry>> {
        let partition = partition_for_user(user_id, self.inner.config.partitions);
        let mut found = Vec::new();
        let mut from = 0;
        loop {
            let read = self.read(partition, from, 10_000)?;
            if read.next_offset == from {
                return Ok(found);
            }
            from = read.next_offset;
            found.extend(
                read.entries
                    .into_iter()
                    .filter(|entry| entry.event.user_id == user_id),
            );
        }
    }

    fn erase(&self, _positions: &[(u32, u64)]) -> Result<()> {
        Err(Error::Unsupported(
            "erase events from a Fluvio topic (its history is immutable; the erasure list blocks them)",
        ))
    }

    fn end_offsets(&self) -> Result<Vec<u64>> {
        Ok(self.inner.known_ends.borrow().clone())
    }

    async fn wait_for_append(&self, positions: &[u64], timeout: Duration) {
        wait_for_news(self.inner.known_ends.subscribe(), positions, timeout).await;
    }
}
