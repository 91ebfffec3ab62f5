//! The column families of bytes under keys that the stream processor lays out: `experiments`
//! (experiments' and flags' definitions, attribution records) and `rules` (the property schema,
//! saved filters, campaigns, deleted items). This layer stores them; it does not read them.

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::StateStore;
use super::keys::{EXPERIMENTS_CF, RULES_CF};
use crate::error::Result;

/// One write of an entry: a value to put, or `None` to delete.
pub type EntryWrite = (Vec<u8>, Option<Vec<u8>>);

/// The name the experiments' writes had first.
pub type ExperimentWrite = EntryWrite;

impl StateStore {
    /// Adds `writes` (puts, and deletes for `None`) to `batch` in the column family `cf_name`.
    pub(super) fn add_writes(
        &self,
        batch: &mut WriteBatch,
        cf_name: &'static str,
        writes: &[EntryWrite],
    ) {
        let cf = self.cf_handle(cf_name);
        for (key, value) in writes {
            match value {
                Some(value) => batch.put_cf(cf, key, self.seal(cf_name, value.clone())),
                None => batch.delete_cf(cf, key),
            }
        }
    }

    /// The values of `keys` of the `experiments` column family, in the order asked (one
    /// `MultiGet`).
    pub fn experiment_values(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.multi_get(EXPERIMENTS_CF, keys)
    }

    /// Every entry of the `experiments` column family whose key starts with `prefix`.
    pub fn experiment_entries(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.entries(EXPERIMENTS_CF, prefix)
    }

    /// Puts and deletes `writes` in the `experiments` column family in one synced batch; with
    /// `clear_prefix`, every key under it is deleted first.
    pub fn write_experiments(
        &self,
        writes: &[EntryWrite],
        clear_prefix: Option<&[u8]>,
    ) -> Result<()> {
        self.write_entries(EXPERIMENTS_CF, writes, clear_prefix)
    }

    /// Every entry of the `rules` column family whose key starts with `prefix`.
    pub fn rule_entries(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.entries(RULES_CF, prefix)
    }

    /// Puts and deletes `writes` in the `rules` column family in one synced batch.
    pub fn write_rules(&self, writes: &[EntryWrite]) -> Result<()> {
        self.write_entries(RULES_CF, writes, None)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    fn entries(&self, cf_name: &'static str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut entries = Vec::new();
        let iterator = self.inner.db.iterator_cf(
            self.cf_handle(cf_name),
            IteratorMode::From(prefix, Direction::Forward),
        );
        for entry in iterator {
            let (key, value) = entry?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key.to_vec(), self.open_value(cf_name, &value)?.into_owned()));
        }
        Ok(entries)
    }

    /// Puts and deletes `writes` in one synced batch (an operator's change is durable when it
    /// is answered); with `clear_prefix`, every key under it is deleted first.
    fn write_entries(
        &self,
        cf_name: &'static str,
        writes: &[EntryWrite],
        clear_prefix: Option<&[u8]>,
    ) -> Result<()> {
        let cf = self.cf_handle(cf_name);
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
        self.add_writes(&mut batch, cf_name, writes);
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.inner.db.write_opt(batch, &sync)?;
        Ok(())
    }
}
