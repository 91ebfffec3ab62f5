//! One batch: item numbers, the state it reads, the events applied to working copies, the one
//! write of state and offsets, then the publication to the item table and the index (steps 1–5
//! of the module docs of [`super`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// Batch-local maps keyed by client-chosen ids (user ids, event ids): foldhash, seeded per
// process, instead of SipHash, which took 5.5% of a catch-up's profile.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use marquee_ingest::{EventLog, LogEntry};
use marquee_schemas::EventKind;
use marquee_vector_store::{ItemDelta, Popularity, SeenEntry, UserState};
use tracing::warn;

use super::Processor;
use super::handle::erasure_hash;
use crate::error::Result;
use crate::experiments::attribution::Attribution;
use crate::factors::fold_in;
use crate::model::{TargetItem, event_weight, learn_event};
use crate::telemetry::KindCounts;

/// What a batch added to one item besides its vectors (which its co-occurrence additions
/// fold into, [`crate::factors::fold_in`]); the batch writes it as an [`ItemDelta`].
#[derive(Default)]
struct ItemWork {
    /// Popularity gained in this batch.
    popularity: Popularity,
    event_count: u64,
    mass: f32,
}

impl ItemWork {
    /// What the batch added to the item, with the vector changes `vector` (source then
    /// target; empty for none).
    fn delta(&self, item_id: &str, vector: Vec<f32>, half_life_ms: f64) -> ItemDelta {
        ItemDelta {
            item_id: item_id.to_owned(),
            vector,
            popularity: self.popularity.score,
            popularity_at: self.popularity.at,
            half_life_ms,
            event_count: self.event_count as i64,
            mass: self.mass,
        }
    }
}

/// The item number of an event about no item (an impression): never looked up.
const NO_ITEM: u32 = u32::MAX;

/// A hasher for item numbers: one multiplication (Fibonacci hashing) instead of SipHash. Item
/// numbers are not attacker-chosen keys, and these maps are on the per-event path.
#[derive(Default, Clone, Copy)]
pub(super) struct NumberHasher(u64);

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

pub(super) type NumberMap<V> =
    std::collections::HashMap<u32, V, std::hash::BuildHasherDefault<NumberHasher>>;

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

/// What a batch's events did to working copies (step 3), waiting for the commit.
struct Learned<'e> {
    users: HashMap<String, UserState>,
    seen: HashMap<(&'e str, u32), SeenEntry>,
    work: NumberMap<ItemWork>,
    pairs: PairWork,
    applied_now: HashSet<(&'e str, &'e str)>,
    applied: KindCounts,
    duplicates: KindCounts,
    clock: i64,
}

/// A batch's item changes, by item number: what its commit writes and then publishes.
#[derive(Default)]
struct BatchItemChanges {
    deltas: Vec<(u32, ItemDelta)>,
    additions: Vec<(u32, Vec<(u32, f32)>)>,
    /// The events these are the item changes of: `(partition, from, to)`.
    ranges: Vec<(u32, u64, u64)>,
}

impl<L: EventLog> Processor<L> {
    /// Applies `entries` and commits `next_offsets` with them (past erased offsets too). With
    /// `items_known`, the item table holds the events' item changes already (a partition taken
    /// over, see "Nodes"): only users change, and the batch has no item changes to write.
    pub(super) fn apply(
        &mut self,
        entries: Vec<LogEntry>,
        next_offsets: Vec<u64>,
        items_known: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let numbers = self.number_batch_items(&entries);
        let blocked = self.blocked_by_erasure(&entries);
        let applied_before = {
            let keys: Vec<(&str, &str)> = entries
                .iter()
                .map(|entry| (entry.event.user_id.as_str(), entry.event.event_id.as_str()))
                .collect();
            self.store.applied(&keys)?
        };
        let users = self.read_users(&entries, &applied_before, &blocked)?;
        let definitions = self.experiments.definitions();
        let mut attribution = Attribution::new(&definitions, self.experiments.key());
        let mut learned = self.learn(
            &entries,
            &numbers,
            &applied_before,
            &blocked,
            users,
            &mut attribution,
        )?;
        let changes = if items_known {
            BatchItemChanges::default()
        } else {
            self.batch_item_changes(&mut learned, &next_offsets)
        };
        self.commit_batch(&learned, &changes, &next_offsets, &attribution)?;
        attribution.publish(&self.metrics);

        // 5. Publish: the same deltas and pairs, added to the items in memory.
        self.publish_items(&changes.deltas, &changes.additions);
        self.offsets = next_offsets;
        self.clock = learned.clock;
        self.shared.clock.fetch_max(learned.clock, Ordering::AcqRel);
        for &partition in &self.owned {
            let offset = self.offsets[partition as usize];
            self.handle.inner.committed[partition as usize].store(offset, Ordering::Release);
        }
        for &(partition, _, to) in &changes.ranges {
            self.shared.item_offsets[partition as usize].fetch_max(to, Ordering::AcqRel);
        }
        self.record_batch(&entries, &learned, started);
        Ok(())
    }

    /// Step 1: item numbers for items never seen before. They stay pending until a commit
    /// writes them, so a batch that fails after numbering its items still persists them on
    /// retry. An impression names a list, not an item: it gets no number ([`NO_ITEM`]).
    fn number_batch_items(&self, entries: &[LogEntry]) -> Vec<u32> {
        let mut table = self.items.write();
        entries
            .iter()
            .map(|entry| {
                if entry.event.kind == EventKind::Impression {
                    return NO_ITEM;
                }
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
    }

    /// Per entry, whether its user was erased after it was appended: such events are skipped (a
    /// replay, a log that cannot erase); with an empty erasure list this costs nothing.
    fn blocked_by_erasure(&self, entries: &[LogEntry]) -> Vec<bool> {
        let erased = self.handle.inner.erased.read();
        if erased.is_empty() {
            return vec![false; entries.len()];
        }
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

    /// Step 2: the states of the users of the events to apply, in one `MultiGet` (a user
    /// without a state starts from the default).
    fn read_users(
        &self,
        entries: &[LogEntry],
        applied_before: &[bool],
        blocked: &[bool],
    ) -> Result<HashMap<String, UserState>> {
        let mut unique: HashSet<&str> = HashSet::new();
        let ids: Vec<&str> = entries
            .iter()
            .zip(applied_before)
            .zip(blocked)
            .filter(|((entry, before), blocked)| {
                !**before
                    && !**blocked
                    && entry.event.kind != EventKind::Impression
                    && unique.insert(&entry.event.user_id)
            })
            .map(|((entry, _), _)| entry.event.user_id.as_str())
            .collect();
        let mut users: HashMap<String, UserState> = HashMap::new();
        for (id, state) in ids.iter().zip(self.store.users(&ids)?) {
            users.insert((*id).to_owned(), state.unwrap_or_default());
        }
        Ok(users)
    }

    /// Step 3: applies each event to working copies. Items are read one at a time as the batch
    /// first needs them (a short read lock each); what the batch changes is written as deltas,
    /// so no lock is held from here to the publication (see "Workers").
    fn learn<'e>(
        &self,
        entries: &'e [LogEntry],
        numbers: &[u32],
        applied_before: &[bool],
        blocked: &[bool],
        users: HashMap<String, UserState>,
        attribution: &mut Attribution<'_>,
    ) -> Result<Learned<'e>> {
        let model = &self.model;
        let half_life_ms = model.popularity_half_life_ms();
        let seen_outside_history = self.store.seen_outside_history();
        let mut learned = Learned {
            users,
            seen: HashMap::new(),
            work: NumberMap::default(),
            pairs: PairWork::default(),
            applied_now: HashSet::new(),
            applied: KindCounts::default(),
            duplicates: KindCounts::default(),
            clock: self.clock.max(self.shared.clock.load(Ordering::Acquire)),
        };
        for (((entry, &number), &before), &blocked) in
            entries.iter().zip(numbers).zip(applied_before).zip(blocked)
        {
            let event = &entry.event;
            if blocked {
                // Appended before this user was erased: never applied again.
                continue;
            }
            if before
                || !learned
                    .applied_now
                    .insert((&event.user_id, &event.event_id))
            {
                learned.duplicates.add(event.kind);
                continue;
            }
            let weight = event_weight(event, &model.weights);
            if Attribution::concerns(event) {
                attribution.apply(&self.store, event, weight)?;
            }
            if event.kind == EventKind::Impression {
                // A list shown teaches the model nothing: only its attribution (above).
                learned.applied.add(event.kind);
                continue;
            }
            let user = learned
                .users
                .get_mut(&event.user_id)
                .expect("read for every event not applied before");
            let target = learned.work.entry(number).or_default();
            if seen_outside_history {
                // The entries this event pushes out of the history window (one, once the window
                // is full) join the `seen` column family; the history holds the rest.
                let leaving = (user.history.len() + 1).saturating_sub(model.history_len);
                for past in &user.history[..leaving.min(user.history.len())] {
                    learned
                        .seen
                        .entry((event.user_id.as_str(), past.item))
                        .or_default()
                        .record(past.weight, past.timestamp);
                }
            }
            let pairs = &mut learned.pairs;
            learn_event(
                model,
                half_life_ms,
                event,
                weight,
                user,
                TargetItem {
                    number,
                    popularity: &mut target.popularity,
                    mass: &mut target.mass,
                    event_count: &mut target.event_count,
                },
                |from, to, pair_weight| pairs.add(from, to, pair_weight),
            );
            if !seen_outside_history {
                // A state of the older layout: every interaction; the commit adds the batch's
                // to the stored entry.
                learned
                    .seen
                    .entry((event.user_id.as_str(), number))
                    .or_default()
                    .record(weight, event.timestamp);
            }
            learned.clock = learned.clock.max(event.timestamp);
            learned.applied.add(event.kind);
        }
        Ok(learned)
    }

    /// The item changes of a batch whose events are new to the item table: the deltas of the
    /// items it changed and its co-occurrence additions, sorted by item number, and the offset
    /// ranges of this worker's partitions that it consumed.
    fn batch_item_changes(
        &self,
        learned: &mut Learned<'_>,
        next_offsets: &[u64],
    ) -> BatchItemChanges {
        let half_life_ms = self.model.popularity_half_life_ms();
        let mut additions: Vec<(u32, Vec<(u32, f32)>)> =
            std::mem::take(&mut learned.pairs.additions)
                .into_iter()
                .collect();
        additions.sort_unstable_by_key(|(number, _)| *number);
        let mut deltas: Vec<(u32, ItemDelta)> = Vec::with_capacity(learned.work.len());
        {
            let table = self.items.read();
            let mut vectors = std::collections::HashMap::new();
            fold_in(&*table, &additions, &mut vectors);
            for (&number, item_work) in &learned.work {
                let id = table.id(number).map_or("", |id| id);
                let vector = vectors.remove(&number).unwrap_or_default();
                deltas.push((number, item_work.delta(id, vector, half_life_ms)));
            }
            // Items whose vectors the pairs moved without an event of their own in the batch.
            for (number, vector) in vectors {
                let id = table.id(number).map_or("", |id| id);
                deltas.push((number, ItemWork::default().delta(id, vector, half_life_ms)));
            }
        }
        deltas.sort_unstable_by_key(|(number, _)| *number);
        let ranges = self
            .owned
            .iter()
            .map(|&partition| {
                let partition_at = partition as usize;
                (
                    partition,
                    self.offsets[partition_at],
                    next_offsets[partition_at],
                )
            })
            .filter(|(_, from, to)| to > from)
            .collect();
        BatchItemChanges {
            deltas,
            additions,
            ranges,
        }
    }

    /// Step 4: one atomic write of the state and the offsets together (and, on a node that
    /// ships its item changes, the outbox record). Written in key order: RocksDB's memtable
    /// inserts sorted keys much faster.
    fn commit_batch(
        &self,
        learned: &Learned<'_>,
        changes: &BatchItemChanges,
        next_offsets: &[u64],
        attribution: &Attribution<'_>,
    ) -> Result<()> {
        let mut batch = self.store.batch();
        attribution.write(&mut batch)?;
        let mut applied_keys: Vec<&(&str, &str)> = learned.applied_now.iter().collect();
        applied_keys.sort_unstable();
        for (user_id, event_id) in applied_keys {
            batch.mark_applied(user_id, event_id);
        }
        let mut users: Vec<(&String, &UserState)> = learned.users.iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (user_id, state) in users {
            batch.put_user(user_id, state)?;
        }
        let mut seen: Vec<(&(&str, u32), &SeenEntry)> = learned.seen.iter().collect();
        seen.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for ((user_id, number), entry) in seen {
            batch.add_seen(user_id, *number, entry)?;
        }
        for (number, added) in &changes.additions {
            batch.add_neighbours(*number, added);
        }
        let pending_ids = self.write_pending_ids(&mut batch);
        for (number, delta) in &changes.deltas {
            batch.merge_item(*number, delta)?;
        }
        // Only this worker's partitions: the others' offsets are theirs to commit.
        for &partition in &self.owned {
            batch.put_offset(partition, next_offsets[partition as usize]);
        }
        for &(partition, _, to) in &changes.ranges {
            batch.put_item_offset(partition, to);
        }
        let shipped = self.changes.is_some() && !changes.ranges.is_empty();
        if shipped {
            let record = self.item_changes(
                changes.ranges.clone(),
                &changes.deltas,
                &changes.additions,
                None,
            );
            let sequence = self.shared.outbox_sequence.fetch_add(1, Ordering::AcqRel);
            batch.put_outbox(sequence, &record)?;
        }
        self.store.commit(batch)?;
        if shipped {
            self.shared.outbox_ready.notify_one();
        }
        self.forget_written_ids(&pending_ids);
        Ok(())
    }

    /// The counters and histograms of a committed batch.
    fn record_batch(&self, entries: &[LogEntry], learned: &Learned<'_>, started: Instant) {
        let now_ms = marquee_schemas::now_ms();
        learned.applied.publish(&self.metrics.events_applied);
        learned.duplicates.publish(&self.metrics.events_duplicate);
        for entry in entries {
            let seconds = (now_ms - entry.append_ms).max(0) as f64 / 1000.0;
            self.metrics.freshness.observe(seconds);
        }
        self.metrics
            .batch_duration
            .observe(started.elapsed().as_secs_f64());
        if started.elapsed() > Duration::from_secs(1) {
            warn!(events = entries.len(), "slow processor batch");
        }
    }

    /// Writes every item number not yet written, by any worker, into `batch`; returns them. A
    /// commit carrying a delta of a new item also carries its number, even while another
    /// worker's commit of it is under way (the write is idempotent).
    pub(super) fn write_pending_ids(
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
    pub(super) fn forget_written_ids(&self, written: &std::collections::BTreeMap<u32, String>) {
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
    pub(super) fn publish_items(
        &self,
        deltas: &[(u32, ItemDelta)],
        additions: &[(u32, Vec<(u32, f32)>)],
    ) {
        if let Some(recorded) = self.shared.recorded_pairs.lock().as_mut() {
            recorded.extend_from_slice(additions);
        }
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
    pub(super) fn number_items<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<u32> {
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
}
