//! Items' rows: stored states, co-occurrence lists, item numbers, the catalogue.

use marquee_schemas::{Item, decode_item, decode_record, encode_record};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};

use super::StateStore;
use super::entries::EntryWrite;
use super::keys::{
    CATALOGUE_CF, FACTOR_SCALES_KEY, ITEM_IDS_CF, ITEMS_CF, NEIGHBOURS_CF, RULES_CF,
};
use crate::error::{Error, Result};
use crate::neighbours::Neighbours;
use crate::records::ItemState;

impl StateStore {
    /// Every item state, in item-number order (start-up load).
    pub fn load_items(&self) -> Result<Vec<(u32, ItemState)>> {
        let mut items = Vec::new();
        for entry in self
            .inner
            .db
            .iterator_cf(self.cf_handle(ITEMS_CF), IteratorMode::Start)
        {
            let (key, value) = entry?;
            let Ok(number) = <[u8; 4]>::try_from(&key[..]) else {
                continue;
            };
            let number = u32::from_be_bytes(number);
            let value = self.open_value(ITEMS_CF, &value)?;
            let state = decode_record(&value).map_err(|source| Error::CorruptRecord {
                column_family: ITEMS_CF,
                key: number.to_string(),
                source,
            })?;
            items.push((number, state));
        }
        Ok(items)
    }

    /// Every item's co-occurrence list (start-up load).
    pub fn load_neighbours(&self) -> Result<Vec<(u32, Neighbours)>> {
        let mut lists = Vec::new();
        for entry in self
            .inner
            .db
            .iterator_cf(self.cf_handle(NEIGHBOURS_CF), IteratorMode::Start)
        {
            let (key, value) = entry?;
            let Ok(number) = <[u8; 4]>::try_from(&key[..]) else {
                continue;
            };
            let number = u32::from_be_bytes(number);
            let value = self.open_value(NEIGHBOURS_CF, &value)?;
            let list =
                Neighbours::decode(&value).ok_or(Error::CorruptNeighbours { item: number })?;
            lists.push((number, list));
        }
        Ok(lists)
    }

    /// Every item-id mapping, including items the catalogue knows but no event touched yet.
    pub fn load_item_ids(&self) -> Result<Vec<(String, u32)>> {
        let mut ids = Vec::new();
        for entry in self
            .inner
            .db
            .iterator_cf(self.cf_handle(ITEM_IDS_CF), IteratorMode::Start)
        {
            let (key, value) = entry?;
            let (Ok(id), Ok(number)) = (
                String::from_utf8(key.to_vec()),
                <[u8; 4]>::try_from(&value[..]),
            ) else {
                continue;
            };
            ids.push((id, u32::from_be_bytes(number)));
        }
        Ok(ids)
    }

    /// Every catalogue entry (start-up load).
    pub fn load_catalogue(&self) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        for entry in self
            .inner
            .db
            .iterator_cf(self.cf_handle(CATALOGUE_CF), IteratorMode::Start)
        {
            let (key, value) = entry?;
            let value = self.open_value(CATALOGUE_CF, &value)?;
            let item = decode_item(&value).map_err(|source| Error::CorruptRecord {
                column_family: CATALOGUE_CF,
                key: String::from_utf8_lossy(&key).into_owned(),
                source,
            })?;
            items.push(item);
        }
        Ok(items)
    }

    /// One catalogue entry.
    pub fn catalogue_item(&self, item_id: &str) -> Result<Option<Item>> {
        let Some(stored) = self
            .inner
            .db
            .get_pinned_cf(self.cf_handle(CATALOGUE_CF), item_id.as_bytes())?
        else {
            return Ok(None);
        };
        decode_item(&self.open_value(CATALOGUE_CF, &stored)?)
            .map(Some)
            .map_err(|source| Error::CorruptRecord {
                column_family: CATALOGUE_CF,
                key: item_id.to_owned(),
                source,
            })
    }

    /// Deletes the catalogue entry of `item_id` and applies `rules` (the deletion's record) in
    /// one synced batch. The item's number, state and events stay.
    pub fn delete_catalogue(&self, item_id: &str, rules: &[EntryWrite]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf_handle(CATALOGUE_CF), item_id.as_bytes());
        self.add_writes(&mut batch, RULES_CF, rules);
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.inner.db.write_opt(batch, &sync)?;
        Ok(())
    }

    /// Writes catalogue entries and their item numbers durably (synced) in one batch, with
    /// `rules` (the upserted items' deletion records removed).
    pub fn put_catalogue(&self, entries: &[(Item, u32)], rules: &[EntryWrite]) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.add_writes(&mut batch, RULES_CF, rules);
        for (item, number) in entries {
            let bytes = encode_record(item).map_err(|source| Error::Encode {
                column_family: CATALOGUE_CF,
                source,
            })?;
            batch.put_cf(
                self.cf_handle(CATALOGUE_CF),
                item.item_id.as_bytes(),
                self.seal(CATALOGUE_CF, bytes),
            );
            batch.put_cf(
                self.cf_handle(ITEM_IDS_CF),
                item.item_id.as_bytes(),
                number.to_be_bytes(),
            );
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.inner.db.write_opt(batch, &sync)?;
        Ok(())
    }

    /// The scales of the item vectors' factorisation; empty before the first solve.
    pub fn factor_scales(&self) -> Result<Vec<f32>> {
        let bytes = self.inner.db.get(FACTOR_SCALES_KEY)?.unwrap_or_default();
        if bytes.len() % 4 != 0 {
            return Err(Error::CorruptKey {
                column_family: "default",
            });
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4 bytes")))
            .collect())
    }
}
