//! The state RocksDB instance (`<data-dir>/state`): every column family, key encoding and write
//! option of the model state.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `users` | user_id | [`UserState`]: event count, embedding, recent history |
//! | `seen` | user_id ‖ 0x00 ‖ item number (u32 BE) | [`SeenEntry`] of the interactions that left the user's history window (every interaction in states created before that layout: [`StateStore::seen_outside_history`]); batches add merge operands (interactions summed, the last weight and time kept) |
//! | `items` | item number (u32 BE) | [`ItemState`]: item id, embedding, popularity; batches add [`ItemDelta`] merge operands |
//! | `item_ids` | item_id | item number (u32 BE) |
//! | `catalogue` | item_id | [`Item`] (title, genres, year, tags, licence window, hidden, properties; entries of the layout before windows and properties still decode) |
//! | `dedup` | user_id ‖ 0x00 ‖ event_id | first application time (i64 BE, ms) |
//! | `offsets` | partition (u32 BE) | next log offset to apply (u64 BE) |
//! | `offsets` | `items` ‖ partition (u32 BE) | the partition's offset up to which the item table holds the events' item changes (u64 BE; absent: the next offset above) |
//! | `offsets` | `changes` | next change-log offset to apply (u64 BE) |
//! | `offsets` | `shipped` | the highest outbox sequence shipped (u64 BE) |
//! | `outbox` | sequence (u64 BE) | [`ItemChanges`] of a batch, waiting to be shipped to the change log |
//! | `experiments` | the stream processor's keys | experiments' and flags' definitions and attribution records |
//! | `rules` | the stream processor's keys | the property schema, saved filters, campaigns, deleted items |
//! | `erased` | keyed hash of an erased user_id (HMAC-SHA-256, 32 bytes) | erasure time (i64 BE, ms) |
//! | `default` | `dimension` | floats of an item's stored vectors (u32 BE), fixed at creation |
//! | `default` | `factor_scales` | the scales `σ` of the item vectors' factorisation (f32 LE each), written by each solve |
//! | `default` | `seen_outside_history` | present in states whose `seen` holds only what left the histories |
//!
//! Ids cannot contain control characters, so 0x00 cleanly ends the user part of a key.
//!
//! **Encryption at rest** ([`StoreConfig::cipher`], chosen when the state is created and
//! recorded in `default` under `encryption`): every value of `users`, `seen`, `items`,
//! `neighbours`, `catalogue`, `outbox`, `experiments` and `rules` is sealed
//! ([`marquee_schemas::Cipher::seal`]) on its way in and opened on its way out, merge operands
//! and merge results included; the user part of the `users`, `seen` and `dedup` keys is the
//! user id sealed deterministically ([`marquee_schemas::Cipher::seal_id`]), and so is the event
//! id of a `dedup` key. What stays plain is bookkeeping: offsets, application and erasure
//! times, item numbers by item id, the dimension and the factorisation's scales. Item ids stay
//! plain in keys: they are the catalogue's public ids.
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
//!
//! Every line of RocksDB code of this crate is in this module: [`keys`] names the column
//! families and encodes keys, `options` sets their options and merge operators, [`batch`] is
//! the write side of a processor batch, and `users`, `items` and `offsets` read and write the
//! rows of their column families. The records stored are defined in [`crate::records`].
//!
//! [`UserState`]: crate::records::UserState
//! [`SeenEntry`]: crate::records::SeenEntry
//! [`ItemState`]: crate::records::ItemState
//! [`ItemDelta`]: crate::ItemDelta
//! [`Item`]: marquee_schemas::Item
//! [`ItemChanges`]: crate::ItemChanges

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::borrow::Cow;

use bincode::Decode;
use marquee_schemas::{Cipher, decode_record};
use rocksdb::{Cache, DB, WriteBatch, WriteOptions};

use crate::error::{Error, Result};

pub mod batch;
mod entries;
mod items;
pub mod keys;
mod offsets;
mod options;
mod users;

pub use batch::StateBatch;
pub use entries::{EntryWrite, ExperimentWrite};
use keys::{
    ALL_CFS, DEDUP_CF, DIMENSION_KEY, ENCRYPTION_KEY, MANIFEST_ROLL_KEY, SEEN_CF, SEEN_LAYOUT_KEY,
    USERS_CF, is_sealed, user_prefix,
};
use options::{base_options, descriptors};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Floats of an item's stored vectors (both sides); fixed when the state is created.
    pub dimension: usize,
    /// How long an applied `event_id` is remembered for de-duplication.
    pub dedup_window: Duration,
    /// Shared block cache size.
    pub block_cache_bytes: usize,
    /// Encryption at rest (see the module docs); `None`: values and keys are stored plain.
    /// A state keeps what it was created with.
    pub cipher: Option<Cipher>,
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
    cipher: Option<Cipher>,
    /// Serialized write batches, kept while recording (benchmarks only).
    recorded: parking_lot::Mutex<Option<Vec<Vec<u8>>>>,
    /// Erasure compactions still running ([`StateStore::finish_erasures`] waits for them).
    erasures: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

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
        // The MANIFEST names the first and last key of every file, user ids among them, and
        // RocksDB appends each change of the file set to it: an erased user's id would stay in
        // it as the boundary of a file long compacted away. Past this size RocksDB starts a new
        // one holding only the live files at its next change (and deletes the old), so every
        // change past the first writes a new MANIFEST: a few kilobytes per flush or compaction.
        db_options.set_max_manifest_file_size(1);
        let descriptors = descriptors(&cache, config);
        let db = DB::open_cf_descriptors(&db_options, &path, descriptors)?;
        let created = db.get(DIMENSION_KEY)?.is_none();
        check_encryption(&db, &path, config.cipher.as_ref(), created)?;
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
                if let Some(cipher) = &config.cipher {
                    batch.put(ENCRYPTION_KEY, cipher.seal(ENCRYPTION_CHECK));
                }
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
                cipher: config.cipher.clone(),
                recorded: parking_lot::Mutex::new(None),
                erasures: parking_lot::Mutex::new(Vec::new()),
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
        check_encryption(&db, &path, config.cipher.as_ref(), false)?;
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
                cipher: config.cipher.clone(),
                recorded: parking_lot::Mutex::new(None),
                erasures: parking_lot::Mutex::new(Vec::new()),
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

    /// The key of `user_id`'s row in `users`, and the user part of its keys in `seen` and
    /// `dedup`: the id, sealed when the state is encrypted.
    /// Borrowed in a plain state: the serving and catch-up paths allocate nothing for it.
    pub(super) fn user_key<'a>(&self, user_id: &'a str) -> Cow<'a, [u8]> {
        match &self.inner.cipher {
            Some(cipher) => Cow::Owned(cipher.seal_id(user_id)),
            None => Cow::Borrowed(user_id.as_bytes()),
        }
    }

    /// The user id of a `users` key (see [`StateStore::user_key`]).
    pub(super) fn user_id_of(&self, key: &[u8]) -> Result<String> {
        match &self.inner.cipher {
            Some(cipher) => cipher.open_id(key).map_err(|_| Error::Sealed {
                column_family: USERS_CF,
            }),
            None => Ok(String::from_utf8_lossy(key).into_owned()),
        }
    }

    /// The `dedup` key of `event_id` applied for `user_id`: both ids sealed in an encrypted
    /// state (a client's event ids may well hold its user ids).
    pub(super) fn dedup_key(&self, user_id: &str, event_id: &str) -> Vec<u8> {
        let event_key = match &self.inner.cipher {
            Some(cipher) => cipher.seal_id(event_id),
            None => event_id.as_bytes().to_vec(),
        };
        keys::dedup_key(&self.user_key(user_id), &event_key)
    }

    /// The event id of the event part of a `dedup` key (see [`StateStore::dedup_key`]).
    pub(super) fn event_id_of(&self, event_key: &[u8]) -> Result<String> {
        match &self.inner.cipher {
            Some(cipher) => cipher.open_id(event_key).map_err(|_| Error::Sealed {
                column_family: DEDUP_CF,
            }),
            None => Ok(String::from_utf8_lossy(event_key).into_owned()),
        }
    }

    /// `plain` as the column family `cf_name` stores it: sealed when the state is encrypted
    /// and the column family's values are.
    pub(super) fn seal(&self, cf_name: &str, plain: Vec<u8>) -> Vec<u8> {
        match &self.inner.cipher {
            Some(cipher) if is_sealed(cf_name) => cipher.seal(&plain),
            _ => plain,
        }
    }

    /// A value of `cf_name` as it was written (see [`StateStore::seal`]).
    pub(super) fn open_value<'a>(
        &self,
        cf_name: &'static str,
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>> {
        match &self.inner.cipher {
            Some(cipher) if is_sealed(cf_name) => {
                cipher
                    .open(stored)
                    .map(Cow::Owned)
                    .map_err(|_| Error::Sealed {
                        column_family: cf_name,
                    })
            }
            _ => Ok(Cow::Borrowed(stored)),
        }
    }

    fn get_record<T: Decode<()>>(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<T>> {
        let Some(stored) = self.inner.db.get_pinned_cf(self.cf_handle(cf_name), key)? else {
            return Ok(None);
        };
        let bytes = self.open_value(cf_name, &stored)?;
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
            answers[at] = match value? {
                Some(stored) => Some(self.open_value(cf_name, &stored)?.into_owned()),
                None => None,
            };
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
    /// the bytes of an erased user's rows leave the SST files within seconds, then changes the
    /// file set once more, so the MANIFEST RocksDB then writes names none of the files the
    /// compaction removed (the user's id may have been a boundary of one). A clean stop waits
    /// for it ([`StateStore::finish_erasures`]).
    pub fn compact_user_in_background(&self, user_id: &str) {
        let user_start = self.user_key(user_id).into_owned();
        let prefix = user_prefix(&user_start);
        let mut end = prefix.clone();
        *end.last_mut().expect("the prefix ends with its separator") += 1;
        let user_end = prefix.clone();
        let store = self.clone();
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
                if let Err(error) = store.roll_manifest() {
                    tracing::warn!(%error, "could not roll the state's MANIFEST after an erasure; the next start rewrites it");
                }
            });
        match spawned {
            Ok(handle) => {
                let mut erasures = self.inner.erasures.lock();
                erasures.retain(|running| !running.is_finished());
                erasures.push(handle);
            }
            Err(error) => {
                tracing::warn!(%error, "could not start the erasure compaction; RocksDB will compact later");
            }
        }
    }

    /// One small change of the file set (a flushed marker in `default`), which writes a new
    /// MANIFEST holding the live files only (see [`StateStore::open`]).
    fn roll_manifest(&self) -> Result<()> {
        let db = &self.inner.db;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        db.put(MANIFEST_ROLL_KEY, now.to_be_bytes())?;
        db.flush()?;
        Ok(())
    }

    /// Waits for the erasure compactions still running: once it returns, no file of the state
    /// holds an erased user's id. Part of a clean stop.
    pub fn finish_erasures(&self) {
        let running: Vec<_> = std::mem::take(&mut *self.inner.erasures.lock());
        for handle in running {
            let _ = handle.join();
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

/// What the `encryption` marker of an encrypted state seals: opening it proves the key.
const ENCRYPTION_CHECK: &[u8] = b"marquee state";

/// Refuses a state opened with another encryption choice than it was created with: an
/// encrypted state without its key (or with another), a plain one with a key. `created`: the
/// state is new, and the marker is written with it.
fn check_encryption(db: &DB, path: &Path, cipher: Option<&Cipher>, created: bool) -> Result<()> {
    let path = || path.display().to_string();
    match (db.get(ENCRYPTION_KEY)?, cipher) {
        (Some(_), None) => Err(Error::EncryptedState { path: path() }),
        (Some(marker), Some(cipher)) => match cipher.open(&marker) {
            Ok(check) if check == ENCRYPTION_CHECK => Ok(()),
            _ => Err(Error::WrongEncryptionKey { path: path() }),
        },
        (None, Some(_)) if !created => Err(Error::PlainState { path: path() }),
        (None, _) => Ok(()),
    }
}

/// Reads `files` once, front to back, and drops what it read: the operating system keeps them
/// in its page cache, so the first queries after a start on a cold machine do not each wait for
/// the disk (`docs/PERFORMANCE-JOURNAL.md`, "Index builds yield to queries"). Needs no open state, so
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
mod tests;
