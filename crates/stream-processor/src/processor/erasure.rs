//! Erasure: a user's state deleted and their applied events' contributions to items taken
//! back, run by the worker that owns the user's partition between two of its batches.

use std::sync::atomic::Ordering;

use foldhash::{HashSet, HashSetExt};
use marquee_ingest::{EventLog, LogEntry};
use marquee_schemas::partition_for_user;
use marquee_vector_store::{HistoryEntry, ItemDelta, Popularity};
use tracing::{error, info};

use super::Processor;
use super::batch::NumberMap;
use super::handle::{Erasure, ErasureRequest, erasure_hash};
use crate::error::Result;
use crate::factors::fold_in;
use crate::journal::ErasureRecord;
use crate::model::{activity_damping, event_weight, push_history, sequential_pairs};

/// What an erased user's applied events added to one item.
#[derive(Default)]
struct ItemRemoval {
    /// Stream times of the popularity additions (each of weight 1).
    popularity_at: Vec<i64>,
    event_count: u64,
    mass: f32,
}

/// What an erased user's applied events added, per item and per co-occurrence list.
#[derive(Default)]
struct Removals {
    applied_events: usize,
    items: NumberMap<ItemRemoval>,
    pairs: NumberMap<Vec<(u32, f32)>>,
}

impl<L: EventLog> Processor<L> {
    /// Runs the erasures queued through [`ProcessorHandle::erase_user`].
    /// An erasure is run by the worker owning the user's partition, between two of its batches,
    /// so no batch of that worker holds the user's state meanwhile.
    pub(super) fn run_erasures(&mut self) {
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
    ///
    /// The erasure is journalled (synced) before anything else: a state that lacks it later —
    /// restored from an older backup, replayed, rebuilt — has it done again at the node's next
    /// start ([`Processor::apply_erasure_journal`]).
    pub fn erase(&mut self, user_id: &str) -> Result<Erasure> {
        let erased_ms = marquee_schemas::now_ms();
        let hash = erasure_hash(&self.config.erasure_key, user_id);
        if let Some(journal) = &self.config.erasure_journal {
            journal.append(&ErasureRecord::new(&hash, erased_ms))?;
        }
        self.erase_at(user_id, hash, erased_ms)
    }

    /// [`Processor::erase`] of a journalled erasure, at its time.
    pub(super) fn erase_at(
        &mut self,
        user_id: &str,
        hash: [u8; 32],
        erased_ms: i64,
    ) -> Result<Erasure> {
        let previous = self.handle.inner.erased.read().get(&hash).copied();
        // Events appended after the erasure are a new start, which the processor applies: a
        // journalled erasure done again leaves them (see `apply_erasure_journal`).
        let entries: Vec<LogEntry> = self
            .log
            .user_entries(user_id)?
            .into_iter()
            .filter(|entry| entry.append_ms <= erased_ms)
            .collect();
        let had_state = self.store.user(user_id)?.is_some();
        let removals = if had_state {
            self.applied_contributions(&entries, previous)
        } else {
            Removals::default()
        };
        let (deltas, pair_removals) = self.removal_deltas(&removals);

        // One synced batch: the user's rows, the items' counts and pairs (as negative deltas,
        // which commute with the workers' batches), the erasure list.
        let mut batch = self.store.batch();
        // A user without a record has no rows (they are written with it, and erased with it):
        // deleting them would only write the raw id to disk again, in tombstones.
        if had_state {
            batch.delete_user(user_id);
        }
        // The user's counts in every experiment leave the results with them.
        for key in self.experiments.user_keys(user_id) {
            batch.delete_experiment_entry(&key);
        }
        for (number, delta) in &deltas {
            batch.merge_item(*number, delta)?;
        }
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

        // The log, then the write-ahead logs that still hold the user's rows. A user of whom
        // nothing was found (no state, no event in the log: an id that never existed, or one
        // erased before) has no row to remove from the files: no flush and no compaction.
        let positions: Vec<(u32, u64)> = entries
            .iter()
            .map(|entry| (entry.partition, entry.offset))
            .collect();
        let log_erased = match self.log.erase(&positions) {
            Ok(()) => true,
            Err(marquee_ingest::Error::Unsupported(_)) => false,
            Err(failure) => return Err(failure.into()),
        };
        if had_state || !entries.is_empty() {
            self.store.flush_all()?;
            self.store.compact_user_in_background(user_id);
        }
        self.refresh_trending();
        Ok(Erasure {
            log_events: entries.len(),
            applied_events: removals.applied_events,
            had_state,
            items_adjusted: removals.items.len(),
            log_erased,
            erased_ms,
        })
    }

    /// The contributions of the user's events the model applied (before the committed offset,
    /// not blocked by an earlier erasure at `previous`, each event id once), replayed through
    /// the code that applied them.
    fn applied_contributions(&self, entries: &[LogEntry], previous: Option<i64>) -> Removals {
        let model = &self.model;
        let table = self.items.read();
        let mut removals = Removals::default();
        let mut ids: HashSet<&str> = HashSet::new();
        let mut history: Vec<HistoryEntry> = Vec::new();
        let mut event_count = 0u64;
        for entry in entries {
            let event = &entry.event;
            let applied = entry.offset < self.offsets[entry.partition as usize]
                && previous.is_none_or(|at| entry.append_ms > at);
            if !applied || !ids.insert(&event.event_id) {
                continue;
            }
            let Some(number) = table.number(&event.item_id) else {
                continue;
            };
            removals.applied_events += 1;
            let weight = event_weight(event, &model.weights);
            let removal = removals.items.entry(number).or_default();
            if weight > 0.0 {
                removal.popularity_at.push(event.timestamp);
                let damped = weight * activity_damping(event_count, model.activity_damping);
                removal.mass += damped;
                let pairs = &mut removals.pairs;
                sequential_pairs(
                    &history,
                    number,
                    event.timestamp,
                    damped,
                    model,
                    |from, to, pair_weight| {
                        if pair_weight > 0.0 {
                            pairs.entry(from).or_default().push((to, -pair_weight));
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
        removals
    }

    /// The negative deltas and pair removals that take `removals` back, sorted by item number.
    #[expect(
        clippy::type_complexity,
        reason = "the batch's own (item, delta) and (item, additions) lists"
    )]
    fn removal_deltas(
        &self,
        removals: &Removals,
    ) -> (Vec<(u32, ItemDelta)>, Vec<(u32, Vec<(u32, f32)>)>) {
        let half_life_ms = self.model.popularity_half_life_ms();
        let mut pair_removals: Vec<(u32, Vec<(u32, f32)>)> = removals
            .pairs
            .iter()
            .map(|(n, r)| (*n, r.clone()))
            .collect();
        pair_removals.sort_unstable_by_key(|(number, _)| *number);
        let mut deltas: Vec<(u32, ItemDelta)> = Vec::with_capacity(removals.items.len());
        {
            let table = self.items.read();
            // The removed pairs come out of the vectors as they went in.
            let mut vectors = std::collections::HashMap::new();
            fold_in(&*table, &pair_removals, &mut vectors);
            for (&number, removal) in &removals.items {
                let mut delta = ItemDelta::new(table.id(number).map_or("", |id| id), half_life_ms);
                let mut popularity = Popularity::default();
                for &at in &removal.popularity_at {
                    popularity.merge(Popularity { score: -1.0, at }, half_life_ms);
                }
                delta.popularity = popularity.score;
                delta.popularity_at = popularity.at;
                delta.event_count = -(removal.event_count as i64);
                delta.mass = -removal.mass;
                delta.vector = vectors.remove(&number).unwrap_or_default();
                deltas.push((number, delta));
            }
            for (number, vector) in vectors {
                let mut delta = ItemDelta::new(table.id(number).map_or("", |id| id), half_life_ms);
                delta.vector = vector;
                deltas.push((number, delta));
            }
        }
        deltas.sort_unstable_by_key(|(number, _)| *number);
        (deltas, pair_removals)
    }
}
