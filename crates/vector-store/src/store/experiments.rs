//! The `experiments` column family: bytes under keys that the stream processor's experiments
//! module lays out (definitions, flags, attribution records). This layer stores them; it does
//! not read them.

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::StateStore;
use super::keys::EXPERIMENTS_CF;
use crate::error::Result;

/// One write of [`StateStore::write_experiments`]: a value to put, or `None` to delete.
pub type ExperimentWrite = (Vec<u8>, Option<Vec<u8>>);

impl StateStore {
    /// The values of `keys`, in the order asked (one `MultiGet`).
    pub fn experiment_values(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.multi_get(EXPERIMENTS_CF, keys)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn experiment_entries(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut entries = Vec::new();
        let iterator = self.inner.db.iterator_cf(
            self.cf_handle(EXPERIMENTS_CF),
            IteratorMode::From(prefix, Direction::Forward),
        );
        for entry in iterator {
            let (key, value) = entry?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    /// Puts and deletes `writes` in one synced batch (an operator's change is durable when it
    /// is answered); with `clear_prefix`, every key under it is deleted first.
    pub fn write_experiments(
        &self,
        writes: &[ExperimentWrite],
        clear_prefix: Option<&[u8]>,
    ) -> Result<()> {
        let cf = self.cf_handle(EXPERIMENTS_CF);
        let mut batch = WriteBatch::default();
        if let Some(prefix) = clear_prefix {
            let mut end = prefix.to_vec();
            // The first key after every key that starts with `prefix`.
            while let Some(last) = end.pop() {
                if last < u8::MAX {
                    end.push(last + 1);
                    break;
                }
            }
            if end.is_empty() {
                batch.delete_range_cf(cf, prefix, &[u8::MAX; 64][..]);
            } else {
                batch.delete_range_cf(cf, prefix, &end[..]);
            }
        }
        for (key, value) in writes {
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.inner.db.write_opt(batch, &sync)?;
        Ok(())
    }
}
