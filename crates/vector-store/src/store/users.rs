//! Users' rows: states, seen items, applied event ids.

use marquee_schemas::decode_record;
use rocksdb::{Direction, IteratorMode, ReadOptions};

use super::StateStore;
use super::keys::{DEDUP_CF, SEEN_CF, USERS_CF, seen_key, user_prefix};
use crate::error::{Error, Result};
use crate::records::{HistoryEntry, SeenEntry, UserState};

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

impl StateStore {
    /// The states of many users (one `MultiGet`), in the order asked.
    pub fn users(&self, user_ids: &[&str]) -> Result<Vec<Option<UserState>>> {
        let keys: Vec<Vec<u8>> = user_ids
            .iter()
            .map(|id| self.user_key(id).into_owned())
            .collect();
        self.get_records(USERS_CF, &keys)
    }

    /// Seen entries of many `(user, item)` pairs (one `MultiGet`), in the order asked.
    pub fn seen_entries(&self, pairs: &[(&str, u32)]) -> Result<Vec<Option<SeenEntry>>> {
        let keys: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(user_id, item)| seen_key(&self.user_key(user_id), *item))
            .collect();
        self.get_records(SEEN_CF, &keys)
    }

    /// Which of `items` one user has entries for in the `seen` column family (one `MultiGet`,
    /// the user's key made once), in the order asked.
    pub fn seen_column_has(&self, user_id: &str, items: &[u32]) -> Result<Vec<bool>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let user_key = self.user_key(user_id);
        let keys: Vec<Vec<u8>> = items
            .iter()
            .map(|item| seen_key(&user_key, *item))
            .collect();
        Ok(self
            .multi_get(SEEN_CF, &keys)?
            .iter()
            .map(Option::is_some)
            .collect())
    }

    /// For many `(user, event_id)` pairs (one `MultiGet`), whether each was already applied
    /// within the de-duplication window.
    pub fn applied(&self, events: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys: Vec<Vec<u8>> = events
            .iter()
            .map(|(user_id, event_id)| self.dedup_key(user_id, event_id))
            .collect();
        Ok(self
            .multi_get(DEDUP_CF, &keys)?
            .iter()
            .map(Option::is_some)
            .collect())
    }

    /// A user's state, or `None` for a user without applied events.
    pub fn user(&self, user_id: &str) -> Result<Option<UserState>> {
        self.get_record(USERS_CF, &self.user_key(user_id))
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

    /// The items the user interacted with, read up to a bound: the history's, and at most
    /// `limit` entries of the `seen` column family (in item-number order). The flag says whether
    /// that is all of them; when it is not, the rest is found by key ([`Self::seen_entries`]).
    ///
    /// A list leaves out what its user has seen, and a seen set grows with every new item a
    /// user touches: read whole on every request, a user with 100,000 items would cost each of
    /// their lists a scan of 100,000 entries.
    pub fn seen_numbers_bounded(
        &self,
        user_id: &str,
        state: Option<&UserState>,
        limit: usize,
    ) -> Result<(Vec<u32>, bool)> {
        let Some(state) = state else {
            return Ok((Vec::new(), true));
        };
        let mut numbers: Vec<u32> = state.history.iter().map(|past| past.item).collect();
        if state.event_count == state.history.len() as u64 {
            return Ok((numbers, true));
        }
        let (column, complete) = self.seen_column_bounded(user_id, limit)?;
        numbers.extend(column.into_iter().map(|(item, _)| item));
        Ok((numbers, complete))
    }

    /// The user's entries in the `seen` column family, by item number.
    fn seen_column(&self, user_id: &str) -> Result<Vec<(u32, SeenEntry)>> {
        Ok(self.seen_column_bounded(user_id, usize::MAX)?.0)
    }

    /// At most `limit` of the user's entries in the `seen` column family, by item number, and
    /// whether that is all of them.
    fn seen_column_bounded(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<(Vec<(u32, SeenEntry)>, bool)> {
        let prefix = user_prefix(&self.user_key(user_id));
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
            let (key, stored) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(item_bytes) = key
                .get(prefix.len()..)
                .and_then(|rest| rest.try_into().ok())
            else {
                continue;
            };
            if seen.len() == limit {
                return Ok((seen, false));
            }
            let item = u32::from_be_bytes(item_bytes);
            let value = self.open_value(SEEN_CF, &stored)?;
            let entry: SeenEntry =
                decode_record(&value).map_err(|source| Error::CorruptRecord {
                    column_family: SEEN_CF,
                    key: format!("{user_id}/{item}"),
                    source,
                })?;
            seen.push((item, entry));
        }
        Ok((seen, true))
    }

    /// The `event_id`s applied for `user_id` and when, within the de-duplication window.
    pub fn applied_events(&self, user_id: &str) -> Result<Vec<(String, i64)>> {
        let prefix = user_prefix(&self.user_key(user_id));
        let mut found = Vec::new();
        for item in self.inner.db.iterator_cf(
            self.cf_handle(DEDUP_CF),
            IteratorMode::From(&prefix, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let event_id = self.event_id_of(&key[prefix.len()..])?;
            let at = <[u8; 8]>::try_from(value.as_ref())
                .map(i64::from_be_bytes)
                .unwrap_or(0);
            found.push((event_id, at));
        }
        Ok(found)
    }

    /// Calls `each` with the id of every user with a state, in key order, without reading
    /// the states (a key-only pass). Stops early when `each` returns `false`.
    pub fn for_each_user_id(&self, mut each: impl FnMut(&str) -> bool) -> Result<()> {
        let mut options = ReadOptions::default();
        // A one-time pass: its blocks need not push the serving path's out of the cache.
        options.fill_cache(false);
        let iterator =
            self.inner
                .db
                .iterator_cf_opt(self.cf_handle(USERS_CF), options, IteratorMode::Start);
        for item in iterator {
            let (key, _) = item?;
            if !each(&self.user_id_of(&key)?) {
                break;
            }
        }
        Ok(())
    }
}
