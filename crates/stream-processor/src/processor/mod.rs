//! The consumer loop.
//!
//! The code follows the seams below: this module holds the loop (`Processor::run`,
//! [`Processor::step`]) and its settings; `batch` applies and commits one batch; `erasure`
//! takes a user's contributions back; `changes` ships and applies item changes between nodes
//! (its consumer), `shipper` the outbox's sender; `handle` is what the rest of the node sees
//! ([`ProcessorHandle`]).
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
//!   both add their change to it (fold-in deltas are sums, [`crate::factors`]). Item numbers
//!   assigned by any worker are written by every commit until one of them succeeded; a delta
//!   carries its item's id too, so a delta committed first is never orphaned.
//! - **What differs from one loop**: two partitions' events reach a shared item in the order
//!   the workers' timing gives, so item vectors (fold-ins against the vectors each batch read) and sums of floats can differ
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
//!   "Workers" above, and because a node folds in and solves on other nodes' changes as late as the
//!   change log delivers them; counts, seen items, histories and (non-full) co-occurrence lists
//!   are the same (`tests/cluster.rs`).
//!
//! [`ItemDelta`]: marquee_vector_store::ItemDelta
//! [`ItemChanges`]: marquee_vector_store::ItemChanges

mod batch;
mod changes;
mod erasure;
mod handle;
mod journal;
mod shipper;
mod solve;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use marquee_ingest::{AnyChangeLog, EventLog};
use marquee_vector_store::{ItemTable, StateStore, VectorIndex};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use handle::{Erasure, ProcessorHandle, erasure_hash, erasure_subject};
pub use journal::JournalApplied;

use crate::error::Result;
use crate::experiments::Experiments;
use crate::model::ModelConfig;
use crate::telemetry::Metrics;
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
    /// Key of recommendation ids and of the experiments' user records
    /// (`<data-dir>/recommendation.key`; all-zero for in-process runs).
    pub recommendation_key: [u8; 32],
    /// Loops a node runs, each owning a group of partitions (see "Workers" above); at most the
    /// partition count. Default: the machine's cores.
    pub workers: usize,
    /// The partitions this node applies, when the partitions are split between nodes (see
    /// "Nodes" above); `None`: all of them.
    pub partitions: Option<Vec<u32>>,
    /// The clock the lists' rules read (licence windows, campaigns): the system's, but in
    /// tests.
    pub clock: marquee_schemas::Clock,
    /// Lists only catalogued items ([`Table::set_catalogue_only`]): a node's default
    /// (`catalogue_only` in its configuration); off by default here, for in-process runs (the
    /// evaluator) that learn from and list every item their events name.
    ///
    /// [`Table::set_catalogue_only`]: marquee_vector_store::Table::set_catalogue_only
    pub catalogue_only: bool,
    /// Where each erasure is journalled before it runs (`<data-dir>/erasures.jsonl`, see
    /// [`crate::journal`]); `None` for in-process runs that keep no data directory.
    pub erasure_journal: Option<crate::journal::Journal>,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            workers: std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            max_batch_events: 10_000,
            idle_wait: Duration::from_millis(200),
            erasure_key: [0; 32],
            recommendation_key: [0; 32],
            partitions: None,
            clock: marquee_schemas::Clock::system(),
            catalogue_only: false,
            erasure_journal: None,
        }
    }
}

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
    /// Log entries applied since the item vectors were last solved (`solve`).
    applied_since_solve: AtomicU64,
    /// Set while a background solve runs.
    solving: AtomicBool,
    /// A background solve's result, for worker 0 to install.
    solved: parking_lot::Mutex<Option<solve::Solved>>,
    /// No background solve starts before this: a rest after each (`solve::SOLVE_REST`).
    next_solve: parking_lot::Mutex<Option<Instant>>,
    /// While a background solve runs: the pairs published since its snapshot, folded into its
    /// vectors when they are installed.
    recorded_pairs: parking_lot::Mutex<Option<crate::factors::Additions>>,
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
    /// Whether the item vectors are solved in the background (spawned workers) rather than in
    /// [`Processor::step`] (a processor driven from its caller's thread).
    background_solves: bool,
    /// The experiments whose impressions and outcomes the batches attribute.
    experiments: Experiments,
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
        experiments: Experiments,
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
            background_solves: false,
            experiments,
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
        self.background_solves = true;
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
        mut self,
        workers: usize,
        cancel: CancellationToken,
    ) -> Vec<std::thread::JoinHandle<()>>
    where
        L: Clone,
    {
        self.background_solves = true;
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
            self.tend_factors();
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
                    if self.shared.trending_stale.swap(false, Ordering::AcqRel)
                        || (self.worker == 0 && self.trending.is_behind(&self.items))
                    {
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
        // The index's own totals, raised by what they lack (this thread alone counts them).
        let raise = |counter: &prometheus::IntCounter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        raise(&self.metrics.index_urgent_rebuilds, stats.urgent_builds);
        raise(
            &self.metrics.index_abandoned_rebuilds,
            stats.abandoned_builds,
        );
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
        self.shared
            .applied_since_solve
            .fetch_add(consumed, Ordering::AcqRel);
        if !self.background_solves && self.factors_due() {
            self.solve_factors()?;
        }
        let failing = self
            .handle
            .inner
            .failing
            .fetch_and(!(1 << (self.worker % 64)), Ordering::AcqRel)
            & !(1 << (self.worker % 64));
        self.metrics.processor_failing.set(i64::from(failing != 0));
        Ok(consumed as usize)
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
            background_solves: self.background_solves,
            experiments: self.experiments.clone(),
        }
    }
}
