//! The consumer loop.
//!
//! A processor loop reads its partitions from their committed offsets, in batches of at most
//! [`ProcessorConfig::max_batch_events`] per partition, and for each batch:
//!
//! 1. assigns item numbers to items it has not seen (one short write lock on the item table);
//! 2. reads what the batch needs from the state in one RocksDB `MultiGet` per column family
//!    (whether each event was applied before, the users' states), then applies each event to
//!    working copies of the touched users and items (an item is copied from the [`ItemTable`]
//!    when the batch first needs it), skipping an event whose `(user_id, event_id)` was applied
//!    before (within the batch, or within the de-duplication window on disk);
//! 3. writes the new user states, the interactions with seen items and what the batch added to
//!    each item (an [`ItemDelta`]) and to co-occurrence lists (all three merge operands, so no
//!    stored value is read for them), de-duplication keys **and the next offsets in one RocksDB
//!    write batch**, so state and offsets can never disagree;
//! 4. only then adds the same deltas to the items in the [`ItemTable`], applies the
//!    co-occurrence additions to the lists in memory (a bounded number of lists per write-lock
//!    hold), and marks the items changed in the [`VectorIndex`].
//!
//! A crash anywhere before step 3 completes leaves the old offsets with the old state, and the
//! batch is applied again from the log; after step 3 it is never applied again. Nothing is
//! published before it is committed, so a failed commit leaves memory and disk consistent, and
//! the batch is retried after a pause.
//!
//! ## Workers
//!
//! A node runs [`ProcessorConfig::workers`] loops (by default one per core, at most one per
//! partition; [`Processor::spawn_workers`]). Worker `w` owns the partitions `p` with
//! `p % workers == w`: it reads only them and commits only their offsets.
//!
//! - **Users** live in one partition, so a user's state is touched by one worker only, and an
//!   erasure runs in the worker owning the user's partition, between two of its batches.
//! - **Items** are touched from every partition, and no lock is held across a batch: a batch
//!   writes what it *added* to each item ([`ItemDelta`]: the vector's change, popularity
//!   gained, events counted, mass), and deltas commute (`marquee_vector_store::delta`). The
//!   stored item is its base plus every committed delta, the item in memory the same sum in
//!   the order the workers published them: no update is lost whatever the interleaving, and
//!   each commit holds the offsets of the events whose deltas it carries, so a crash replays
//!   exactly the uncommitted batches of each worker. Two workers changing one vector at once
//!   both add their change to it (asynchronous SGD in the Hogwild! manner). Item numbers
//!   assigned by any worker are written by every commit until one of them succeeded; a delta
//!   carries its item's id too, so a delta committed first is never orphaned.
//! - **What differs from one loop**: two partitions' events reach a shared item in the order
//!   the workers' timing gives, so item vectors (online SGD) and sums of floats can differ
//!   between runs, and between memory and disk, in the last bits. A full co-occurrence list
//!   (256 entries) that two workers add to at once may evict a different light pair in memory
//!   than on disk, so after a restart its lightest entries can differ; heavy pairs, counts,
//!   seen items and histories never do. [`Processor::step`] (replay, the evaluator,
//!   benchmarks) stays one deterministic loop over all partitions.
//! - The trending list is refreshed by whichever worker finds its partitions caught up after
//!   any worker applied a batch (and at most once a second while batches keep coming); worker 0
//!   reports index builds.
//!
//! ## Nodes
//!
//! Nodes on several machines can split the partitions ([`ProcessorConfig::partitions`], with
//! [`Processor::with_changes`]; `docs/SCALING.md`). A node applies the events of its own
//! partitions only, so a user's state lives on exactly one node. Items are everyone's: what a
//! node's batches do to items reaches the others through the **change log**
//! (`marquee_ingest::changes`), and a node needs nothing else from the others.
//!
//! - **Outbox.** A batch's item changes (its [`ItemDelta`]s and co-occurrence additions, by
//!   item id, with the offset ranges `(partition, from, to)` of the events they come from) are
//!   written as one [`ItemChanges`] record to the state's `outbox` **in the batch's own write**,
//!   beside the state and offsets. A shipper thread appends the outbox to the change log in
//!   sequence order and then removes what it appended: a crash can send a record twice, never
//!   lose one. An erasure ships its negative deltas the same way, with the erasure's hash,
//!   which joins every node's erasure list.
//! - **Item offsets.** Every node keeps, per partition, the offset up to which its item table
//!   holds the partition's item changes (`StateStore::item_offsets`): advanced with the
//!   committed offsets by a batch of its own, and by each change record it applies, in that
//!   record's write with the change log's offset. A record whose ranges end at or below them is
//!   known and skipped, so a record sent twice is applied once, and records apply in any
//!   partition order.
//! - **Consumer.** A thread follows the change log from its committed offset, applying the
//!   other nodes' records as a batch of its own would (merge operands, then the same deltas
//!   in memory, the index marked) and skipping the node's own. At start, it first reads the
//!   change log to its end, and the workers wait for that: a node given partitions it did not
//!   own before (a lost node's) learns how far their item changes reached the change log.
//! - **Taking over a partition.** A worker whose partition's item offset is beyond its
//!   committed offset applies the events in between to users only (the items have them), then
//!   goes on as the owner: a partition moved to a node with no state for it is rebuilt from the
//!   log without counting its events twice in the items. Its previous owner must have stopped
//!   first (`docs/OPERATIONS.md`).
//! - **What differs from one node**: item vectors and float sums, for the reasons of
//!   "Workers" above, and because a node's SGD steps read other nodes' changes as late as the
//!   change log delivers them; counts, seen items, histories and (non-full) co-occurrence lists
//!   are the same (`tests/cluster.rs`).

// Batch-local maps keyed by client-chosen ids (user ids, event ids): foldhash, seeded per
// process, instead of SipHash, which took 5.5% of a catch-up's profile.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use marquee_ingest::{AnyChangeLog, ChangeLog, EventLog, LogEntry};
use marquee_schemas::partition_for_user;
use marquee_vector_store::{
    HistoryEntry, ItemChanges, ItemDelta, ItemTable, Popularity, SeenEntry, StateStore, UserState,
    VectorIndex,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::error::Result;
use crate::model::{
    ItemVectors, ModelConfig, TargetItem, activity_damping, event_weight, learn_event,
    push_history, sequential_pairs,
};
use crate::telemetry::{KindCounts, Metrics};
use crate::trending::{REFRESH_INTERVAL, Trending};

/// How often a paused processor looks whether it was resumed.
const PAUSED_POLL: Duration = Duration::from_millis(100);

/// Settings of the consumer loop.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Most events read from one partition for one batch. A batch holds what the log has, so
    /// a caught-up processor applies small batches (freshness); a backlog (a restart, a
    /// rebuild, a burst) is worked off in large ones, where a user or an item touched many
    /// times is read and written once per batch (the catch-up figures by batch size are in
    /// `docs/PERFORMANCE.md`).
    pub max_batch_events: usize,
    /// Longest wait for new events before re-checking for shutdown.
    pub idle_wait: Duration,
    /// Key of the erasure list's hashes (HMAC-SHA-256 of erased user ids). A node reads it from
    /// `<data-dir>/erasure.key`; the all-zero default is for in-process runs that erase nothing.
    pub erasure_key: [u8; 32],
    /// Loops a node runs, each owning a group of partitions (see "Workers" above); at most the
    /// partition count. Default: the machine's cores.
    pub workers: usize,
    /// The partitions this node applies, when the partitions are split between nodes (see
    /// "Nodes" above); `None`: all of them.
    pub partitions: Option<Vec<u32>>,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            workers: std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            max_batch_events: 10_000,
            idle_wait: Duration::from_millis(200),
            erasure_key: [0; 32],
            partitions: None,
        }
    }
}

/// What the rest of the node can see of a running processor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProcessorHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    /// Committed (next-to-apply) offset per partition.
    committed: Vec<AtomicU64>,
    /// Per partition, whether this node applies it.
    owned: Vec<bool>,
    /// One bit per worker, set while its last attempt to apply a batch failed.
    failing: AtomicU64,
    /// Set by an operator: the loop applies nothing until it is cleared.
    paused: AtomicBool,
    /// Erasures waiting for the loop, which runs them between batches.
    erasures: parking_lot::Mutex<Vec<ErasureRequest>>,
    /// The erasure list (keyed hash of a user id → erasure time), loaded from the state; the
    /// loop adds to it, ingest reads it.
    erased: parking_lot::RwLock<HashMap<[u8; 32], i64>>,
    /// The key of the list's hashes.
    erasure_key: [u8; 32],
    /// Wakes the loop for an erasure.
    wake: tokio::sync::Notify,
}

/// A user erasure handed to the processor loop.
struct ErasureRequest {
    user_id: String,
    reply: tokio::sync::oneshot::Sender<Result<Erasure>>,
}

impl std::fmt::Debug for ErasureRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureRequest").finish_non_exhaustive()
    }
}

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Erasure {
    /// Events of the user found in the log and erased from it (or, on a log that cannot erase,
    /// left to the erasure list).
    pub log_events: usize,
    /// Of those, events the model had applied, whose contributions were taken back.
    pub applied_events: usize,
    /// Whether the user had state (counts, seen items, history).
    pub had_state: bool,
    /// Items whose popularity, counts and co-occurrence lists changed.
    pub items_adjusted: usize,
    /// Whether the log itself erased the events (false: the backend keeps history; replay and
    /// the processor skip them through the erasure list).
    pub log_erased: bool,
    /// Time of the erasure, ms since the Unix epoch: events of this user appended before it are
    /// never applied again.
    pub erased_ms: i64,
}

impl ProcessorHandle {
    fn new(
        offsets: &[u64],
        owned: &[u32],
        erased: HashMap<[u8; 32], i64>,
        erasure_key: [u8; 32],
    ) -> ProcessorHandle {
        ProcessorHandle {
            inner: Arc::new(HandleInner {
                committed: offsets
                    .iter()
                    .map(|&offset| AtomicU64::new(offset))
                    .collect(),
                owned: (0..offsets.len() as u32)
                    .map(|partition| owned.contains(&partition))
                    .collect(),
                failing: AtomicU64::new(0),
                paused: AtomicBool::new(false),
                erasures: parking_lot::Mutex::new(Vec::new()),
                erased: parking_lot::RwLock::new(erased),
                erasure_key,
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The committed offsets, per partition.
    pub fn committed_offsets(&self) -> Vec<u64> {
        self.inner
            .committed
            .iter()
            .map(|offset| offset.load(Ordering::Acquire))
            .collect()
    }

    /// Whether this node applies `partition` (every partition unless the node was given some).
    pub fn owns(&self, partition: u32) -> bool {
        self.inner
            .owned
            .get(partition as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The committed offsets for measuring lag against `ends`: a partition of another node
    /// counts as caught up (its owner reports its lag).
    pub fn lag_offsets(&self, ends: &[u64]) -> Vec<u64> {
        self.committed_offsets()
            .into_iter()
            .zip(ends)
            .enumerate()
            .map(|(partition, (committed, &end))| {
                if self.owns(partition as u32) {
                    committed
                } else {
                    end
                }
            })
            .collect()
    }

    /// Whether the processor's last batch failed (it retries).
    pub fn is_failing(&self) -> bool {
        self.inner.failing.load(Ordering::Acquire) != 0
    }

    /// Pauses or resumes the processor. Paused, it finishes the batch under way and then
    /// applies nothing: ingest goes on, the lag grows, and queries answer from the state as it
    /// was. For maintenance, and to check that lag alerts fire.
    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::Release);
    }

    /// Whether an operator paused the processor.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Acquire)
    }

    /// Erases a user (see [`Processor::erase`]); the loop runs it between two batches, also
    /// while paused. Resolves when the erasure is durable.
    pub async fn erase_user(&self, user_id: &str) -> Result<Erasure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner.erasures.lock().push(ErasureRequest {
            user_id: user_id.to_owned(),
            reply,
        });
        // The worker owning the user's partition runs it: wake every worker waiting now, or
        // the next one to wait.
        self.inner.wake.notify_waiters();
        self.inner.wake.notify_one();
        answer.await.map_err(|_| crate::Error::Stopped)?
    }
}

impl ProcessorHandle {
    /// When `user_id` was erased, if it was: events of the user from before then are refused
    /// at ingest (a backfill of history) and never applied (a replay, a log that cannot erase).
    pub fn erased_at(&self, user_id: &str) -> Option<i64> {
        let erased = self.inner.erased.read();
        if erased.is_empty() {
            return None;
        }
        erased
            .get(&erasure_hash(&self.inner.erasure_key, user_id))
            .copied()
    }
}

/// The keyed hash of a user id in the erasure list.
pub fn erasure_hash(key: &[u8; 32], user_id: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(user_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Working copy of one item while a batch is applied: its vector as read and as changed, and
/// what the batch added to the rest. The batch writes the difference (an [`ItemDelta`]).
struct ItemWork {
    before: Vec<f32>,
    vector: Vec<f32>,
    /// Popularity gained in this batch.
    popularity: Popularity,
    event_count: u64,
    mass: f32,
    /// Whether the batch changed the item (negative samples are read, not changed).
    changed: bool,
}

impl ItemWork {
    /// The item as the table holds it now; `None` for a vacant number.
    fn load(items: &ItemTable, number: u32) -> Option<ItemWork> {
        let table = items.read();
        table.id(number)?;
        let vector = table.vector(number).to_vec();
        Some(ItemWork {
            before: vector.clone(),
            vector,
            popularity: Popularity::default(),
            event_count: 0,
            mass: 0.0,
            changed: false,
        })
    }

    /// The batch's working copy of `number`, copied from the table on first use; `None` for a
    /// vacant number.
    fn get<'w>(
        work: &'w mut NumberMap<ItemWork>,
        items: &ItemTable,
        number: u32,
    ) -> Option<&'w mut ItemWork> {
        match work.entry(number) {
            std::collections::hash_map::Entry::Occupied(slot) => Some(slot.into_mut()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                Some(slot.insert(ItemWork::load(items, number)?))
            }
        }
    }

    /// What the batch added to the item.
    fn delta(&self, item_id: &str, half_life_ms: f64) -> ItemDelta {
        ItemDelta {
            item_id: item_id.to_owned(),
            vector: self
                .vector
                .iter()
                .zip(&self.before)
                .map(|(after, before)| after - before)
                .collect(),
            popularity: self.popularity.score,
            popularity_at: self.popularity.at,
            half_life_ms,
            event_count: self.event_count as i64,
            mass: self.mass,
        }
    }
}

/// The batch's working copies as the per-event update reads and moves them: copied from the
/// table on first use, marked changed when a positive step moves them. A negative sample is
/// only read: from its working copy when the batch has one, else from the table into `scratch`
/// (no copy kept; within a batch, only the batch itself changes the items it has not copied,
/// except for other workers' publications, which it may then see a step earlier).
struct BatchItems<'a> {
    work: &'a mut NumberMap<ItemWork>,
    items: &'a ItemTable,
    scratch: &'a mut Vec<f32>,
}

impl ItemVectors for BatchItems<'_> {
    fn context(&mut self, number: u32) -> Option<&mut [f32]> {
        let context = ItemWork::get(self.work, self.items, number)?;
        context.changed = true;
        Some(&mut context.vector)
    }

    fn negative(&mut self, number: u32) -> Option<&[f32]> {
        if let Some(negative) = self.work.get(&number) {
            return Some(&negative.vector);
        }
        let table = self.items.read();
        table.id(number)?;
        self.scratch.clear();
        self.scratch.extend_from_slice(table.vector(number));
        Some(self.scratch.as_slice())
    }
}

/// What an erased user's applied events added to one item.
#[derive(Default)]
struct ItemRemoval {
    /// Stream times of the popularity additions (each of weight 1).
    popularity_at: Vec<i64>,
    event_count: u64,
    mass: f32,
}

/// A hasher for item numbers: one multiplication (Fibonacci hashing) instead of SipHash. Item
/// numbers are not attacker-chosen keys, and these maps are on the per-event path.
#[derive(Default, Clone, Copy)]
struct NumberHasher(u64);

impl std::hash::Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, number: u32) {
        self.0 = u64::from(number).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type NumberMap<V> = std::collections::HashMap<u32, V, std::hash::BuildHasherDefault<NumberHasher>>;

/// The co-occurrence additions of a batch, per item, in the order they were made. Nothing reads
/// a list while a batch is applied, so no working copy is needed: the additions are committed
/// as merge operands and then applied, in the same order, to the lists in memory — the same
/// operation RocksDB's merge operator performs on disk, so both end equal.
#[derive(Default)]
struct PairWork {
    additions: NumberMap<Vec<(u32, f32)>>,
}

/// Additions room reserved per list on its first addition in a batch: a list takes dozens in a
/// large batch, and growing from empty reallocated it six times (7% of a catch-up's profile).
const PAIRS_RESERVED: usize = 32;

/// Lists updated per write-lock hold when a batch's pairs are published: queries wait at most
/// for this many lists, not for a whole batch.
const PUBLISH_LISTS_PER_LOCK: usize = 256;

impl PairWork {
    fn add(&mut self, from: u32, to: u32, weight: f32) {
        if weight <= 0.0 {
            return;
        }
        self.additions
            .entry(from)
            .or_insert_with(|| Vec::with_capacity(PAIRS_RESERVED))
            .push((to, weight));
    }
}

/// The stream processor over a log `L`.
/// What the workers of one processor share (see "Workers" in the module documentation).
#[derive(Debug, Default)]
struct Shared {
    /// Item numbers assigned that no commit has written yet, by any worker: every commit writes
    /// them all, and they leave the list once a commit holding them succeeded.
    unpersisted_item_ids: parking_lot::Mutex<std::collections::BTreeMap<u32, String>>,
    /// The stream's clock (latest event timestamp applied) across workers.
    clock: AtomicI64,
    /// Per partition, the offset up to which the item table holds the events' item changes
    /// ([`StateStore::item_offsets`]).
    item_offsets: Vec<AtomicU64>,
    /// The next outbox sequence (nodes that ship item changes).
    outbox_sequence: AtomicU64,
    /// Wakes the shipper after a commit put records in the outbox.
    outbox_ready: tokio::sync::Notify,
    /// Set once the change-log consumer read the change log to its end as of the start (always
    /// set without a change log): until then, workers apply nothing (see "Nodes").
    changes_drained: AtomicBool,
    /// Set when a worker applied a batch since the trending list was last refreshed: the
    /// worker that next finds its partitions caught up refreshes it.
    trending_stale: AtomicBool,
    /// When the trending list was last refreshed (at most once per `REFRESH_INTERVAL` while
    /// batches keep coming).
    last_refresh: parking_lot::Mutex<Option<Instant>>,
}

pub struct Processor<L: EventLog> {
    log: L,
    store: StateStore,
    items: ItemTable,
    index: VectorIndex,
    trending: Trending,
    model: ModelConfig,
    metrics: Metrics,
    config: ProcessorConfig,
    offsets: Vec<u64>,
    /// The stream's clock: the latest event timestamp applied.
    clock: i64,
    handle: ProcessorHandle,
    rebuilds_reported: u64,
    /// The partitions this worker reads and commits: all of them for a processor that runs
    /// alone (`step`, `spawn`), one group each after [`Processor::spawn_workers`].
    owned: Vec<u32>,
    /// Worker 0 also refreshes the trending list and reports index builds.
    worker: usize,
    shared: Arc<Shared>,
    /// The change log, when the partitions are split between nodes (see "Nodes").
    changes: Option<AnyChangeLog>,
    /// The next change-log offset to apply (the change-log consumer's).
    change_offset: u64,
    /// Every partition this node applies (all workers together).
    node_partitions: Vec<u32>,
}

impl<L: EventLog> Processor<L> {
    /// Prepares a processor resuming from the offsets committed in `store`.
    #[expect(
        clippy::too_many_arguments,
        reason = "wiring of the node's shared parts"
    )]
    pub fn new(
        log: L,
        store: StateStore,
        items: ItemTable,
        index: VectorIndex,
        trending: Trending,
        model: ModelConfig,
        metrics: Metrics,
        config: ProcessorConfig,
    ) -> Result<Processor<L>> {
        let offsets = store.offsets(log.partition_count())?;
        let offsets_len = log.partition_count();
        let node_partitions = match &config.partitions {
            None => (0..offsets_len).collect(),
            Some(partitions) => {
                let mut partitions = partitions.clone();
                partitions.sort_unstable();
                partitions.dedup();
                if partitions.is_empty() {
                    return Err(crate::Error::Config(
                        "cluster.partitions: a node must apply at least one partition".to_owned(),
                    ));
                }
                if let Some(beyond) = partitions
                    .iter()
                    .find(|&&partition| partition >= offsets_len)
                {
                    return Err(crate::Error::Config(format!(
                        "cluster.partitions: partition {beyond} does not exist (the log has \
                         {offsets_len} partitions, numbered from 0)"
                    )));
                }
                partitions
            }
        };
        let item_offsets = store.item_offsets(offsets_len)?;
        let clock = {
            let table = items.read();
            table
                .numbers()
                .map(|number| table.popularity(number).at)
                .max()
                .unwrap_or(0)
        };
        trending.refresh(&items, clock, model.popularity_half_life_ms());
        info!(?offsets, "processor resumes");
        let erased = store.load_erasures()?.into_iter().collect();
        let handle = ProcessorHandle::new(&offsets, &node_partitions, erased, config.erasure_key);
        Ok(Processor {
            log,
            store,
            items,
            index,
            trending,
            model,
            metrics,
            config,
            offsets,
            clock,
            handle,
            rebuilds_reported: 0,
            owned: node_partitions.clone(),
            worker: 0,
            shared: Arc::new(Shared {
                clock: AtomicI64::new(clock),
                item_offsets: item_offsets.into_iter().map(AtomicU64::new).collect(),
                changes_drained: AtomicBool::new(true),
                ..Shared::default()
            }),
            changes: None,
            change_offset: 0,
            node_partitions,
        })
    }

    /// Ships this node's item changes to `changes` and applies the other nodes' from it (see
    /// "Nodes"): for a node that applies only some partitions. The workers apply nothing until
    /// the change log was read to its end as of their start.
    pub fn with_changes(mut self, changes: AnyChangeLog) -> Result<Processor<L>> {
        self.change_offset = self.store.change_offset()?;
        self.shared
            .outbox_sequence
            .store(self.store.last_outbox_sequence()? + 1, Ordering::Release);
        self.shared.changes_drained.store(false, Ordering::Release);
        self.changes = Some(changes);
        Ok(self)
    }

    pub fn handle(&self) -> ProcessorHandle {
        self.handle.clone()
    }

    /// Runs the loop on a dedicated thread until `cancel` fires; the batch under way completes.
    pub fn spawn(mut self, cancel: CancellationToken) -> std::thread::JoinHandle<()> {
        let name = if self.owned == self.node_partitions {
            "processor".to_owned()
        } else {
            format!("processor-{}", self.worker)
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("building the processor runtime");
                runtime.block_on(self.run(cancel));
            })
            .expect("spawning the processor thread")
    }

    /// Runs `workers` loops (at most one per partition), each on a thread of its own, worker `w`
    /// owning the partitions `p` with `p % workers == w`; see "Workers" in the module
    /// documentation.
    pub fn spawn_workers(
        self,
        workers: usize,
        cancel: CancellationToken,
    ) -> Vec<std::thread::JoinHandle<()>>
    where
        L: Clone,
    {
        let partitions = self.node_partitions.len();
        let workers = workers.clamp(1, partitions.max(1));
        let mut handles = Vec::with_capacity(workers + 2);
        if self.changes.is_some() {
            handles.push(self.spawn_change_consumer(cancel.clone()));
            handles.push(self.spawn_shipper(cancel.clone()));
        }
        if workers == 1 {
            handles.push(self.spawn(cancel));
            return handles;
        }
        for worker in (0..workers).rev() {
            let owned: Vec<u32> = self
                .node_partitions
                .iter()
                .enumerate()
                .filter(|(index, _)| index % workers == worker)
                .map(|(_, &partition)| partition)
                .collect();
            let processor = self.clone_for(owned, worker);
            handles.push(processor.spawn(cancel.clone()));
        }
        handles
    }

    async fn run(&mut self, cancel: CancellationToken) {
        while !cancel.is_cancelled() {
            self.run_erasures();
            let paused = self.handle.is_paused();
            self.metrics.processor_paused.set(i64::from(paused));
            if paused || !self.shared.changes_drained.load(Ordering::Acquire) {
                self.report_index_builds();
                tokio::select! {
                    () = tokio::time::sleep(PAUSED_POLL) => {}
                    () = self.handle.inner.wake.notified() => {}
                    () = cancel.cancelled() => {}
                }
                continue;
            }
            match self.step() {
                Ok(0) => {
                    if self.shared.trending_stale.swap(false, Ordering::AcqRel) {
                        *self.shared.last_refresh.lock() = Some(Instant::now());
                        self.refresh_trending();
                    }
                    self.report_index_builds();
                    let watched = self.watched_offsets();
                    tokio::select! {
                        () = self.log.wait_for_append(&watched, self.config.idle_wait) => {}
                        () = self.handle.inner.wake.notified() => {}
                        () = cancel.cancelled() => {}
                    }
                }
                Ok(_) => {
                    self.shared.trending_stale.store(true, Ordering::Release);
                    let due = {
                        let mut last = self.shared.last_refresh.lock();
                        let due = last.is_none_or(|at| at.elapsed() >= REFRESH_INTERVAL);
                        if due {
                            *last = Some(Instant::now());
                        }
                        due
                    };
                    if due {
                        self.shared.trending_stale.store(false, Ordering::Release);
                        self.refresh_trending();
                    }
                    self.report_index_builds();
                }
                Err(failure) => {
                    self.handle
                        .inner
                        .failing
                        .fetch_or(1 << (self.worker % 64), Ordering::AcqRel);
                    self.metrics.processor_failing.set(1);
                    if let Some(db) = failure.corrupt_db() {
                        self.metrics.corrupt_records.with_label_values(&[db]).inc();
                    }
                    error!(error = %failure, "processor batch failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = cancel.cancelled() => {}
                    }
                }
            }
        }
        info!(offsets = ?self.offsets, "processor stopped");
    }

    /// The positions a caught-up worker waits beyond: its own partitions' offsets, and no
    /// position for the others (`u64::MAX`). This worker's copy of another worker's offset is
    /// never advanced, so waiting on it would return at once for ever: a caught-up node would
    /// spin both loops at full CPU, reading its empty partitions.
    fn watched_offsets(&self) -> Vec<u64> {
        let mut watched = vec![u64::MAX; self.offsets.len()];
        for &partition in &self.owned {
            watched[partition as usize] = self.offsets[partition as usize];
        }
        watched
    }

    /// Runs the erasures queued through [`ProcessorHandle::erase_user`].
    /// An erasure is run by the worker owning the user's partition, between two of its batches,
    /// so no batch of that worker holds the user's state meanwhile.
    fn run_erasures(&mut self) {
        let partitions = self.log.partition_count();
        let requests: Vec<ErasureRequest> = {
            let mut queue = self.handle.inner.erasures.lock();
            let (mine, others): (Vec<_>, Vec<_>) =
                queue.drain(..).partition(|request: &ErasureRequest| {
                    self.owned
                        .contains(&partition_for_user(&request.user_id, partitions))
                });
            *queue = others;
            mine
        };
        for request in requests {
            let outcome = self.erase(&request.user_id);
            match &outcome {
                Ok(erasure) => info!(
                    log_events = erasure.log_events,
                    applied_events = erasure.applied_events,
                    items_adjusted = erasure.items_adjusted,
                    "user erased"
                ),
                Err(failure) => error!(error = %failure, "user erasure failed"),
            }
            let _ = request.reply.send(outcome);
        }
    }

    /// Erases `user_id`: the user's state, seen items and applied event ids are deleted; what the
    /// user's applied events added to items (popularity, event counts, co-occurrence mass and
    /// pairs) is taken back, recomputed by replaying those events from the log with the same
    /// code that applied them; the user's hash joins the erasure list, so no event of theirs
    /// appended before now is applied again (a replay, a log that cannot erase); then the log
    /// erases the events. Learned item vectors keep the user's influence until the state is
    /// rebuilt from the log.
    ///
    /// Order makes a crash safe: the state changes and the erasure list commit in one synced
    /// batch first; a crash before the log erasure leaves events the list already blocks, and a
    /// repeated erasure (the user now has no state) erases them from the log without taking
    /// anything back twice.
    ///
    /// Cost: one scan of the user's partition of the log, plus a bounded amount of work per
    /// event of the user.
    pub fn erase(&mut self, user_id: &str) -> Result<Erasure> {
        let erased_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0);
        let hash = erasure_hash(&self.config.erasure_key, user_id);
        let previous = self.handle.inner.erased.read().get(&hash).copied();
        let entries = self.log.user_entries(user_id)?;
        let had_state = self.store.user(user_id)?.is_some();
        let model = self.model.clone();
        let half_life_ms = model.popularity_half_life_ms();

        // The contributions of the events the model applied: before the committed offset, not
        // blocked by an earlier erasure, each event id once.
        let mut applied_events = 0;
        let mut removals: NumberMap<ItemRemoval> = NumberMap::default();
        let mut pair_removals: NumberMap<Vec<(u32, f32)>> = NumberMap::default();
        if had_state {
            let table = self.items.read();
            let mut ids: HashSet<&str> = HashSet::new();
            let mut history: Vec<HistoryEntry> = Vec::new();
            let mut event_count = 0u64;
            for entry in &entries {
                let event = &entry.event;
                let applied = entry.offset < self.offsets[entry.partition as usize]
                    && previous.is_none_or(|at| entry.append_ms > at);
                if !applied || !ids.insert(&event.event_id) {
                    continue;
                }
                let Some(number) = table.number(&event.item_id) else {
                    continue;
                };
                applied_events += 1;
                let weight = event_weight(event, &model.weights);
                let removal = removals.entry(number).or_default();
                if weight > 0.0 {
                    removal.popularity_at.push(event.timestamp);
                    let damped = weight * activity_damping(event_count, model.activity_damping);
                    removal.mass += damped;
                    sequential_pairs(
                        &history,
                        number,
                        event.timestamp,
                        damped,
                        &model,
                        |from, to, pair_weight| {
                            if pair_weight > 0.0 {
                                pair_removals
                                    .entry(from)
                                    .or_default()
                                    .push((to, -pair_weight));
                            }
                        },
                    );
                }
                removal.event_count += 1;
                event_count += 1;
                push_history(
                    &mut history,
                    HistoryEntry {
                        item: number,
                        weight,
                        timestamp: event.timestamp,
                    },
                    model.history_len,
                );
            }
        }

        // One synced batch: the user's rows, the items' counts and pairs (as negative deltas,
        // which commute with the workers' batches), the erasure list.
        let mut batch = self.store.batch();
        batch.delete_user(user_id);
        let mut deltas: Vec<(u32, ItemDelta)> = Vec::with_capacity(removals.len());
        {
            let table = self.items.read();
            for (&number, removal) in &removals {
                let mut delta = ItemDelta::new(table.id(number).map_or("", |id| id), half_life_ms);
                let mut popularity = Popularity::default();
                for &at in &removal.popularity_at {
                    popularity.merge(Popularity { score: -1.0, at }, half_life_ms);
                }
                delta.popularity = popularity.score;
                delta.popularity_at = popularity.at;
                delta.event_count = -(removal.event_count as i64);
                delta.mass = -removal.mass;
                deltas.push((number, delta));
            }
        }
        deltas.sort_unstable_by_key(|(number, _)| *number);
        for (number, delta) in &deltas {
            batch.merge_item(*number, delta)?;
        }
        let mut pair_removals: Vec<(u32, Vec<(u32, f32)>)> = pair_removals.into_iter().collect();
        pair_removals.sort_unstable_by_key(|(number, _)| *number);
        for (number, removed) in &pair_removals {
            batch.add_neighbours(*number, removed);
        }
        batch.put_erasure(&hash, erased_ms);
        if self.changes.is_some() {
            let changes =
                self.item_changes(Vec::new(), &deltas, &pair_removals, Some((hash, erased_ms)));
            let sequence = self.shared.outbox_sequence.fetch_add(1, Ordering::AcqRel);
            batch.put_outbox(sequence, &changes)?;
        }
        self.store.commit_synced(batch)?;
        self.shared.outbox_ready.notify_one();
        self.handle.inner.erased.write().insert(hash, erased_ms);

        // Publish, as a batch would.
        self.publish_items(&deltas, &pair_removals);

        // The log, then the write-ahead logs that still hold the user's rows.
        let positions: Vec<(u32, u64)> = entries
            .iter()
            .map(|entry| (entry.partition, entry.offset))
            .collect();
        let log_erased = match self.log.erase(&positions) {
            Ok(()) => true,
            Err(marquee_ingest::Error::Unsupported(_)) => false,
            Err(failure) => return Err(failure.into()),
        };
        self.store.flush_all()?;
        self.store.compact_user_in_background(user_id);
        self.refresh_trending();
        Ok(Erasure {
            log_events: entries.len(),
            applied_events,
            had_state,
            items_adjusted: removals.len(),
            log_erased,
            erased_ms,
        })
    }

    /// Recomputes the trending list from the item table, on the stream clock. The run loop
    /// calls it at most once a second; the evaluator after each batch it applies.
    pub fn refresh_trending(&self) {
        self.trending.refresh(
            &self.items,
            self.shared.clock.load(Ordering::Acquire).max(self.clock),
            self.model.popularity_half_life_ms(),
        );
    }

    /// Counts the index builds completed since the last report (offsets, lag and the index's
    /// size are gauges of state, set from their sources when `/metrics` is scraped).
    fn report_index_builds(&mut self) {
        if self.worker != 0 {
            return;
        }
        let stats = self.index.stats();
        if stats.builds > self.rebuilds_reported {
            self.metrics
                .index_build_duration
                .observe(stats.last_build_seconds);
            self.metrics
                .index_rebuilds
                .inc_by(stats.builds - self.rebuilds_reported);
            self.rebuilds_reported = stats.builds;
        }
    }

    /// Reads and applies one batch; returns the number of log entries consumed.
    pub fn step(&mut self) -> Result<usize> {
        let mut entries = Vec::new();
        let mut next_offsets = self.offsets.clone();
        // Partitions whose item changes the item table holds beyond the committed offset (a
        // partition taken over from another node, see "Nodes"): those events are applied to
        // their users only, up to where the item changes end, before anything else.
        let known: Vec<(u32, u64)> = self
            .owned
            .iter()
            .filter_map(|&partition| {
                let known = self.shared.item_offsets[partition as usize].load(Ordering::Acquire);
                (self.offsets[partition as usize] < known).then_some((partition, known))
            })
            .collect();
        let items_known = !known.is_empty();
        let reads: Vec<(u32, usize)> = if items_known {
            known
                .iter()
                .map(|&(partition, known)| {
                    let left = known - self.offsets[partition as usize];
                    (partition, self.config.max_batch_events.min(left as usize))
                })
                .collect()
        } else {
            self.owned
                .iter()
                .map(|&partition| (partition, self.config.max_batch_events))
                .collect()
        };
        for (partition, max) in reads {
            let from = self.offsets[partition as usize];
            let read = self.log.read(partition, from, max)?;
            entries.extend(read.entries);
            next_offsets[partition as usize] = read.next_offset;
        }
        let consumed: u64 = next_offsets
            .iter()
            .zip(&self.offsets)
            .map(|(next, from)| next - from)
            .sum();
        if consumed == 0 {
            return Ok(0);
        }
        self.apply(entries, next_offsets, items_known)?;
        let failing = self
            .handle
            .inner
            .failing
            .fetch_and(!(1 << (self.worker % 64)), Ordering::AcqRel)
            & !(1 << (self.worker % 64));
        self.metrics.processor_failing.set(i64::from(failing != 0));
        Ok(consumed as usize)
    }

    /// Applies `entries` and commits `next_offsets` with them (past erased offsets too). With
    /// `items_known`, the item table holds the events' item changes already (see "Nodes"):
    /// only users change.
    fn apply(
        &mut self,
        entries: Vec<LogEntry>,
        next_offsets: Vec<u64>,
        items_known: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let model = self.model.clone();
        let half_life_ms = model.popularity_half_life_ms();

        // 1. Item numbers for items never seen before. They stay pending until a commit writes
        // them, so a batch that fails after numbering its items still persists them on retry.
        let numbers: Vec<u32> = {
            let mut table = self.items.write();
            entries
                .iter()
                .map(|entry| {
                    let (number, created) = table.assign(&entry.event.item_id);
                    if created {
                        self.shared
                            .unpersisted_item_ids
                            .lock()
                            .insert(number, entry.event.item_id.clone());
                    }
                    number
                })
                .collect()
        };

        // Events of erased users appended before their erasure are skipped (a replay, a log
        // that cannot erase); with an empty erasure list this costs nothing.
        let blocked: Vec<bool> = {
            let erased = self.handle.inner.erased.read();
            if erased.is_empty() {
                vec![false; entries.len()]
            } else {
                let mut erased_at: HashMap<&str, Option<i64>> = HashMap::new();
                entries
                    .iter()
                    .map(|entry| {
                        let user_id = entry.event.user_id.as_str();
                        let at = *erased_at.entry(user_id).or_insert_with(|| {
                            let hash = erasure_hash(&self.config.erasure_key, user_id);
                            erased.get(&hash).copied()
                        });
                        at.is_some_and(|at| entry.append_ms <= at)
                    })
                    .collect()
            }
        };

        // 2. Read what the batch needs from the store, in one MultiGet per column family:
        // whether each event was applied before, and the users' states.
        let applied_before = {
            let keys: Vec<(&str, &str)> = entries
                .iter()
                .map(|entry| (entry.event.user_id.as_str(), entry.event.event_id.as_str()))
                .collect();
            self.store.applied(&keys)?
        };
        let mut users: HashMap<String, UserState> = HashMap::new();
        {
            let mut unique: HashSet<&str> = HashSet::new();
            let ids: Vec<&str> = entries
                .iter()
                .zip(&applied_before)
                .zip(&blocked)
                .filter(|((entry, before), blocked)| {
                    !**before && !**blocked && unique.insert(&entry.event.user_id)
                })
                .map(|((entry, _), _)| entry.event.user_id.as_str())
                .collect();
            for (id, state) in ids.iter().zip(self.store.users(&ids)?) {
                users.insert((*id).to_owned(), state.unwrap_or_default());
            }
        }
        // 3. Apply to working copies. Items are read one at a time as the batch first needs them
        // (a short read lock each); what the batch changes is written as deltas, so no lock is
        // held from here to the publication (see "Workers").
        let shared = Arc::clone(&self.shared);
        let mut batch = self.store.batch();
        let mut seen: HashMap<(&str, u32), SeenEntry> = HashMap::new();
        let seen_outside_history = self.store.seen_outside_history();
        let mut work: NumberMap<ItemWork> = NumberMap::default();
        let mut pairs = PairWork::default();
        let mut scratch: Vec<f32> = Vec::with_capacity(model.dimension);
        let mut applied_now: HashSet<(&str, &str)> = HashSet::new();
        let mut applied = KindCounts::default();
        let mut duplicates = KindCounts::default();
        let mut clock = self.clock.max(shared.clock.load(Ordering::Acquire));
        let item_count = self.items.read().len();
        for (((entry, &number), &before), &blocked) in entries
            .iter()
            .zip(&numbers)
            .zip(&applied_before)
            .zip(&blocked)
        {
            let event = &entry.event;
            if blocked {
                // Appended before this user was erased: never applied again.
                continue;
            }
            if before || !applied_now.insert((&event.user_id, &event.event_id)) {
                duplicates.add(event.kind);
                continue;
            }

            let user = users
                .get_mut(&event.user_id)
                .expect("read for every event not applied before");
            let weight = event_weight(event, &model.weights);
            let mut target = match work.remove(&number) {
                Some(target) => target,
                None => ItemWork::load(&self.items, number).expect("a numbered item has an id"),
            };
            target.changed = true;
            if seen_outside_history {
                // The entries this event pushes out of the history window (one, once the window
                // is full) join the `seen` column family; the history holds the rest.
                let leaving = (user.history.len() + 1).saturating_sub(model.history_len);
                for past in &user.history[..leaving.min(user.history.len())] {
                    seen.entry((event.user_id.as_str(), past.item))
                        .or_default()
                        .record(past.weight, past.timestamp);
                }
            }
            learn_event(
                &model,
                half_life_ms,
                event,
                number,
                weight,
                user,
                TargetItem {
                    vector: &mut target.vector,
                    popularity: &mut target.popularity,
                    mass: &mut target.mass,
                    event_count: &mut target.event_count,
                },
                &mut BatchItems {
                    work: &mut work,
                    items: &self.items,
                    scratch: &mut scratch,
                },
                item_count,
                |from, to, pair_weight| pairs.add(from, to, pair_weight),
            );
            work.insert(number, target);

            if !seen_outside_history {
                // A state of the older layout: every interaction; the commit adds the batch's
                // to the stored entry.
                seen.entry((event.user_id.as_str(), number))
                    .or_default()
                    .record(weight, event.timestamp);
            }
            clock = clock.max(event.timestamp);
            applied.add(event.kind);
        }

        // 4. One atomic write: state and offsets together.
        // Written in key order: RocksDB's memtable inserts sorted keys much faster.
        let mut applied_keys: Vec<&(&str, &str)> = applied_now.iter().collect();
        applied_keys.sort_unstable();
        for (user_id, event_id) in applied_keys {
            batch.mark_applied(user_id, event_id);
        }
        let mut users: Vec<(String, UserState)> = users.into_iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (user_id, state) in &users {
            batch.put_user(user_id, state)?;
        }
        let mut seen: Vec<((&str, u32), SeenEntry)> = seen.into_iter().collect();
        seen.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((user_id, number), entry) in &seen {
            batch.add_seen(user_id, *number, entry)?;
        }
        let mut additions: Vec<(u32, Vec<(u32, f32)>)> = if items_known {
            Vec::new()
        } else {
            pairs.additions.into_iter().collect()
        };
        additions.sort_unstable_by_key(|(number, _)| *number);
        for (number, added) in &additions {
            batch.add_neighbours(*number, added);
        }
        let pending_ids = self.write_pending_ids(&mut batch);
        let mut deltas: Vec<(u32, ItemDelta)> = Vec::with_capacity(work.len());
        if !items_known {
            let table = self.items.read();
            for (&number, item_work) in &work {
                if !item_work.changed {
                    continue;
                }
                let id = table.id(number).map_or("", |id| id);
                deltas.push((number, item_work.delta(id, half_life_ms)));
            }
        }
        deltas.sort_unstable_by_key(|(number, _)| *number);
        for (number, delta) in &deltas {
            batch.merge_item(*number, delta)?;
        }
        // Only this worker's partitions: the others' offsets are theirs to commit.
        let mut ranges = Vec::new();
        for &partition in &self.owned {
            let (from, to) = (
                self.offsets[partition as usize],
                next_offsets[partition as usize],
            );
            batch.put_offset(partition, to);
            if !items_known && to > from {
                batch.put_item_offset(partition, to);
                ranges.push((partition, from, to));
            }
        }
        let shipped = self.changes.is_some() && !ranges.is_empty();
        if shipped {
            let changes = self.item_changes(ranges, &deltas, &additions, None);
            let sequence = self.shared.outbox_sequence.fetch_add(1, Ordering::AcqRel);
            batch.put_outbox(sequence, &changes)?;
        }
        self.store.commit(batch)?;
        if shipped {
            self.shared.outbox_ready.notify_one();
        }
        self.forget_written_ids(&pending_ids);

        // 5. Publish: the same deltas and pairs, added to the items in memory.
        self.publish_items(&deltas, &additions);
        self.offsets = next_offsets;
        self.clock = clock;
        shared.clock.fetch_max(clock, Ordering::AcqRel);
        for &partition in &self.owned {
            let offset = self.offsets[partition as usize];
            self.handle.inner.committed[partition as usize].store(offset, Ordering::Release);
            if !items_known {
                self.shared.item_offsets[partition as usize].fetch_max(offset, Ordering::AcqRel);
            }
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0);
        applied.publish(&self.metrics.events_applied);
        duplicates.publish(&self.metrics.events_duplicate);
        for entry in &entries {
            let seconds = (now_ms - entry.append_ms).max(0) as f64 / 1000.0;
            self.metrics.freshness.observe(seconds);
        }
        self.metrics
            .batch_duration
            .observe(started.elapsed().as_secs_f64());
        if started.elapsed() > Duration::from_secs(1) {
            warn!(events = entries.len(), "slow processor batch");
        }
        Ok(())
    }
}

/// Change-log records a consumer batch applies at most.
const CHANGES_PER_BATCH: usize = 256;

/// Outbox records one append ships at most.
const SHIPPED_PER_APPEND: usize = 256;

/// The item changes of nodes that split the partitions (see "Nodes" in the module docs).
impl<L: EventLog> Processor<L> {
    /// A batch's (or an erasure's) item changes as they travel: items by id, since item numbers
    /// are each node's own.
    fn item_changes(
        &self,
        ranges: Vec<(u32, u64, u64)>,
        deltas: &[(u32, ItemDelta)],
        additions: &[(u32, Vec<(u32, f32)>)],
        erasure: Option<([u8; 32], i64)>,
    ) -> ItemChanges {
        let table = self.items.read();
        let id = |number: u32| {
            table
                .id(number)
                .map_or_else(String::new, |id| id.to_string())
        };
        ItemChanges {
            ranges,
            items: deltas.iter().map(|(_, delta)| delta.clone()).collect(),
            pairs: additions
                .iter()
                .map(|(number, added)| {
                    (
                        id(*number),
                        added
                            .iter()
                            .map(|(neighbour, weight)| (id(*neighbour), *weight))
                            .collect(),
                    )
                })
                .collect(),
            erasure,
        }
    }

    /// Reads and applies one batch of the change log; returns the records read. A record is
    /// applied unless the item table holds its changes already: a partition's changes up to
    /// the record's end offset (its own node's records, one shipped twice), or, for an
    /// erasure, the same erasure. Applied records, their item offsets and the change-log
    /// offset commit in one write.
    pub fn apply_changes(&mut self) -> Result<usize> {
        let Some(changes) = self.changes.clone() else {
            return Ok(0);
        };
        let records = changes.read(self.change_offset, CHANGES_PER_BATCH)?;
        let Some(last) = records.last() else {
            return Ok(0);
        };
        let next_offset = last.offset + 1;
        let half_life_ms = self.model.popularity_half_life_ms();
        let drained = self.shared.changes_drained.load(Ordering::Acquire);
        let mut batch = self.store.batch();
        let mut item_offsets: Vec<u64> = self
            .shared
            .item_offsets
            .iter()
            .map(|offset| offset.load(Ordering::Acquire))
            .collect();
        let mut erasures: Vec<([u8; 32], i64)> = Vec::new();
        let mut deltas: Vec<(u32, ItemDelta)> = Vec::new();
        let mut additions: Vec<(u32, Vec<(u32, f32)>)> = Vec::new();
        let mut clock = i64::MIN;
        let (mut applied, mut own, mut known) = (0u64, 0u64, 0u64);
        for record in &records {
            let changes: ItemChanges =
                marquee_schemas::decode_record(&record.value).map_err(|source| {
                    marquee_ingest::Error::CorruptRecord {
                        partition: 0,
                        offset: record.offset,
                        source,
                    }
                })?;
            if let Some((hash, erased_ms)) = changes.erasure {
                let done = self
                    .handle
                    .inner
                    .erased
                    .read()
                    .get(&hash)
                    .is_some_and(|&at| at >= erased_ms)
                    || erasures.contains(&(hash, erased_ms));
                if done {
                    known += 1;
                    continue;
                }
                batch.put_erasure(&hash, erased_ms);
                erasures.push((hash, erased_ms));
            } else {
                // After the start, records of this node's partitions are its own: the item
                // table had their changes before they were shipped.
                if drained
                    && changes
                        .ranges
                        .iter()
                        .all(|(partition, _, _)| self.handle.owns(*partition))
                {
                    own += 1;
                    continue;
                }
                if changes.ranges.iter().all(|&(partition, _, to)| {
                    item_offsets
                        .get(partition as usize)
                        .is_none_or(|&known| to <= known)
                }) {
                    known += 1;
                    continue;
                }
                for &(partition, from, to) in &changes.ranges {
                    let Some(slot) = item_offsets.get_mut(partition as usize) else {
                        continue;
                    };
                    if from != *slot {
                        warn!(
                            partition,
                            from,
                            known = *slot,
                            "item changes do not start where this node's end"
                        );
                    }
                    *slot = (*slot).max(to);
                    batch.put_item_offset(partition, *slot);
                }
            }
            applied += 1;
            let numbers = self.number_items(
                changes
                    .items
                    .iter()
                    .map(|delta| delta.item_id.as_str())
                    .chain(changes.pairs.iter().flat_map(|(id, added)| {
                        std::iter::once(id.as_str()).chain(added.iter().map(|(id, _)| id.as_str()))
                    })),
            );
            let mut numbers = numbers.into_iter();
            for delta in changes.items {
                let number = numbers.next().expect("one number per id");
                if delta.popularity_at > clock {
                    clock = delta.popularity_at;
                }
                let delta = ItemDelta {
                    half_life_ms: if delta.half_life_ms > 0.0 {
                        delta.half_life_ms
                    } else {
                        half_life_ms
                    },
                    ..delta
                };
                batch.merge_item(number, &delta)?;
                deltas.push((number, delta));
            }
            for (_, added) in changes.pairs {
                let number = numbers.next().expect("one number per id");
                let added: Vec<(u32, f32)> = added
                    .into_iter()
                    .map(|(_, weight)| (numbers.next().expect("one number per id"), weight))
                    .collect();
                batch.add_neighbours(number, &added);
                additions.push((number, added));
            }
        }
        let pending_ids = self.write_pending_ids(&mut batch);
        batch.put_change_offset(next_offset);
        self.store.commit(batch)?;
        self.forget_written_ids(&pending_ids);

        // Publish, as a batch of this node's own would.
        self.publish_items(&deltas, &additions);
        if !erasures.is_empty() {
            let mut erased = self.handle.inner.erased.write();
            for (hash, at) in &erasures {
                let slot = erased.entry(*hash).or_insert(*at);
                *slot = (*slot).max(*at);
            }
        }
        for (partition, offset) in item_offsets.iter().enumerate() {
            self.shared.item_offsets[partition].fetch_max(*offset, Ordering::AcqRel);
        }
        if clock > i64::MIN {
            self.shared.clock.fetch_max(clock, Ordering::AcqRel);
        }
        if applied > 0 {
            self.shared.trending_stale.store(true, Ordering::Release);
        }
        self.change_offset = next_offset;
        for (outcome, count) in [("applied", applied), ("own", own), ("known", known)] {
            self.metrics
                .item_changes
                .with_label_values(&[outcome])
                .inc_by(count);
        }
        Ok(records.len())
    }

    /// Writes every item number not yet written, by any worker, into `batch`; returns them. A
    /// commit carrying a delta of a new item also carries its number, even while another
    /// worker's commit of it is under way (the write is idempotent).
    fn write_pending_ids(
        &self,
        batch: &mut marquee_vector_store::StateBatch,
    ) -> std::collections::BTreeMap<u32, String> {
        let pending_ids = self.shared.unpersisted_item_ids.lock().clone();
        for (number, item_id) in &pending_ids {
            batch.put_item_id(item_id, *number);
        }
        pending_ids
    }

    /// After a commit that held `written` ([`Processor::write_pending_ids`]): those numbers
    /// are on disk.
    fn forget_written_ids(&self, written: &std::collections::BTreeMap<u32, String>) {
        if !written.is_empty() {
            let mut pending = self.shared.unpersisted_item_ids.lock();
            for number in written.keys() {
                pending.remove(number);
            }
        }
    }

    /// Adds committed item deltas and co-occurrence additions to the items in memory and marks
    /// the items changed in the index. The pairs are added a bounded number of lists per lock
    /// hold (the commit is done; a query in between sees some lists updated and the rest a
    /// moment later).
    fn publish_items(&self, deltas: &[(u32, ItemDelta)], additions: &[(u32, Vec<(u32, f32)>)]) {
        {
            let mut table = self.items.write();
            for (number, delta) in deltas {
                table.add_delta(*number, delta);
            }
        }
        for chunk in additions.chunks(PUBLISH_LISTS_PER_LOCK) {
            let mut table = self.items.write();
            for (number, added) in chunk {
                table.neighbours_mut(*number).add_all(added);
            }
        }
        self.index
            .mark_changed(deltas.iter().map(|(number, _)| *number));
    }

    /// The item numbers of `ids`, assigning numbers to items never seen here; new ones wait in
    /// the shared list until a commit wrote them (as a batch's do).
    fn number_items<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<u32> {
        let mut table = self.items.write();
        ids.map(|id| {
            let (number, created) = table.assign(id);
            if created {
                self.shared
                    .unpersisted_item_ids
                    .lock()
                    .insert(number, id.to_owned());
            }
            number
        })
        .collect()
    }

    /// Runs the change-log consumer on a thread of its own: it reads the change log to its end
    /// as of the start (the workers wait for that), then follows it.
    fn spawn_change_consumer(&self, cancel: CancellationToken) -> std::thread::JoinHandle<()>
    where
        L: Clone,
    {
        let mut consumer = self.clone_for(self.node_partitions.clone(), usize::MAX);
        std::thread::Builder::new()
            .name("item-changes".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("building the change consumer's runtime");
                runtime.block_on(consumer.follow_changes(cancel));
            })
            .expect("spawning the change consumer's thread")
    }

    async fn follow_changes(&mut self, cancel: CancellationToken) {
        let Some(changes) = self.changes.clone() else {
            return;
        };
        let mut drain_to = None;
        while !cancel.is_cancelled() {
            if drain_to.is_none() {
                match changes.end_offset() {
                    Ok(end) => drain_to = Some(end),
                    Err(failure) => {
                        warn!(error = %failure, "cannot read the change log's end; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = cancel.cancelled() => {}
                        }
                        continue;
                    }
                }
            }
            match self.apply_changes() {
                Ok(read) => {
                    if let Ok(end) = changes.end_offset() {
                        self.metrics
                            .item_changes_lag
                            .set(end.saturating_sub(self.change_offset) as i64);
                    }
                    if drain_to.is_some_and(|end| self.change_offset >= end)
                        && !self.shared.changes_drained.swap(true, Ordering::AcqRel)
                    {
                        info!(
                            offset = self.change_offset,
                            "read the change log to its end; applying events"
                        );
                    }
                    if read == 0 {
                        tokio::select! {
                            () = changes.wait_for_append(self.change_offset, self.config.idle_wait) => {}
                            () = cancel.cancelled() => {}
                        }
                    }
                }
                Err(failure) => {
                    error!(error = %failure, "applying item changes failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = cancel.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Runs the shipper on a thread of its own: it appends the outbox to the change log, in
    /// sequence order, and removes what was appended. An append that fails is retried with
    /// backoff; records appended twice (a failure after the append) are recognised by readers.
    fn spawn_shipper(&self, cancel: CancellationToken) -> std::thread::JoinHandle<()> {
        let store = self.store.clone();
        let shared = Arc::clone(&self.shared);
        let metrics = self.metrics.clone();
        let changes = self.changes.clone();
        std::thread::Builder::new()
            .name("item-shipper".to_owned())
            .spawn(move || {
                let Some(changes) = changes else { return };
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("building the shipper's runtime");
                runtime.block_on(ship(store, shared, metrics, changes, cancel));
            })
            .expect("spawning the shipper's thread")
    }

    /// A copy of this processor sharing everything but its partitions and worker number.
    fn clone_for(&self, owned: Vec<u32>, worker: usize) -> Processor<L>
    where
        L: Clone,
    {
        Processor {
            log: self.log.clone(),
            store: self.store.clone(),
            items: self.items.clone(),
            index: self.index.clone(),
            trending: self.trending.clone(),
            model: self.model.clone(),
            metrics: self.metrics.clone(),
            config: self.config.clone(),
            offsets: self.offsets.clone(),
            clock: self.clock,
            handle: self.handle.clone(),
            rebuilds_reported: self.rebuilds_reported,
            owned,
            worker,
            shared: Arc::clone(&self.shared),
            changes: self.changes.clone(),
            change_offset: self.change_offset,
            node_partitions: self.node_partitions.clone(),
        }
    }
}

/// The shipper's loop (see [`Processor::spawn_shipper`]). At a stop, it ships what the outbox
/// holds for up to 5 s more; what is left is shipped at the next start.
async fn ship(
    store: StateStore,
    shared: Arc<Shared>,
    metrics: Metrics,
    changes: AnyChangeLog,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut stop_by: Option<Instant> = None;
    loop {
        if cancel.is_cancelled() && stop_by.is_none() {
            stop_by = Some(Instant::now() + Duration::from_secs(5));
        }
        if stop_by.is_some_and(|deadline| Instant::now() >= deadline) {
            return;
        }
        let records = match store.outbox(SHIPPED_PER_APPEND) {
            Ok(records) => records,
            Err(failure) => {
                error!(error = %failure, "cannot read the outbox; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if records.is_empty() {
            metrics.item_changes_outbox.set(0);
            if stop_by.is_some() {
                return;
            }
            tokio::select! {
                () = shared.outbox_ready.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cancel.cancelled() => {}
            }
            continue;
        }
        let count = records.len();
        let (sequences, values): (Vec<u64>, Vec<Vec<u8>>) = records.into_iter().unzip();
        match changes.append(values).await {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                if let Err(failure) = store.remove_shipped(&sequences) {
                    error!(error = %failure, "cannot remove shipped item changes; they will be sent again");
                }
                if count < SHIPPED_PER_APPEND {
                    metrics.item_changes_outbox.set(0);
                }
            }
            Err(failure) => {
                metrics.item_changes_ship_failures.inc();
                metrics.item_changes_outbox.set(count as i64);
                warn!(error = %failure, "cannot ship item changes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
