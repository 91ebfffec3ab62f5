//! The processor's side: each batch's impressions and attributed events, applied to working
//! copies of the list and user records and committed in the batch's own write, so attribution
//! is exactly once like every other effect of an event (and a replay rebuilds it).
//!
//! - An **impression** names its list by `recommendation_id`. An id this node did not mint for
//!   the event's user is `unknown_list` (counted, nothing else). The first impression of a list
//!   records it with the group of every experiment that was running when the list was served
//!   (the id says when; by the assignment hash, as the list was served), so a replay attributes
//!   a stopped experiment's lists as they were; each of those users' records counts one
//!   impression. A list shown again counts nothing more.
//! - An **event with a `recommendation_id`** (a click, a watch, a rating, a like…) counts for
//!   that list's groups: the list's first click, its first watch, and every positive event.
//!   Without an impression of the list it is `no_impression`; later than the experiment's
//!   attribution window after the list was served, `expired`.

use foldhash::{HashMap, HashMapExt};
use marquee_schemas::{Event, EventKind};
use marquee_vector_store::{StateBatch, StateStore};

use super::records::{
    ListRecord, POSITION_BUCKETS, UserRecord, decode, encode, list_key, user_key,
};
use super::{Definitions, recommendation_id};
use crate::error::Result;
use crate::telemetry::Metrics;

/// A batch's attribution work.
pub(crate) struct Attribution<'a> {
    definitions: &'a Definitions,
    key: &'a [u8; 32],
    lists: HashMap<Vec<u8>, Option<ListRecord>>,
    users: HashMap<Vec<u8>, UserRecord>,
    changed_lists: Vec<Vec<u8>>,
    /// `(experiment, group, kind)` of every count made, for the metrics.
    counted: Vec<(String, String, EventKind)>,
    /// `(kind, reason)` of every event not attributed.
    unattributed: Vec<(EventKind, &'static str)>,
}

impl<'a> Attribution<'a> {
    pub(crate) fn new(definitions: &'a Definitions, key: &'a [u8; 32]) -> Attribution<'a> {
        Attribution {
            definitions,
            key,
            lists: HashMap::new(),
            users: HashMap::new(),
            changed_lists: Vec::new(),
            counted: Vec::new(),
            unattributed: Vec::new(),
        }
    }

    /// Whether an event has anything to attribute (an impression, or a list named).
    pub(crate) fn concerns(event: &Event) -> bool {
        event.kind == EventKind::Impression || event.recommendation_id().is_some()
    }

    /// Applies one event (applied for the first time) with the model's `weight` for it.
    pub(crate) fn apply(&mut self, store: &StateStore, event: &Event, weight: f32) -> Result<()> {
        let Some(id) = event.recommendation_id() else {
            return Ok(());
        };
        let Some(served_ms) = recommendation_id::verify(self.key, &event.user_id, id) else {
            self.unattributed.push((event.kind, "unknown_list"));
            return Ok(());
        };
        let key = list_key(id);
        let existing = self.list(store, &key)?;
        match (event.kind, existing) {
            // A list shown again counts nothing more.
            (EventKind::Impression, Some(_)) => Ok(()),
            (EventKind::Impression, None) => self.impression(store, event, key, served_ms),
            (_, None) => {
                self.unattributed.push((event.kind, "no_impression"));
                Ok(())
            }
            (_, Some(list)) => self.outcome(store, event, weight, key, list),
        }
    }

    /// A list's first impression: recorded with its groups, one impression per group's user.
    fn impression(
        &mut self,
        store: &StateStore,
        event: &Event,
        key: Vec<u8>,
        served_ms: i64,
    ) -> Result<()> {
        let groups: Vec<(u64, String)> = self
            .definitions
            .covering(served_ms)
            .map(|experiment| {
                (
                    experiment.id,
                    experiment.group_of(&event.user_id).to_owned(),
                )
            })
            .collect();
        for (experiment_id, group) in &groups {
            let record = self.user(store, *experiment_id, &event.user_id, group)?;
            record.impressions += 1;
            self.count(*experiment_id, group, event.kind);
        }
        let list = ListRecord {
            served_ms,
            groups,
            clicked: false,
            watched: false,
        };
        self.lists.insert(key.clone(), Some(list));
        self.changed_lists.push(key);
        Ok(())
    }

    /// An event from an impressed list: its first click, its first watch, every positive
    /// event, for each group within its experiment's attribution window.
    fn outcome(
        &mut self,
        store: &StateStore,
        event: &Event,
        weight: f32,
        key: Vec<u8>,
        mut list: ListRecord,
    ) -> Result<()> {
        let first_click = event.kind == EventKind::Click && !list.clicked;
        let first_watch = event.kind == EventKind::Watch && !list.watched;
        let mut expired = false;
        for (experiment_id, group) in &list.groups {
            let Some(window) = self
                .definitions
                .experiments
                .iter()
                .find(|experiment| experiment.id == *experiment_id)
                .map(|experiment| experiment.attribution_window_ms)
            else {
                continue; // deleted since
            };
            if event.timestamp - list.served_ms > window {
                expired = true;
                continue;
            }
            let record = self.user(store, *experiment_id, &event.user_id, group)?;
            if first_click {
                record.clicked += 1;
                let bucket = event.position().map_or(POSITION_BUCKETS - 1, |at| {
                    (at as usize).min(POSITION_BUCKETS - 1)
                });
                if record.click_positions.len() < POSITION_BUCKETS {
                    record.click_positions.resize(POSITION_BUCKETS, 0);
                }
                record.click_positions[bucket] += 1;
            }
            if first_watch {
                record.watched += 1;
            }
            if weight > 0.0 {
                record.positives += 1;
            }
            self.count(*experiment_id, group, event.kind);
        }
        if expired {
            self.unattributed.push((event.kind, "expired"));
        }
        if first_click || first_watch {
            list.clicked |= first_click;
            list.watched |= first_watch;
            self.lists.insert(key.clone(), Some(list));
            self.changed_lists.push(key);
        }
        Ok(())
    }

    fn list(&mut self, store: &StateStore, key: &[u8]) -> Result<Option<ListRecord>> {
        if let Some(found) = self.lists.get(key) {
            return Ok(found.clone());
        }
        let found = read_record(store, key)?;
        self.lists.insert(key.to_vec(), found.clone());
        Ok(found)
    }

    fn user(
        &mut self,
        store: &StateStore,
        experiment_id: u64,
        user_id: &str,
        group: &str,
    ) -> Result<&mut UserRecord> {
        let key = user_key(self.key, experiment_id, user_id);
        if !self.users.contains_key(&key) {
            let mut record: UserRecord = read_record(store, &key)?.unwrap_or_default();
            if record.group.is_empty() {
                record.group = group.to_owned();
            }
            self.users.insert(key.clone(), record);
        }
        Ok(self.users.get_mut(&key).expect("inserted above"))
    }

    fn count(&mut self, experiment_id: u64, group: &str, kind: EventKind) {
        if let Some(experiment) = self
            .definitions
            .experiments
            .iter()
            .find(|experiment| experiment.id == experiment_id)
        {
            self.counted
                .push((experiment.name.clone(), group.to_owned(), kind));
        }
    }

    /// Adds the changed records to the batch's write.
    pub(crate) fn write(&self, batch: &mut StateBatch) -> Result<()> {
        let mut keys: Vec<&Vec<u8>> = self.changed_lists.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            if let Some(Some(list)) = self.lists.get(key) {
                batch.put_experiment_entry(key, &encode(list)?);
            }
        }
        let mut users: Vec<(&Vec<u8>, &UserRecord)> = self.users.iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (key, record) in users {
            batch.put_experiment_entry(key, &encode(record)?);
        }
        Ok(())
    }

    /// Counts what the batch attributed, once it is committed.
    pub(crate) fn publish(&self, metrics: &Metrics) {
        for (experiment, group, kind) in &self.counted {
            let counter = if *kind == EventKind::Impression {
                metrics
                    .experiment_impressions
                    .with_label_values(&[experiment.as_str(), group.as_str()])
            } else {
                metrics.experiment_attributed.with_label_values(&[
                    experiment.as_str(),
                    group.as_str(),
                    kind.as_str(),
                ])
            };
            counter.inc();
        }
        for (kind, reason) in &self.unattributed {
            metrics
                .unattributed
                .with_label_values(&[kind.as_str(), reason])
                .inc();
        }
    }
}

/// One record of the experiments column family, decoded.
pub(crate) fn read_record<T: bincode::Decode<()>>(
    store: &StateStore,
    key: &[u8],
) -> Result<Option<T>> {
    store
        .experiment_values(&[key.to_vec()])?
        .into_iter()
        .next()
        .flatten()
        .map(|bytes| decode(key, &bytes))
        .transpose()
}
