//! Options of the state's column families: block cache, bloom filters, the merge operators of
//! `seen`, `items` and `neighbours`, and the compaction filter that ends the de-duplication
//! window. In an encrypted state each merge opens its operands and seals its result
//! ([`opened_merge`]).

use marquee_schemas::{Cipher, decode_record, encode_record, now_ms};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, MergeOperands, Options,
    compaction_filter::Decision,
};

use super::StoreConfig;
use super::keys::*;
use crate::records::SeenEntry;

pub(super) fn base_options(cache: &Cache, bloom: bool) -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    if bloom {
        // Point lookups that mostly miss (de-duplication, unknown users) skip the disk.
        table.set_bloom_filter(10.0, false);
    }
    options.set_block_based_table_factory(&table);
    options
}

/// The `seen` column family's merge: interactions add up, the last operand's weight and time
/// are the entry's. Used for the full and the partial merge alike (both are that fold). `None`
/// (RocksDB reports a corruption) when a record does not decode.
fn merge_seen<'a>(
    existing: Option<&[u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
) -> Option<Vec<u8>> {
    let mut merged: Option<SeenEntry> = match existing {
        Some(bytes) => Some(decode_record(bytes).ok()?),
        None => None,
    };
    for operand in operands {
        let entry: SeenEntry = decode_record(operand).ok()?;
        merged = Some(match merged {
            Some(before) => SeenEntry {
                interactions: before.interactions.saturating_add(entry.interactions),
                ..entry
            },
            None => entry,
        });
    }
    encode_record(&merged?).ok()
}

/// `merge` of the operands as they were written: in an encrypted state (`cipher`), the existing
/// value and each operand opened first and the result sealed; `None` (RocksDB reports a
/// corruption) when one does not open.
fn opened_merge(
    cipher: Option<&Cipher>,
    existing: Option<&[u8]>,
    operands: &MergeOperands,
    merge: impl for<'a> FnOnce(Option<&'a [u8]>, &mut dyn Iterator<Item = &'a [u8]>) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let Some(cipher) = cipher else {
        return merge(existing, &mut operands.iter());
    };
    let existing = existing.map(|bytes| cipher.open(bytes)).transpose().ok()?;
    let opened = operands
        .iter()
        .map(|operand| cipher.open(operand))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let merged = merge(existing.as_deref(), &mut opened.iter().map(Vec::as_slice))?;
    Some(cipher.seal(&merged))
}

/// Every column family of the state with its options.
pub(super) fn descriptors(cache: &Cache, config: &StoreConfig) -> Vec<ColumnFamilyDescriptor> {
    let window_ms = config.dedup_window.as_millis() as i64;
    let mut dedup_options = base_options(cache, true);
    dedup_options.set_compaction_filter("dedup_window", move |_level, _key, value: &[u8]| {
        let Ok(bytes) = <[u8; 8]>::try_from(value) else {
            return Decision::Keep;
        };
        let applied_ms = i64::from_be_bytes(bytes);
        if now_ms().saturating_sub(applied_ms) > window_ms {
            Decision::Remove
        } else {
            Decision::Keep
        }
    });
    let mut neighbours_options = base_options(cache, false);
    let cipher = config.cipher.clone();
    let partial_cipher = config.cipher.clone();
    neighbours_options.set_merge_operator(
        "neighbour_additions",
        move |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
            opened_merge(cipher.as_ref(), existing, operands, |existing, operands| {
                crate::neighbours::merge(existing, operands)
            })
        },
        move |_key: &[u8], _existing: Option<&[u8]>, operands: &MergeOperands| {
            // Additions are replayed in order, so consecutive operands concatenate.
            opened_merge(partial_cipher.as_ref(), None, operands, |_, operands| {
                Some(operands.flatten().copied().collect())
            })
        },
    );
    let mut seen_options = base_options(cache, true);
    let cipher = config.cipher.clone();
    let partial_cipher = config.cipher.clone();
    seen_options.set_merge_operator(
        "seen_interactions",
        move |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
            opened_merge(cipher.as_ref(), existing, operands, |existing, operands| {
                merge_seen(existing, operands)
            })
        },
        move |_key: &[u8], _existing: Option<&[u8]>, operands: &MergeOperands| {
            opened_merge(partial_cipher.as_ref(), None, operands, |_, operands| {
                merge_seen(None, operands)
            })
        },
    );
    let mut items_options = base_options(cache, false);
    let dimension = config.dimension;
    let cipher = config.cipher.clone();
    let partial_cipher = config.cipher.clone();
    items_options.set_merge_operator(
        "item_deltas",
        move |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
            opened_merge(cipher.as_ref(), existing, operands, |existing, operands| {
                crate::delta::merge_full(existing, operands, dimension)
            })
        },
        move |_key: &[u8], _existing: Option<&[u8]>, operands: &MergeOperands| {
            opened_merge(partial_cipher.as_ref(), None, operands, |_, operands| {
                crate::delta::merge_partial(operands)
            })
        },
    );
    vec![
        ColumnFamilyDescriptor::new(USERS_CF, base_options(cache, true)),
        ColumnFamilyDescriptor::new(SEEN_CF, seen_options),
        ColumnFamilyDescriptor::new(ITEMS_CF, items_options),
        ColumnFamilyDescriptor::new(ITEM_IDS_CF, base_options(cache, true)),
        ColumnFamilyDescriptor::new(CATALOGUE_CF, base_options(cache, true)),
        ColumnFamilyDescriptor::new(DEDUP_CF, dedup_options),
        ColumnFamilyDescriptor::new(OFFSETS_CF, base_options(cache, false)),
        ColumnFamilyDescriptor::new(NEIGHBOURS_CF, neighbours_options),
        ColumnFamilyDescriptor::new(ERASED_CF, base_options(cache, false)),
        ColumnFamilyDescriptor::new(OUTBOX_CF, base_options(cache, false)),
        ColumnFamilyDescriptor::new(EXPERIMENTS_CF, base_options(cache, true)),
        ColumnFamilyDescriptor::new(RULES_CF, base_options(cache, true)),
    ]
}
