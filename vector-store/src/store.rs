//! The state RocksDB instance (`<data-dir>/state`): every column family, key encoding and write
//! option of the model state.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `users` | user_id | [`UserState`]: event count, embedding, recent history |
//! | `seen` | user_id ‖ 0x00 ‖ item number (u32 BE) | [`SeenEntry`] of the interactions that left the user's history window (every interaction in states created before that layout: [`StateStore::seen_outside_history`]); batches add merge operands (interactions summed, the last weight and time kept) |
//! | `items` | item number (u32 BE) | [`ItemState`]: item id, embedding, popularity; batches add [`ItemDelta`] merge operands |
//! | `item_ids` | item_id | item number (u32 BE) |
//! | `catalogue` | item_id | [`Item`] (title, genres, year, tags) |
//! | `dedup` | user_id ‖ 0x00 ‖ event_id | first application time (i64 BE, ms) |
//! | `offsets` | partition (u32 BE) | next log offset to apply (u64 BE) |
//! | `offsets` | `items` ‖ partition (u32 BE) | the partition's offset up to which the item table holds the events' item changes (u64 BE; absent: the next offset above) |
//! | `offsets` | `changes` | next change-log offset to apply (u64 BE) |
//! | `offsets` | `shipped` | the highest outbox sequence shipped (u64 BE) |
//! | `outbox` | sequence (u64 BE) | [`ItemChanges`] of a batch, waiting to be shipped to the change log |
//! | `erased` | keyed hash of an erased user_id (HMAC-SHA-256, 32 bytes) | erasure time (i64 BE, ms) |
//! | `default` | `dimension` | embedding dimension (u32 BE), fixed at creation |
//! | `default` | `seen_outside_history` | present in states whose `seen` holds only what left the histories |
//!
//! Ids cannot contain control characters, so 0x00 cleanly ends the user part of a key.
//!
//! **Invariant:** the processor writes the state an event batch produced and the consumer offsets
//! after that batch in one [`StateBatch`], so a restart resumes exactly after the last applied
//! event. Processor batches are written without `fsync`: after a power loss the state may be
//! older than the log, and the processor re-applies from the older offsets, which is exact
//! because offsets and state are always consistent with each other. Catalogue writes come from
//! the API and are synced before they are acknowledged.
//!
//! `dedup` keys older than the de-duplication window are dropped by a compaction filter, so the
//! window is a lower bound: a repeated `event_id` within it is always recognised.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bincode::{Decode, Encode};
use marquee_schemas::{Item, decode_record, encode_record};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Direction,
    IteratorMode, MergeOperands, Options, ReadOptions, WriteBatch, WriteOptions,
    compaction_filter::Decision,
};

use crate::delta::{ItemChanges, ItemDelta};
use crate::error::{Error, Result};
use crate::neighbours::{Neighbours, encode_pairs};

const USERS_CF: &str = "users";
const SEEN_CF: &str = "seen";
const ITEMS_CF: &str = "items";
const ITEM_IDS_CF: &str = "item_ids";
const CATALOGUE_CF: &str = "catalogue";
const DEDUP_CF: &str = "dedup";
const OFFSETS_CF: &str = "offsets";
const NEIGHBOURS_CF: &str = "neighbours";
const ERASED_CF: &str = "erased";
const OUTBOX_CF: &str = "outbox";
const ITEM_OFFSET_PREFIX: &[u8] = b"items";
const CHANGE_OFFSET_KEY: &[u8] = b"changes";
const SHIPPED_KEY: &[u8] = b"shipped";
const DIMENSION_KEY: &[u8] = b"dimension";
/// Present in a state created with the `seen` layout that holds only interactions that left
/// the users' history windows (see [`StateStore::seen_outside_history`]).
const SEEN_LAYOUT_KEY: &[u8] = b"seen_outside_history";

/// One entry of a user's recent history.
#[derive(Debug, Clone, Copy, PartialEq, Encode, Decode)]
pub struct HistoryEntry {
    pub item: u32,
    /// The event's weight in the model (negative for dislikes and low ratings).
    pub weight: f32,
    pub timestamp: i64,
}

/// What the model keeps per user. Its record packs the history into fixed-width bytes (see the
/// `Encode` impl): decoding a long history is a copy, not a varint per field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserState {
    /// Events applied for this user (duplicates excluded).
    pub event_count: u64,
    /// Timestamp of the latest applied event.
    pub last_timestamp: i64,
    /// The user's embedding; empty until the first event with an item vector.
    pub vector: Vec<f32>,
    /// The most recent interactions, oldest first, bounded by the model's history window.
    pub history: Vec<HistoryEntry>,
}

/// Bytes of one packed history entry: item `u32`, weight `f32`, timestamp `i64`, little-endian.
const PACKED_HISTORY_ENTRY: usize = 16;

impl Encode for UserState {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.event_count.encode(encoder)?;
        self.last_timestamp.encode(encoder)?;
        self.vector.encode(encoder)?;
        let mut packed = Vec::with_capacity(self.history.len() * PACKED_HISTORY_ENTRY);
        for entry in &self.history {
            packed.extend_from_slice(&entry.item.to_le_bytes());
            packed.extend_from_slice(&entry.weight.to_le_bytes());
            packed.extend_from_slice(&entry.timestamp.to_le_bytes());
        }
        packed.encode(encoder)
    }
}

impl<Context> Decode<Context> for UserState {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let event_count = u64::decode(decoder)?;
        let last_timestamp = i64::decode(decoder)?;
        let vector = Vec::<f32>::decode(decoder)?;
        let packed = Vec::<u8>::decode(decoder)?;
        if packed.len() % PACKED_HISTORY_ENTRY != 0 {
            return Err(bincode::error::DecodeError::Other(
                "user history: length is not a whole number of entries",
            ));
        }
        let history = packed
            .chunks_exact(PACKED_HISTORY_ENTRY)
            .map(|chunk| HistoryEntry {
                item: u32::from_le_bytes(chunk[0..4].try_into().expect("4 bytes")),
                weight: f32::from_le_bytes(chunk[4..8].try_into().expect("4 bytes")),
                timestamp: i64::from_le_bytes(chunk[8..16].try_into().expect("8 bytes")),
            })
            .collect();
        Ok(UserState {
            event_count,
            last_timestamp,
            vector,
            history,
        })
    }
}

/// One item a user interacted with.
#[derive(Debug, Clone, Copy, PartialEq, Default, Encode, Decode)]
pub struct SeenEntry {
    pub interactions: u32,
    pub last_weight: f32,
    pub last_timestamp: i64,
}

impl SeenEntry {
    /// Counts one more interaction, of `weight` at `timestamp`, as the last.
    pub fn record(&mut self, weight: f32, timestamp: i64) {
        self.interactions += 1;
        self.last_weight = weight;
        self.last_timestamp = timestamp;
    }
}

/// What the model keeps per item.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ItemState {
    pub item_id: String,
    pub vector: Vec<f32>,
    /// Time-decayed popularity, as of `popularity_at`.
    pub popularity: f32,
    pub popularity_at: i64,
    pub event_count: u64,
    /// Total weight of the positive events on this item, as the co-occurrence model counts it.
    pub mass: f32,
}

/// Settings of the state store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Embedding dimension; fixed when the state is created.
    pub dimension: usize,
    /// How long an applied `event_id` is remembered for de-duplication.
    pub dedup_window: Duration,
    /// Shared block cache size.
    pub block_cache_bytes: usize,
}

/// Handle to the state database. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    path: PathBuf,
    dimension: usize,
    seen_outside_history: bool,
    /// Serialized write batches, kept while recording (benchmarks only).
    recorded: parking_lot::Mutex<Option<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn base_options(cache: &Cache, bloom: bool) -> Options {
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

/// `seen` (by item number) with the interactions of `history` added, oldest first, as the
/// column family's merge adds them: interactions counted, the last weight and time kept.
fn add_history(seen: Vec<(u32, SeenEntry)>, history: &[HistoryEntry]) -> Vec<(u32, SeenEntry)> {
    let mut all: std::collections::BTreeMap<u32, SeenEntry> = seen.into_iter().collect();
    for past in history {
        all.entry(past.item)
            .or_default()
            .record(past.weight, past.timestamp);
    }
    all.into_iter().collect()
}

fn user_prefix(user_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.len() + 5);
    key.extend_from_slice(user_id.as_bytes());
    key.push(0);
    key
}

fn seen_key(user_id: &str, item: u32) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(&item.to_be_bytes());
    key
}

fn item_offset_key(partition: u32) -> Vec<u8> {
    let mut key = ITEM_OFFSET_PREFIX.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn dedup_key(user_id: &str, event_id: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// Every column family of the state, for figures summed over all of them.
const ALL_CFS: [&str; 11] = [
    rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
    USERS_CF,
    SEEN_CF,
    ITEMS_CF,
    ITEM_IDS_CF,
    CATALOGUE_CF,
    DEDUP_CF,
    OFFSETS_CF,
    NEIGHBOURS_CF,
    ERASED_CF,
    OUTBOX_CF,
];

impl StateStore {
    /// An integer RocksDB property (`rocksdb.estimate-live-data-size`, …) summed over every
    /// column family; 0 where RocksDB does not know it.
    pub fn property_sum(&self, property: &str) -> u64 {
        ALL_CFS
            .iter()
            .filter_map(|name| self.inner.db.cf_handle(name))
            .filter_map(|cf| {
                self.inner
                    .db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Opens (or creates) the state at `path`.
    pub fn open(path: impl AsRef<Path>, config: &StoreConfig) -> Result<StateStore> {
        let path = path.as_ref().to_path_buf();
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let mut db_options = base_options(&cache, false);
        db_options.set_max_background_jobs(2);
        // As in the log: an erased user's id may be a file boundary in the MANIFEST, which
        // RocksDB rewrites at every start and when it reaches this size.
        db_options.set_max_manifest_file_size(4 << 20);
        let descriptors = descriptors(&cache, config);
        let db = DB::open_cf_descriptors(&db_options, &path, descriptors)?;
        match db.get(DIMENSION_KEY)? {
            Some(bytes) => {
                let existing = bytes
                    .as_slice()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .unwrap_or(0) as usize;
                if existing != config.dimension {
                    return Err(Error::DimensionMismatch {
                        path: path.display().to_string(),
                        existing,
                        requested: config.dimension,
                    });
                }
            }
            None => {
                // A new state: its `seen` column family takes only what leaves the histories.
                let mut sync = WriteOptions::default();
                sync.set_sync(true);
                let mut batch = WriteBatch::default();
                batch.put(DIMENSION_KEY, (config.dimension as u32).to_be_bytes());
                batch.put(SEEN_LAYOUT_KEY, [1]);
                db.write_opt(batch, &sync)?;
            }
        }
        let seen_outside_history = db.get(SEEN_LAYOUT_KEY)?.is_some();
        Ok(StateStore {
            inner: Arc::new(Inner {
                db,
                path,
                dimension: config.dimension,
                seen_outside_history,
                recorded: parking_lot::Mutex::new(None),
            }),
        })
    }

    /// Opens the state at `primary` read-only, as a RocksDB secondary instance (its own files in
    /// `secondary_dir`), beside the node that writes it: what was committed up to the call.
    /// Writes fail. For reading the catalogue and the erasure list of a live node (replay).
    pub fn open_secondary(
        primary: impl AsRef<Path>,
        secondary_dir: impl AsRef<Path>,
        config: &StoreConfig,
    ) -> Result<StateStore> {
        let path = primary.as_ref().to_path_buf();
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let mut db_options = base_options(&cache, false);
        db_options.create_if_missing(false);
        db_options.set_max_open_files(-1);
        let db = DB::open_cf_descriptors_as_secondary(
            &db_options,
            &path,
            &secondary_dir.as_ref().to_path_buf(),
            descriptors(&cache, config),
        )?;
        db.try_catch_up_with_primary()?;
        let dimension = db
            .get(DIMENSION_KEY)?
            .and_then(|bytes| bytes.as_slice().try_into().ok().map(u32::from_be_bytes))
            .map_or(config.dimension, |dimension| dimension as usize);
        let seen_outside_history = db.get(SEEN_LAYOUT_KEY)?.is_some();
        Ok(StateStore {
            inner: Arc::new(Inner {
                db,
                path,
                dimension,
                seen_outside_history,
                recorded: parking_lot::Mutex::new(None),
            }),
        })
    }

    /// Writes a consistent copy of the state to `dir` (which must not exist): a RocksDB
    /// checkpoint, so the consumer offsets in it are exactly those of the state in it.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.inner.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// Embedding dimension of this state.
    pub fn dimension(&self) -> usize {
        self.inner.dimension
    }

    fn cf_handle(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        self.inner
            .db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn get_record<T: Decode<()>>(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<T>> {
        let Some(bytes) = self.inner.db.get_pinned_cf(self.cf_handle(cf_name), key)? else {
            return Ok(None);
        };
        decode_record(&bytes)
            .map(Some)
            .map_err(|source| Error::CorruptRecord {
                column_family: cf_name,
                key: String::from_utf8_lossy(key).into_owned(),
                source,
            })
    }

    /// Values of many keys of one column family in one RocksDB `MultiGet` (cheaper than as
    /// many point reads: one pass over the memtable and the files for the sorted keys), in the
    /// order asked.
    fn multi_get(&self, cf_name: &'static str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|a, b| keys[*a].cmp(&keys[*b]));
        let sorted: Vec<&[u8]> = order.iter().map(|at| keys[*at].as_slice()).collect();
        let values = self
            .inner
            .db
            .batched_multi_get_cf(self.cf_handle(cf_name), &sorted, true);
        let mut answers: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        for (at, value) in order.into_iter().zip(values) {
            answers[at] = value?.map(|bytes| bytes.to_vec());
        }
        Ok(answers)
    }

    /// Records of many keys of one column family (one `MultiGet`), in the order asked.
    fn get_records<T: Decode<()>>(
        &self,
        cf_name: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<T>>> {
        self.multi_get(cf_name, keys)?
            .into_iter()
            .zip(keys)
            .map(|(value, key)| {
                value
                    .map(|bytes| {
                        decode_record(&bytes).map_err(|source| Error::CorruptRecord {
                            column_family: cf_name,
                            key: String::from_utf8_lossy(key).into_owned(),
                            source,
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    /// The states of many users (one `MultiGet`), in the order asked.
    pub fn users(&self, user_ids: &[&str]) -> Result<Vec<Option<UserState>>> {
        let keys: Vec<Vec<u8>> = user_ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        self.get_records(USERS_CF, &keys)
    }

    /// Seen entries of many `(user, item)` pairs (one `MultiGet`), in the order asked.
    pub fn seen_entries(&self, pairs: &[(&str, u32)]) -> Result<Vec<Option<SeenEntry>>> {
        let keys: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(user_id, item)| seen_key(user_id, *item))
            .collect();
        self.get_records(SEEN_CF, &keys)
    }

    /// For many `(user, event_id)` pairs (one `MultiGet`), whether each was already applied
    /// within the de-duplication window.
    pub fn applied(&self, events: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys: Vec<Vec<u8>> = events
            .iter()
            .map(|(user_id, event_id)| dedup_key(user_id, event_id))
            .collect();
        Ok(self
            .multi_get(DEDUP_CF, &keys)?
            .iter()
            .map(Option::is_some)
            .collect())
    }

    /// A user's state, or `None` for a user without applied events.
    pub fn user(&self, user_id: &str) -> Result<Option<UserState>> {
        self.get_record(USERS_CF, user_id.as_bytes())
    }

    /// Whether the `seen` column family holds only the interactions that left the users'
    /// history windows (states created since that layout; the history holds the rest), rather
    /// than every interaction (older states, which keep their layout).
    ///
    /// Catching up, most users' events all fit in their history (500 events by default), so a
    /// state of this layout writes no `seen` entry for them: a third fewer memtable inserts.
    pub fn seen_outside_history(&self) -> bool {
        self.inner.seen_outside_history
    }

    /// Every item the user interacted with, by item number (reads the user's state).
    pub fn seen_items(&self, user_id: &str) -> Result<Vec<(u32, SeenEntry)>> {
        let state = self.user(user_id)?;
        self.seen_with(user_id, state.as_ref())
    }

    /// Every item the user interacted with, by item number, given the user's state (`None`:
    /// no state). A user whose every event is still in the history needs no read of the
    /// column family.
    pub fn seen_with(
        &self,
        user_id: &str,
        state: Option<&UserState>,
    ) -> Result<Vec<(u32, SeenEntry)>> {
        match state {
            Some(state) if state.event_count == state.history.len() as u64 => {
                Ok(add_history(Vec::new(), &state.history))
            }
            Some(state) if self.inner.seen_outside_history => {
                Ok(add_history(self.seen_column(user_id)?, &state.history))
            }
            _ => self.seen_column(user_id),
        }
    }

    /// The user's entries in the `seen` column family, by item number.
    fn seen_column(&self, user_id: &str) -> Result<Vec<(u32, SeenEntry)>> {
        let prefix = user_prefix(user_id);
        let mut seen = Vec::new();
        // The user's keys end before `user_id` + 0x01: with that bound the iterator neither
        // reads nor opens anything past them.
        let mut options = ReadOptions::default();
        let mut bound = prefix.clone();
        *bound.last_mut().expect("a prefix ends with its separator") = 1;
        options.set_iterate_upper_bound(bound);
        let iterator = self.inner.db.iterator_cf_opt(
            self.cf_handle(SEEN_CF),
            options,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for entry in iterator {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(item_bytes) = key
                .get(prefix.len()..)
                .and_then(|rest| rest.try_into().ok())
            else {
                continue;
            };
            let item = u32::from_be_bytes(item_bytes);
            let entry: SeenEntry =
                decode_record(&value).map_err(|source| Error::CorruptRecord {
                    column_family: SEEN_CF,
                    key: format!("{user_id}/{item}"),
                    source,
                })?;
            seen.push((item, entry));
        }
        Ok(seen)
    }

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
                Ok((sequence, value.into_vec()))
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
            let item = decode_record(&value).map_err(|source| Error::CorruptRecord {
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
        self.get_record(CATALOGUE_CF, item_id.as_bytes())
    }

    /// Writes catalogue entries and their item numbers durably (synced) in one batch.
    pub fn put_catalogue(&self, entries: &[(Item, u32)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (item, number) in entries {
            let bytes = encode_record(item).map_err(|source| Error::Encode {
                column_family: CATALOGUE_CF,
                source,
            })?;
            batch.put_cf(self.cf_handle(CATALOGUE_CF), item.item_id.as_bytes(), bytes);
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

    /// The `event_id`s applied for `user_id` and when, within the de-duplication window.
    pub fn applied_events(&self, user_id: &str) -> Result<Vec<(String, i64)>> {
        let prefix = user_prefix(user_id);
        let mut found = Vec::new();
        for item in self.inner.db.iterator_cf(
            self.cf_handle(DEDUP_CF),
            IteratorMode::From(&prefix, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let event_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let at = <[u8; 8]>::try_from(value.as_ref())
                .map(i64::from_be_bytes)
                .unwrap_or(0);
            found.push((event_id, at));
        }
        Ok(found)
    }

    /// Writes a batch atomically and syncs it before returning (erasures, which are answered
    /// as done).
    pub fn commit_synced(&self, batch: StateBatch) -> Result<()> {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.inner.db.write_opt(batch.batch, &sync)?;
        Ok(())
    }

    /// Flushes every column family and compacts each fully, so overwritten and deleted values
    /// (an erased user's) leave the files now. Seconds to minutes on a large state: for
    /// erasures that must be physical at once, and for tests.
    pub fn compact_all(&self) -> Result<()> {
        let db = &self.inner.db;
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in ALL_CFS {
            if let Some(cf) = db.cf_handle(name) {
                db.flush_cf(cf)?;
                db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &options);
            }
        }
        Ok(())
    }

    /// Compacts the key ranges of `user_id` in `users`, `seen` and `dedup` in the background, so
    /// the bytes of an erased user's rows leave the SST files within seconds.
    pub fn compact_user_in_background(&self, user_id: &str) {
        let prefix = user_prefix(user_id);
        let mut end = prefix.clone();
        *end.last_mut().expect("the prefix ends with its separator") += 1;
        let mut user_end = user_id.as_bytes().to_vec();
        user_end.push(0);
        let store = self.clone();
        let user_start = user_id.as_bytes().to_vec();
        let spawned = std::thread::Builder::new()
            .name("state-erase-compaction".into())
            .spawn(move || {
                let db = &store.inner.db;
                let mut options = rocksdb::CompactOptions::default();
                options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                db.compact_range_cf_opt(
                    store.cf_handle(USERS_CF),
                    Some(&user_start),
                    Some(&user_end),
                    &options,
                );
                for cf_name in [SEEN_CF, DEDUP_CF] {
                    db.compact_range_cf_opt(
                        store.cf_handle(cf_name),
                        Some(&prefix),
                        Some(&end),
                        &options,
                    );
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "could not start the erasure compaction; RocksDB will compact later");
        }
    }

    /// The files of the column families a query reads (`users` and `seen`), for reading them
    /// ahead into the page cache with [`warm_files`].
    pub fn query_files(&self) -> Result<Vec<PathBuf>> {
        Ok(self
            .inner
            .db
            .live_files()?
            .into_iter()
            .filter(|file| {
                file.column_family_name == USERS_CF || file.column_family_name == SEEN_CF
            })
            .map(|file| self.inner.path.join(file.name.trim_start_matches('/')))
            .collect())
    }

    /// Flushes every column family: a user's erased rows leave the memtables and so the
    /// write-ahead log files, which RocksDB then deletes.
    pub fn flush_all(&self) -> Result<()> {
        for name in ALL_CFS {
            if let Some(cf) = self.inner.db.cf_handle(name) {
                self.inner.db.flush_cf(cf)?;
            }
        }
        Ok(())
    }

    /// Starts a batch of processor writes.
    pub fn batch(&self) -> StateBatch {
        StateBatch {
            store: self.clone(),
            batch: WriteBatch::default(),
        }
    }

    /// Writes a processor batch atomically (write-ahead logged, not synced; see the module docs).
    pub fn commit(&self, batch: StateBatch) -> Result<()> {
        if let Some(recorded) = self.inner.recorded.lock().as_mut() {
            recorded.push(batch.batch.data().to_vec());
        }
        self.inner.db.write(batch.batch)?;
        Ok(())
    }

    /// Starts keeping a copy of every committed batch, for [`StateStore::take_recorded`]. For
    /// the storage-ceiling benchmark: the same records, written raw to another store.
    pub fn record_commits(&self) {
        *self.inner.recorded.lock() = Some(Vec::new());
    }

    /// The batches committed since [`StateStore::record_commits`], serialized; stops recording.
    pub fn take_recorded(&self) -> Vec<Vec<u8>> {
        self.inner.recorded.lock().take().unwrap_or_default()
    }

    /// Writes a serialized batch (from [`StateStore::take_recorded`] of a store with the same
    /// column families) as it is: RocksDB's cost alone, for the ceiling benchmark.
    pub fn write_raw(&self, data: &[u8]) -> Result<()> {
        self.inner.db.write(rocksdb::WriteBatch::from_data(data))?;
        Ok(())
    }
}

/// Writes of one processor batch; applied atomically by [`StateStore::commit`].
pub struct StateBatch {
    store: StateStore,
    batch: WriteBatch,
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
        self.batch.put_cf(cf, key, bytes);
        Ok(())
    }

    pub fn put_user(&mut self, user_id: &str, state: &UserState) -> Result<()> {
        self.put_record(USERS_CF, user_id.as_bytes(), state)
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
        self.batch.merge_cf(cf, seen_key(user_id, item), bytes);
        Ok(())
    }

    /// Adds `delta` to `item`'s stored state (a merge operand; see [`crate::delta`]).
    pub fn merge_item(&mut self, item: u32, delta: &ItemDelta) -> Result<()> {
        let bytes = encode_record(delta).map_err(|source| Error::Encode {
            column_family: ITEMS_CF,
            source,
        })?;
        let cf = self.store.cf_handle(ITEMS_CF);
        self.batch.merge_cf(cf, item.to_be_bytes(), bytes);
        Ok(())
    }

    /// Appends `additions` (in the order they were applied in memory) to `item`'s
    /// co-occurrence list.
    pub fn add_neighbours(&mut self, item: u32, additions: &[(u32, f32)]) {
        let cf = self.store.cf_handle(NEIGHBOURS_CF);
        self.batch
            .merge_cf(cf, item.to_be_bytes(), encode_pairs(additions));
    }

    pub fn put_item_id(&mut self, item_id: &str, item: u32) {
        let cf = self.store.cf_handle(ITEM_IDS_CF);
        self.batch
            .put_cf(cf, item_id.as_bytes(), item.to_be_bytes());
    }

    /// Records that `event_id` was applied for `user_id` now.
    pub fn mark_applied(&mut self, user_id: &str, event_id: &str) {
        let cf = self.store.cf_handle(DEDUP_CF);
        self.batch
            .put_cf(cf, dedup_key(user_id, event_id), now_ms().to_be_bytes());
    }

    /// Deletes everything stored under `user_id`: its state, seen items and applied event ids.
    pub fn delete_user(&mut self, user_id: &str) {
        let prefix = user_prefix(user_id);
        let mut end = prefix.clone();
        *end.last_mut().expect("the prefix ends with its separator") += 1;
        self.batch
            .delete_cf(self.store.cf_handle(USERS_CF), user_id.as_bytes());
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

/// Every column family of the state with its options.
fn descriptors(cache: &Cache, config: &StoreConfig) -> Vec<ColumnFamilyDescriptor> {
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
    neighbours_options.set_merge_operator(
        "neighbour_additions",
        |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
            crate::neighbours::merge(existing, operands.iter())
        },
        |_key: &[u8], _existing: Option<&[u8]>, operands: &MergeOperands| {
            // Additions are replayed in order, so consecutive operands concatenate.
            Some(operands.iter().flatten().copied().collect())
        },
    );
    let mut seen_options = base_options(cache, true);
    seen_options.set_merge_operator(
        "seen_interactions",
        |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
            merge_seen(existing, operands.iter())
        },
        |_key: &[u8], _existing: Option<&[u8]>, operands: &MergeOperands| {
            merge_seen(None, operands.iter())
        },
    );
    let mut items_options = base_options(cache, false);
    let dimension = config.dimension;
    items_options.set_merge_operator(
        "item_deltas",
        move |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
            crate::delta::merge_full(existing, operands.iter(), dimension)
        },
        |_key: &[u8], _existing: Option<&[u8]>, operands: &MergeOperands| {
            crate::delta::merge_partial(operands.iter())
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
    ]
}

/// Reads `files` once, front to back, and drops what it read: the operating system keeps them
/// in its page cache, so the first queries after a start on a cold machine do not each wait for
/// the disk (`docs/PERFORMANCE.md`, "Index builds yield to queries"). Needs no open state, so
/// it may run beside a node that stops meanwhile; a file a compaction removed is passed over.
/// Returns the bytes read.
pub fn warm_files(files: &[PathBuf]) -> Result<u64> {
    let mut read = 0;
    for path in files {
        let copied = std::fs::File::open(path)
            .and_then(|mut opened| std::io::copy(&mut opened, &mut std::io::sink()));
        match copied {
            Ok(bytes) => read += bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::ReadFile {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_config() -> StoreConfig {
        StoreConfig {
            dimension: 2,
            dedup_window: std::time::Duration::from_secs(3600),
            block_cache_bytes: 1 << 20,
        }
    }

    #[test]
    fn a_user_record_round_trips_with_its_packed_history() {
        let state = UserState {
            event_count: 3,
            last_timestamp: -5,
            vector: vec![0.5, -1.25],
            history: vec![
                HistoryEntry {
                    item: 7,
                    weight: -0.75,
                    timestamp: 1_700_000_000_123,
                },
                HistoryEntry {
                    item: u32::MAX,
                    weight: 1.0,
                    timestamp: i64::MIN,
                },
            ],
        };
        let bytes = encode_record(&state).unwrap();
        assert_eq!(decode_record::<UserState>(&bytes).unwrap(), state);
        // A history that is not a whole number of entries is an error, not a shorter history:
        // one entry's 16 bytes, cut to 15, with the length prefix (one byte) saying 15.
        let mut cut = UserState::default();
        cut.history.push(state.history[0]);
        let mut bytes = encode_record(&cut).unwrap();
        bytes.pop();
        let length_at = bytes.len() - 16;
        assert_eq!(bytes[length_at], 16);
        bytes[length_at] = 15;
        let error = decode_record::<UserState>(&bytes).unwrap_err().to_string();
        assert!(error.contains("whole number of entries"), "{error}");
    }

    #[test]
    fn the_files_read_ahead_are_those_of_the_users_and_seen_column_families() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), &test_config()).unwrap();
        assert!(
            store.query_files().unwrap().is_empty(),
            "nothing flushed yet"
        );
        let mut batch = store.batch();
        for n in 0..1000u64 {
            let state = UserState {
                event_count: n,
                ..UserState::default()
            };
            batch.put_user(&format!("u{n}"), &state).unwrap();
        }
        batch.put_offset(0, 1000);
        store.commit(batch).unwrap();
        store.flush_all().unwrap();
        let files = store.inner.db.live_files().unwrap();
        let users_bytes: usize = files
            .iter()
            .filter(|file| file.column_family_name == USERS_CF)
            .map(|file| file.size)
            .sum();
        assert!(users_bytes > 0);
        assert!(
            files
                .iter()
                .any(|file| file.column_family_name == OFFSETS_CF),
            "a flushed column family the queries do not read"
        );
        let query_files = store.query_files().unwrap();
        assert_eq!(warm_files(&query_files).unwrap(), users_bytes as u64);
    }

    #[test]
    fn batched_reads_answer_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), &test_config()).unwrap();
        let user = |count: u64| UserState {
            event_count: count,
            ..UserState::default()
        };
        let seen = |interactions: u32| SeenEntry {
            interactions,
            last_weight: 1.0,
            last_timestamp: 0,
        };
        let mut batch = store.batch();
        batch.put_user("carol", &user(3)).unwrap();
        batch.put_user("alice", &user(1)).unwrap();
        batch.add_seen("carol", 9, &seen(2)).unwrap();
        batch.add_seen("alice", 4, &seen(5)).unwrap();
        batch.mark_applied("carol", "e2");
        batch.mark_applied("alice", "e1");
        store.commit(batch).unwrap();

        let users = store.users(&["carol", "zed", "alice"]).unwrap();
        let counts: Vec<Option<u64>> = users
            .iter()
            .map(|state| state.as_ref().map(|state| state.event_count))
            .collect();
        assert_eq!(counts, vec![Some(3), None, Some(1)]);
        let entries = store
            .seen_entries(&[("carol", 4), ("carol", 9), ("alice", 4)])
            .unwrap();
        let interactions: Vec<Option<u32>> = entries
            .iter()
            .map(|entry| entry.map(|entry| entry.interactions))
            .collect();
        assert_eq!(interactions, vec![None, Some(2), Some(5)]);

        // A later batch adds to the stored entry without reading it.
        let mut batch = store.batch();
        let later = SeenEntry {
            interactions: 3,
            last_weight: -0.5,
            last_timestamp: 9,
        };
        batch.add_seen("carol", 9, &later).unwrap();
        store.commit(batch).unwrap();
        assert_eq!(
            store.seen_entries(&[("carol", 9)]).unwrap(),
            vec![Some(SeenEntry {
                interactions: 5,
                ..later
            })]
        );
        assert_eq!(
            store.seen_items("carol").unwrap(),
            vec![(
                9,
                SeenEntry {
                    interactions: 5,
                    ..later
                }
            )]
        );
        assert_eq!(
            store
                .applied(&[("carol", "e2"), ("alice", "e2"), ("alice", "e1")])
                .unwrap(),
            vec![true, false, true]
        );
    }

    #[test]
    fn seen_items_join_the_column_family_and_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config();
        let store = StateStore::open(dir.path(), &config).unwrap();
        assert!(store.seen_outside_history(), "a new state takes the layout");
        let past = |item: u32, weight: f32, timestamp: i64| HistoryEntry {
            item,
            weight,
            timestamp,
        };
        // Three events: item 9 at time 5 left the window; 4 and 9 again are in it.
        let state = UserState {
            event_count: 3,
            history: vec![past(4, 1.0, 10), past(9, 0.5, 20)],
            ..UserState::default()
        };
        let mut batch = store.batch();
        batch.put_user("carol", &state).unwrap();
        let left = SeenEntry {
            interactions: 1,
            last_weight: -1.0,
            last_timestamp: 5,
        };
        batch.add_seen("carol", 9, &left).unwrap();
        store.commit(batch).unwrap();
        let entry = |interactions: u32, last_weight: f32, last_timestamp: i64| SeenEntry {
            interactions,
            last_weight,
            last_timestamp,
        };
        let joined = vec![(4, entry(1, 1.0, 10)), (9, entry(2, 0.5, 20))];
        assert_eq!(store.seen_items("carol").unwrap(), joined);
        assert_eq!(store.seen_with("carol", Some(&state)).unwrap(), joined);

        // Every event in the window: the history alone, the column family not read.
        let whole = UserState {
            event_count: 2,
            ..state.clone()
        };
        assert_eq!(
            store.seen_with("carol", Some(&whole)).unwrap(),
            vec![(4, entry(1, 1.0, 10)), (9, entry(1, 0.5, 20))]
        );

        // A state of the older layout holds every interaction in the column family, which
        // is then read alone.
        store.inner.db.delete(SEEN_LAYOUT_KEY).unwrap();
        drop(store);
        let store = StateStore::open(dir.path(), &config).unwrap();
        assert!(
            !store.seen_outside_history(),
            "an existing state keeps its layout"
        );
        assert_eq!(store.seen_items("carol").unwrap(), vec![(9, left)]);
    }
}
