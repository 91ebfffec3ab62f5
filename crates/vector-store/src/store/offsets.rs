//! The `offsets`, `outbox` and `erased` column families: consumer and item offsets, the change
//! log's offset, item changes waiting to be shipped, the erasure list.

use rocksdb::{IteratorMode, WriteBatch};

use super::StateStore;
use super::keys::{
    CHANGE_OFFSET_KEY, ERASED_CF, OFFSETS_CF, OUTBOX_CF, SHIPPED_KEY, item_offset_key,
};
use crate::error::{Error, Result};

impl StateStore {
    /// The committed consumer offsets (next offset to apply), one per partition.
    pub fn offsets(&self, partition_count: u32) -> Result<Vec<u64>> {
        (0..partition_count)
            .map(|partition| {
                let value = self
                    .inner
                    .db
                    .get_cf(self.cf_handle(OFFSETS_CF), partition.to_be_bytes())?;
                Ok(value
                    .and_then(|bytes| bytes.as_slice().try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0))
            })
            .collect()
    }

    /// Per partition, the offset up to which the item table holds the item changes of the
    /// partition's events: written with the offsets by a processor that applies them, and by
    /// the change-log consumer for the partitions of other nodes. Where none was written, the
    /// committed offset (a state of one node).
    pub fn item_offsets(&self, partition_count: u32) -> Result<Vec<u64>> {
        let committed = self.offsets(partition_count)?;
        (0..partition_count)
            .map(|partition| {
                let value = self
                    .inner
                    .db
                    .get_cf(self.cf_handle(OFFSETS_CF), item_offset_key(partition))?;
                Ok(value
                    .and_then(|bytes| bytes.as_slice().try_into().ok())
                    .map_or(committed[partition as usize], u64::from_be_bytes))
            })
            .collect()
    }

    /// The next change-log offset to apply.
    pub fn change_offset(&self) -> Result<u64> {
        self.offsets_value(CHANGE_OFFSET_KEY)
    }

    /// The highest outbox sequence shipped to the change log (0: none).
    pub fn shipped_sequence(&self) -> Result<u64> {
        self.offsets_value(SHIPPED_KEY)
    }

    fn offsets_value(&self, key: &[u8]) -> Result<u64> {
        Ok(self
            .inner
            .db
            .get_cf(self.cf_handle(OFFSETS_CF), key)?
            .and_then(|bytes| bytes.as_slice().try_into().ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Up to `max` outbox records, in sequence order: `(sequence, encoded ItemChanges)`.
    pub fn outbox(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner
            .db
            .iterator_cf(self.cf_handle(OUTBOX_CF), IteratorMode::Start)
            .take(max)
            .map(|item| {
                let (key, value) = item?;
                let sequence = <[u8; 8]>::try_from(key.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::CorruptKey {
                        column_family: OUTBOX_CF,
                    })?;
                Ok((sequence, self.open_value(OUTBOX_CF, &value)?.into_owned()))
            })
            .collect()
    }

    /// The highest sequence in the outbox or shipped (0: none): a node's next record takes a
    /// higher one.
    pub fn last_outbox_sequence(&self) -> Result<u64> {
        let last = match self
            .inner
            .db
            .iterator_cf(self.cf_handle(OUTBOX_CF), IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (key, _) = item?;
                <[u8; 8]>::try_from(key.as_ref()).map_or(0, u64::from_be_bytes)
            }
            None => 0,
        };
        Ok(last.max(self.shipped_sequence()?))
    }

    /// Removes the shipped outbox records `sequences` and records the highest as shipped. Each
    /// by its key, not as a range: a worker may commit a lower sequence than one already
    /// shipped (sequences are taken before commits finish), and it must stay to be shipped.
    pub fn remove_shipped(&self, sequences: &[u64]) -> Result<()> {
        let mut batch = WriteBatch::default();
        let cf = self.cf_handle(OUTBOX_CF);
        for sequence in sequences {
            batch.delete_cf(cf, sequence.to_be_bytes());
        }
        let highest = sequences.iter().copied().max().unwrap_or(0);
        let shipped = self.shipped_sequence()?.max(highest);
        batch.put_cf(
            self.cf_handle(OFFSETS_CF),
            SHIPPED_KEY,
            shipped.to_be_bytes(),
        );
        self.inner.db.write(batch)?;
        Ok(())
    }

    /// The erasure list: keyed hashes of erased user ids and when each was erased.
    pub fn load_erasures(&self) -> Result<Vec<([u8; 32], i64)>> {
        self.inner
            .db
            .iterator_cf(self.cf_handle(ERASED_CF), IteratorMode::Start)
            .map(|item| {
                let (key, value) = item?;
                let hash = <[u8; 32]>::try_from(key.as_ref());
                let at = <[u8; 8]>::try_from(value.as_ref()).map(i64::from_be_bytes);
                match (hash, at) {
                    (Ok(hash), Ok(at)) => Ok((hash, at)),
                    _ => Err(Error::CorruptKey {
                        column_family: ERASED_CF,
                    }),
                }
            })
            .collect()
    }
}
