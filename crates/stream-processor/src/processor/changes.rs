//! The change log's side of nodes that split the partitions (see "Nodes" in the module docs of
//! [`super`]): a batch's item changes as they travel, and the consumer that applies the other
//! nodes' records.

use std::sync::atomic::Ordering;
use std::time::Duration;

use marquee_ingest::{ChangeLog, EventLog};
use marquee_vector_store::{ItemChanges, ItemDelta, StateBatch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Processor;
use crate::error::Result;
use crate::factors::fold_in;

/// Change-log records a consumer batch applies at most.
const CHANGES_PER_BATCH: usize = 256;

/// What a consumer batch will commit and then publish.
struct Staged {
    batch: StateBatch,
    /// Per partition, the offset up to which the item table will hold its item changes.
    item_offsets: Vec<u64>,
    erasures: Vec<([u8; 32], i64)>,
    deltas: Vec<(u32, ItemDelta)>,
    additions: Vec<(u32, Vec<(u32, f32)>)>,
    /// The latest popularity time of the staged deltas (`i64::MIN`: none).
    clock: i64,
}

/// What a change-log record is to this node.
enum Admission {
    /// Its changes are in the item table already.
    Known,
    /// This node's own record.
    Own,
    Apply,
}

impl<L: EventLog> Processor<L> {
    /// A batch's (or an erasure's) item changes as they travel: items by id, since item numbers
    /// are each node's own.
    pub(super) fn item_changes(
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
        let mut staged = Staged {
            batch: self.store.batch(),
            item_offsets: self
                .shared
                .item_offsets
                .iter()
                .map(|offset| offset.load(Ordering::Acquire))
                .collect(),
            erasures: Vec::new(),
            deltas: Vec::new(),
            additions: Vec::new(),
            clock: i64::MIN,
        };
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
            match self.admit(&changes, &mut staged) {
                Admission::Known => known += 1,
                Admission::Own => own += 1,
                Admission::Apply => {
                    applied += 1;
                    self.stage(changes, &mut staged)?;
                }
            }
        }
        let Staged {
            mut batch,
            item_offsets,
            erasures,
            deltas,
            additions,
            clock,
        } = staged;
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

    /// Whether a record is to be applied: not when the item table holds its changes already (a
    /// partition's changes up to the record's end offset, its own node's records, or for an
    /// erasure, the same erasure). An admitted record's erasure and item offsets are staged.
    fn admit(&self, changes: &ItemChanges, staged: &mut Staged) -> Admission {
        if let Some((hash, erased_ms)) = changes.erasure {
            let done = self
                .handle
                .inner
                .erased
                .read()
                .get(&hash)
                .is_some_and(|&at| at >= erased_ms)
                || staged.erasures.contains(&(hash, erased_ms));
            if done {
                return Admission::Known;
            }
            staged.batch.put_erasure(&hash, erased_ms);
            staged.erasures.push((hash, erased_ms));
            return Admission::Apply;
        }
        // After the start, records of this node's partitions are its own: the item table had
        // their changes before they were shipped.
        if self.shared.changes_drained.load(Ordering::Acquire)
            && changes
                .ranges
                .iter()
                .all(|(partition, _, _)| self.handle.owns(*partition))
        {
            return Admission::Own;
        }
        if changes.ranges.iter().all(|&(partition, _, to)| {
            staged
                .item_offsets
                .get(partition as usize)
                .is_none_or(|&known| to <= known)
        }) {
            return Admission::Known;
        }
        for &(partition, from, to) in &changes.ranges {
            let Some(slot) = staged.item_offsets.get_mut(partition as usize) else {
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
            staged.batch.put_item_offset(partition, *slot);
        }
        Admission::Apply
    }

    /// Stages an admitted record's deltas and co-occurrence additions, by this node's item
    /// numbers (numbering items never seen here).
    fn stage(&self, changes: ItemChanges, staged: &mut Staged) -> Result<()> {
        let half_life_ms = self.model.popularity_half_life_ms();
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
        let item_numbers: Vec<u32> = numbers.by_ref().take(changes.items.len()).collect();
        let mut additions: Vec<(u32, Vec<(u32, f32)>)> = Vec::with_capacity(changes.pairs.len());
        for (_, added) in changes.pairs {
            let number = numbers.next().expect("one number per id");
            let added: Vec<(u32, f32)> = added
                .into_iter()
                .map(|(_, weight)| (numbers.next().expect("one number per id"), weight))
                .collect();
            additions.push((number, added));
        }
        // The vectors are each node's own factorisation: the sender's vector changes are left
        // out, and the pairs fold into this node's vectors as its own batches' do.
        let mut vectors = std::collections::HashMap::new();
        fold_in(&*self.items.read(), &additions, &mut vectors);
        for (number, delta) in item_numbers.into_iter().zip(changes.items) {
            if delta.popularity_at > staged.clock {
                staged.clock = delta.popularity_at;
            }
            let delta = ItemDelta {
                half_life_ms: if delta.half_life_ms > 0.0 {
                    delta.half_life_ms
                } else {
                    half_life_ms
                },
                vector: vectors.remove(&number).unwrap_or_default(),
                ..delta
            };
            staged.batch.merge_item(number, &delta)?;
            staged.deltas.push((number, delta));
        }
        let mut moved: Vec<(u32, Vec<f32>)> = vectors.into_iter().collect();
        moved.sort_unstable_by_key(|(number, _)| *number);
        for (number, vector) in moved {
            let id = self.items.read().id(number).map(|id| id.to_string());
            let mut delta = ItemDelta::new(id.as_deref().unwrap_or(""), half_life_ms);
            delta.vector = vector;
            staged.batch.merge_item(number, &delta)?;
            staged.deltas.push((number, delta));
        }
        for (number, added) in additions {
            staged.batch.add_neighbours(number, &added);
            staged.additions.push((number, added));
        }
        Ok(())
    }

    /// Runs the change-log consumer on a thread of its own: it reads the change log to its end
    /// as of the start (the workers wait for that), then follows it.
    pub(super) fn spawn_change_consumer(
        &self,
        cancel: CancellationToken,
    ) -> std::thread::JoinHandle<()>
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
}
