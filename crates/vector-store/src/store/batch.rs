//! [`StateBatch`]: the writes of one processor batch (or one erasure), applied atomically.

use bincode::Encode;
use marquee_schemas::{encode_record, now_ms};
use rocksdb::WriteBatch;

use super::StateStore;
use super::keys::*;
use crate::delta::{ItemChanges, ItemDelta};
use crate::error::{Error, Result};
use crate::neighbours::encode_pairs;
use crate::records::{SeenEntry, UserState};

/// Writes of one processor batch; applied atomically by [`StateStore::commit`].
pub struct StateBatch {
    pub(super) store: StateStore,
    pub(super) batch: WriteBatch,
}

impl std::fmt::Debug for StateBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBatch")
            .field("writes", &self.batch.len())
            .finish()
    }
}

impl StateBatch {
    fn put_record<T: Encode>(
        &mut self,
        cf_name: &'static str,
        key: &[u8],
        value: &T,
    ) -> Result<()> {
        let bytes = encode_record(value).map_err(|source| Error::Encode {
            column_family: cf_name,
            source,
        })?;
        let cf = self.store.cf_handle(cf_name);
        self.batch.put_cf(cf, key, self.store.seal(cf_name, bytes));
        Ok(())
    }

    /// An attribution record of the experiments column family (its key and bytes are the
    /// stream processor's), committed with the events that made it.
    pub fn put_experiment_entry(&mut self, key: &[u8], value: &[u8]) {
        let cf = self.store.cf_handle(EXPERIMENTS_CF);
        self.batch
            .put_cf(cf, key, self.store.seal(EXPERIMENTS_CF, value.to_vec()));
    }

    /// Deletes an entry of the experiments column family (an erased user's records).
    pub fn delete_experiment_entry(&mut self, key: &[u8]) {
        let cf = self.store.cf_handle(EXPERIMENTS_CF);
        self.batch.delete_cf(cf, key);
    }

    pub fn put_user(&mut self, user_id: &str, state: &UserState) -> Result<()> {
        self.put_record(USERS_CF, &self.store.user_key(user_id), state)
    }

    /// Adds a batch's interactions of `user_id` with `item` to what is stored (a merge operand:
    /// `entry.interactions` are added, its last weight and time replace the stored ones), so
    /// a batch needs no read of the stored entry.
    pub fn add_seen(&mut self, user_id: &str, item: u32, entry: &SeenEntry) -> Result<()> {
        let bytes = encode_record(entry).map_err(|source| Error::Encode {
            column_family: SEEN_CF,
            source,
        })?;
        let cf = self.store.cf_handle(SEEN_CF);
        let key = seen_key(&self.store.user_key(user_id), item);
        self.batch
            .merge_cf(cf, key, self.store.seal(SEEN_CF, bytes));
        Ok(())
    }

    /// Adds `delta` to `item`'s stored state (a merge operand; see [`crate::delta`]).
    pub fn merge_item(&mut self, item: u32, delta: &ItemDelta) -> Result<()> {
        let bytes = encode_record(delta).map_err(|source| Error::Encode {
            column_family: ITEMS_CF,
            source,
        })?;
        let cf = self.store.cf_handle(ITEMS_CF);
        self.batch
            .merge_cf(cf, item.to_be_bytes(), self.store.seal(ITEMS_CF, bytes));
        Ok(())
    }

    /// Appends `additions` (in the order they were applied in memory) to `item`'s
    /// co-occurrence list.
    pub fn add_neighbours(&mut self, item: u32, additions: &[(u32, f32)]) {
        let cf = self.store.cf_handle(NEIGHBOURS_CF);
        let bytes = self.store.seal(NEIGHBOURS_CF, encode_pairs(additions));
        self.batch.merge_cf(cf, item.to_be_bytes(), bytes);
    }

    pub fn put_item_id(&mut self, item_id: &str, item: u32) {
        let cf = self.store.cf_handle(ITEM_IDS_CF);
        self.batch
            .put_cf(cf, item_id.as_bytes(), item.to_be_bytes());
    }

    /// Records that `event_id` was applied for `user_id` now.
    pub fn mark_applied(&mut self, user_id: &str, event_id: &str) {
        let cf = self.store.cf_handle(DEDUP_CF);
        let key = self.store.dedup_key(user_id, event_id);
        self.batch.put_cf(cf, key, now_ms().to_be_bytes());
    }

    /// Deletes everything stored under `user_id`: its state, seen items and applied event ids.
    pub fn delete_user(&mut self, user_id: &str) {
        let user_key = self.store.user_key(user_id);
        let prefix = user_prefix(&user_key);
        let mut end = prefix.clone();
        *end.last_mut().expect("the prefix ends with its separator") += 1;
        self.batch
            .delete_cf(self.store.cf_handle(USERS_CF), &user_key);
        for cf_name in [SEEN_CF, DEDUP_CF] {
            self.batch
                .delete_range_cf(self.store.cf_handle(cf_name), &prefix, &end);
        }
    }

    /// Adds a keyed hash of an erased user id to the erasure list.
    pub fn put_erasure(&mut self, hash: &[u8; 32], erased_ms: i64) {
        self.batch.put_cf(
            self.store.cf_handle(ERASED_CF),
            hash,
            erased_ms.to_be_bytes(),
        );
    }

    pub fn put_offset(&mut self, partition: u32, next_offset: u64) {
        let cf = self.store.cf_handle(OFFSETS_CF);
        self.batch
            .put_cf(cf, partition.to_be_bytes(), next_offset.to_be_bytes());
    }

    /// Records that the item table holds the item changes of `partition`'s events up to
    /// `offset` ([`StateStore::item_offsets`]).
    pub fn put_item_offset(&mut self, partition: u32, offset: u64) {
        let cf = self.store.cf_handle(OFFSETS_CF);
        self.batch
            .put_cf(cf, item_offset_key(partition), offset.to_be_bytes());
    }

    /// The next change-log offset to apply.
    pub fn put_change_offset(&mut self, offset: u64) {
        let cf = self.store.cf_handle(OFFSETS_CF);
        self.batch
            .put_cf(cf, CHANGE_OFFSET_KEY, offset.to_be_bytes());
    }

    /// Puts a batch's item changes in the outbox, to be shipped to the change log.
    pub fn put_outbox(&mut self, sequence: u64, changes: &ItemChanges) -> Result<()> {
        self.put_record(OUTBOX_CF, &sequence.to_be_bytes(), changes)
    }

    /// Records the scales of the factorisation the item vectors now belong to (a solve).
    pub fn put_factor_scales(&mut self, scales: &[f32]) {
        let bytes: Vec<u8> = scales
            .iter()
            .flat_map(|scale| scale.to_le_bytes())
            .collect();
        self.batch.put(FACTOR_SCALES_KEY, bytes);
    }
}
