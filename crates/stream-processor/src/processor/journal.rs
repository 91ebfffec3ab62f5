//! The erasure journal applied at start (see [`crate::journal`]): the erasures a state lacks
//! — it was restored from an older backup, replayed from the log, or rebuilt empty — done
//! again, before the processor applies any event.

use std::collections::HashMap;

use marquee_ingest::EventLog;
use marquee_schemas::partition_for_user;
use tracing::info;

use super::Processor;
use super::handle::erasure_hash;
use crate::error::Result;

/// Log entries read at a time while looking for journalled users.
const SCAN_BATCH: usize = 10_000;

/// What [`Processor::apply_erasure_journal`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalApplied {
    /// Erased users in the journal.
    pub journalled: usize,
    /// Of those, erasures the state did not hold.
    pub missing: usize,
    /// Of those, users found in the state or in the log, and erased again.
    pub erased_again: usize,
}

impl<L: EventLog> Processor<L> {
    /// Applies the erasure journal to the state: every journalled erasure the state's erasure
    /// list lacks (or holds with an earlier time) is done again at its journalled time. The
    /// users are found by their keyed hash — the journal holds no id: first among the users
    /// with a state (a key-only pass, one HMAC each), then, for those still not found, among
    /// the events of the log's partitions this node applies. A user found is erased as an
    /// erasure request would (state, contributions, the log's copies of the events appended
    /// until the erasure); one found nowhere joins the erasure list, so events of theirs that
    /// a log still holds are never applied.
    ///
    /// Cost: nothing beyond reading the journal when the state holds every erasure, which is
    /// the case at every start but the first after a state was replaced.
    pub fn apply_erasure_journal(&mut self) -> Result<JournalApplied> {
        let Some(journal) = self.config.erasure_journal.clone() else {
            return Ok(JournalApplied::default());
        };
        let latest = journal.erasures()?;
        let mut missing: HashMap<[u8; 32], i64> = {
            let erased = self.handle.inner.erased.read();
            latest
                .iter()
                .filter(|(hash, at)| erased.get(*hash).is_none_or(|known| known < *at))
                .map(|(hash, at)| (*hash, *at))
                .collect()
        };
        let mut applied = JournalApplied {
            journalled: latest.len(),
            missing: missing.len(),
            erased_again: 0,
        };
        if missing.is_empty() {
            return Ok(applied);
        }
        let started = std::time::Instant::now();
        let key = self.config.erasure_key;
        let partitions = self.log.partition_count();
        let owned = self.owned.clone();
        let mut found: Vec<(String, [u8; 32], i64)> = Vec::new();
        let mut look = |user_id: &str, missing: &mut HashMap<[u8; 32], i64>| {
            if owned.contains(&partition_for_user(user_id, partitions)) {
                let hash = erasure_hash(&key, user_id);
                if let Some(at) = missing.remove(&hash) {
                    found.push((user_id.to_owned(), hash, at));
                }
            }
        };
        self.store.for_each_user_id(|user_id| {
            look(user_id, &mut missing);
            !missing.is_empty()
        })?;
        let ends = self.log.end_offsets()?;
        for &partition in &owned {
            let end = ends.get(partition as usize).copied().unwrap_or(0);
            let mut offset = 0;
            while offset < end && !missing.is_empty() {
                let read = self.log.read(partition, offset, SCAN_BATCH)?;
                for entry in &read.entries {
                    look(&entry.event.user_id, &mut missing);
                }
                if read.next_offset <= offset {
                    break;
                }
                offset = read.next_offset;
            }
        }
        for (user_id, hash, at) in found {
            self.erase_at(&user_id, hash, at)?;
            applied.erased_again += 1;
        }
        if !missing.is_empty() {
            let mut batch = self.store.batch();
            for (hash, at) in &missing {
                batch.put_erasure(hash, *at);
            }
            self.store.commit_synced(batch)?;
            self.handle.inner.erased.write().extend(missing);
        }
        info!(
            journalled = applied.journalled,
            missing = applied.missing,
            erased_again = applied.erased_again,
            seconds = started.elapsed().as_secs_f64(),
            "erasure journal applied to a state that lacked some of it"
        );
        Ok(applied)
    }
}
