//! Experiments and feature flags: named variants of the ranking, sticky assignment by a keyed
//! hash, recommendation ids, and the attribution of what viewers did to the lists they saw.
//!
//! - [`definition`]: [`Experiment`], [`Flag`], [`RankingSettings`] (what a variant or a flag
//!   changes: the strategy, the parts that rank, the blend's weights, a genre) and their rules.
//! - [`assign`]: the keyed hash that puts a user in a group, the same on every node and after
//!   every restart, with no table.
//! - [`recommendation_id`]: ids of served lists that say, unforgeably, when and to whom.
//! - `attribution` (the processor's side): impressions and events naming a list, counted per
//!   group and user, exactly once, in the processor's batch.
//! - [`results`]: the statistics of `GET /v1/admin/experiments/{name}/results`.
//!
//! [`Experiments`] is the registry: the definitions live in the state's `experiments` column
//! family (so a restart, a backup and a replay keep them) and in memory behind an `ArcSwap`, so
//! a change is read by the very next request, and a request takes no lock. In a cluster each
//! node holds its own copy, like the catalogue: an operator sends a change to every node.

pub mod assign;
pub(crate) mod attribution;
pub mod definition;
pub mod recommendation_id;
pub mod records;
pub mod results;

use std::sync::Arc;

use arc_swap::ArcSwap;
use marquee_schemas::{FieldError, now_ms};
use marquee_vector_store::StateStore;

pub use definition::{
    DEFAULT_ATTRIBUTION_WINDOW_MS, Experiment, Flag, HOLDOUT, ListStrategy, RankingSettings,
    SourceSet, Status, Variant,
};
pub use results::Results;

use crate::error::{Error, Result};
use records::{EXPERIMENT_PREFIX, FLAG_PREFIX, UserRecord, named_key, user_key, users_prefix};

/// What an operator sends to create or replace an experiment (the rest is the server's).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSpec {
    pub name: String,
    pub description: String,
    pub status: Status,
    pub variants: Vec<Variant>,
    pub holdout: f64,
    /// Default: the first variant.
    pub control: Option<String>,
    /// Default: the name.
    pub salt: Option<String>,
    /// Default: [`DEFAULT_ATTRIBUTION_WINDOW_MS`].
    pub attribution_window_ms: Option<i64>,
}

/// What an operator sends to create or replace a flag.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagSpec {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub rollout_percent: f64,
    pub allow: Vec<String>,
    pub config: Option<RankingSettings>,
    /// Default: the name.
    pub salt: Option<String>,
}

/// Every definition, as one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    /// By name.
    pub experiments: Vec<Arc<Experiment>>,
    /// By name.
    pub flags: Vec<Arc<Flag>>,
}

impl Definitions {
    /// The running experiments, in the order they started (an earlier one's settings win).
    pub fn running(&self) -> impl Iterator<Item = &Experiment> {
        let mut running: Vec<&Experiment> = self
            .experiments
            .iter()
            .map(Arc::as_ref)
            .filter(|experiment| experiment.status == Status::Running)
            .collect();
        running.sort_by(|a, b| (a.started_ms, &a.name).cmp(&(b.started_ms, &b.name)));
        running.into_iter()
    }

    /// The experiments that were running at `served_ms` (started by then, not stopped
    /// before): those a list served then was assigned under.
    pub fn covering(&self, served_ms: i64) -> impl Iterator<Item = &Experiment> {
        self.experiments
            .iter()
            .map(Arc::as_ref)
            .filter(move |experiment| {
                experiment.status != Status::Draft
                    && experiment.started_ms.is_some_and(|at| at <= served_ms)
                    && experiment.stopped_ms.is_none_or(|at| served_ms <= at)
            })
    }

    pub fn experiment(&self, name: &str) -> Option<&Arc<Experiment>> {
        self.experiments
            .iter()
            .find(|experiment| experiment.name == name)
    }

    pub fn flag(&self, name: &str) -> Option<&Arc<Flag>> {
        self.flags.iter().find(|flag| flag.name == name)
    }
}

/// Where a user stands for one request: the group of every running experiment, the flags on,
/// and the ranking settings they add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assignment {
    /// `(experiment, group)`, in the order the experiments started.
    pub groups: Vec<(String, String)>,
    /// The names of the flags on for the user.
    pub flags: Vec<String>,
    /// The experiments' settings (an earlier experiment's win), then the flags' over them.
    pub settings: RankingSettings,
}

/// The registry of experiments and flags. Cheap to clone.
#[derive(Clone)]
pub struct Experiments {
    inner: Arc<Inner>,
}

struct Inner {
    store: StateStore,
    key: [u8; 32],
    current: ArcSwap<Definitions>,
    /// Serialises changes (each reads the snapshot, then writes the store and the snapshot).
    changes: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for Experiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let definitions = self.definitions();
        f.debug_struct("Experiments")
            .field("experiments", &definitions.experiments.len())
            .field("flags", &definitions.flags.len())
            .finish()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid(FieldError::new(field, message))
}

fn load<T: bincode::Decode<()>>(store: &StateStore, prefix: u8) -> Result<Vec<Arc<T>>> {
    store
        .experiment_entries(&[prefix])?
        .into_iter()
        .map(|(key, value)| records::decode(&key, &value).map(Arc::new))
        .collect()
}

/// An experiment from `spec` at `now`, over what the server keeps of the one it replaces
/// (`old`: its id, creation, start, salt and window unless `spec` sets them).
fn build(spec: ExperimentSpec, old: Option<&Experiment>, now: i64) -> Experiment {
    Experiment {
        control: spec
            .control
            .clone()
            .or_else(|| spec.variants.first().map(|variant| variant.name.clone()))
            .unwrap_or_default(),
        salt: spec
            .salt
            .clone()
            .or_else(|| old.map(|old| old.salt.clone()))
            .unwrap_or_else(|| spec.name.clone()),
        attribution_window_ms: spec
            .attribution_window_ms
            .or(old.map(|old| old.attribution_window_ms))
            .unwrap_or(DEFAULT_ATTRIBUTION_WINDOW_MS),
        // Unique per creation: the clock in the high bits, a random low part.
        id: old.map_or_else(
            || ((now as u64) << 16) | u64::from(rand::random::<u16>()),
            |old| old.id,
        ),
        created_ms: old.map_or(now, |old| old.created_ms),
        started_ms: old
            .and_then(|old| old.started_ms)
            .or((spec.status == Status::Running).then_some(now)),
        stopped_ms: match spec.status {
            Status::Stopped => old.and_then(|old| old.stopped_ms).or(Some(now)),
            _ => None,
        },
        updated_ms: now,
        name: spec.name,
        description: spec.description,
        status: spec.status,
        variants: spec.variants,
        holdout: spec.holdout,
    }
}

impl Experiments {
    /// Loads the definitions of `store`; `key` signs recommendation ids and keys user records.
    pub fn open(store: StateStore, key: [u8; 32]) -> Result<Experiments> {
        let definitions = Definitions {
            experiments: load(&store, EXPERIMENT_PREFIX)?,
            flags: load(&store, FLAG_PREFIX)?,
        };
        Ok(Experiments {
            inner: Arc::new(Inner {
                store,
                key,
                current: ArcSwap::from_pointee(definitions),
                changes: parking_lot::Mutex::new(()),
            }),
        })
    }

    /// The current definitions.
    pub fn definitions(&self) -> Arc<Definitions> {
        self.inner.current.load_full()
    }

    pub(crate) fn key(&self) -> &[u8; 32] {
        &self.inner.key
    }

    /// A user's groups, flags and settings for one request.
    pub fn assign(&self, user_id: &str) -> Assignment {
        let definitions = self.inner.current.load();
        let mut assignment = Assignment::default();
        if definitions.experiments.is_empty() && definitions.flags.is_empty() {
            return assignment;
        }
        for experiment in definitions.running() {
            let group = experiment.group_of(user_id);
            if let Some(settings) = experiment.settings_of(group) {
                assignment.settings.fill_from(settings);
            }
            assignment
                .groups
                .push((experiment.name.clone(), group.to_owned()));
        }
        for flag in &definitions.flags {
            if flag.is_on(user_id) {
                if let Some(settings) = &flag.config {
                    assignment.settings.override_with(settings);
                }
                assignment.flags.push(flag.name.clone());
            }
        }
        assignment
    }

    /// A new recommendation id for a list served to `user_id` now.
    pub fn mint_recommendation_id(&self, user_id: &str) -> String {
        recommendation_id::mint(&self.inner.key, user_id, now_ms(), rand::random())
    }

    /// Creates an experiment; a name in use is refused (field `name`).
    pub fn create(&self, spec: ExperimentSpec) -> Result<Experiment> {
        let _change = self.inner.changes.lock();
        let definitions = self.definitions();
        if definitions.experiment(&spec.name).is_some() {
            return Err(invalid(
                "name",
                format!(
                    "an experiment named {:?} exists; PUT /v1/admin/experiments/{} changes it",
                    spec.name, spec.name
                ),
            ));
        }
        let experiment = build(spec, None, now_ms());
        experiment.validate().map_err(Error::Invalid)?;
        self.store_experiment(&definitions, experiment)
    }

    /// Replaces an experiment's definition, keeping its id, salt (unless given) and history.
    pub fn replace(&self, name: &str, spec: ExperimentSpec) -> Result<Experiment> {
        let _change = self.inner.changes.lock();
        let definitions = self.definitions();
        let Some(old) = definitions.experiment(name) else {
            return Err(Error::NotFound(format!("no experiment named {name:?}")));
        };
        if spec.name != name {
            return Err(invalid(
                "name",
                format!(
                    "{:?} differs from the name in the path, {name:?}",
                    spec.name
                ),
            ));
        }
        if spec.status == Status::Draft && old.started_ms.is_some() {
            return Err(invalid(
                "status",
                "an experiment that has run cannot go back to draft; stop it instead",
            ));
        }
        let experiment = build(spec, Some(old.as_ref()), now_ms());
        experiment.validate().map_err(Error::Invalid)?;
        self.store_experiment(&definitions, experiment)
    }

    fn store_experiment(
        &self,
        definitions: &Definitions,
        experiment: Experiment,
    ) -> Result<Experiment> {
        self.inner.store.write_experiments(
            &[(
                named_key(EXPERIMENT_PREFIX, &experiment.name),
                Some(records::encode(&experiment)?),
            )],
            None,
        )?;
        let mut next = definitions.clone();
        next.experiments.retain(|old| old.name != experiment.name);
        next.experiments.push(Arc::new(experiment.clone()));
        next.experiments.sort_by(|a, b| a.name.cmp(&b.name));
        self.inner.current.store(Arc::new(next));
        Ok(experiment)
    }

    /// Deletes an experiment and every record attributed to it.
    pub fn delete(&self, name: &str) -> Result<()> {
        let _change = self.inner.changes.lock();
        let definitions = self.definitions();
        let Some(old) = definitions.experiment(name) else {
            return Err(Error::NotFound(format!("no experiment named {name:?}")));
        };
        self.inner.store.write_experiments(
            &[(named_key(EXPERIMENT_PREFIX, name), None)],
            Some(&users_prefix(old.id)),
        )?;
        let mut next = (*definitions).clone();
        next.experiments
            .retain(|experiment| experiment.name != name);
        self.inner.current.store(Arc::new(next));
        Ok(())
    }

    /// Creates (`create`) or replaces a flag.
    pub fn put_flag(&self, spec: FlagSpec, create: bool) -> Result<Flag> {
        let _change = self.inner.changes.lock();
        let definitions = self.definitions();
        let old = definitions.flag(&spec.name);
        match (create, old) {
            (true, Some(_)) => {
                return Err(invalid(
                    "name",
                    format!(
                        "a flag named {:?} exists; PUT /v1/admin/flags/{} changes it",
                        spec.name, spec.name
                    ),
                ));
            }
            (false, None) => {
                return Err(Error::NotFound(format!("no flag named {:?}", spec.name)));
            }
            _ => {}
        }
        let flag = Flag {
            salt: spec
                .salt
                .clone()
                .or_else(|| old.map(|old| old.salt.clone()))
                .unwrap_or_else(|| spec.name.clone()),
            updated_ms: now_ms(),
            name: spec.name,
            description: spec.description,
            enabled: spec.enabled,
            rollout_percent: spec.rollout_percent,
            allow: spec.allow,
            config: spec.config,
        };
        flag.validate().map_err(Error::Invalid)?;
        self.inner.store.write_experiments(
            &[(
                named_key(FLAG_PREFIX, &flag.name),
                Some(records::encode(&flag)?),
            )],
            None,
        )?;
        let mut next = (*definitions).clone();
        next.flags.retain(|old| old.name != flag.name);
        next.flags.push(Arc::new(flag.clone()));
        next.flags.sort_by(|a, b| a.name.cmp(&b.name));
        self.inner.current.store(Arc::new(next));
        Ok(flag)
    }

    pub fn delete_flag(&self, name: &str) -> Result<()> {
        let _change = self.inner.changes.lock();
        let definitions = self.definitions();
        if definitions.flag(name).is_none() {
            return Err(Error::NotFound(format!("no flag named {name:?}")));
        }
        self.inner
            .store
            .write_experiments(&[(named_key(FLAG_PREFIX, name), None)], None)?;
        let mut next = (*definitions).clone();
        next.flags.retain(|flag| flag.name != name);
        self.inner.current.store(Arc::new(next));
        Ok(())
    }

    /// The results of an experiment, from its users' records (one scan of its prefix).
    pub fn results(&self, name: &str) -> Result<(Arc<Experiment>, Results)> {
        let definitions = self.definitions();
        let Some(experiment) = definitions.experiment(name).cloned() else {
            return Err(Error::NotFound(format!("no experiment named {name:?}")));
        };
        let mut sums: Vec<(String, results::GroupSums)> = Vec::new();
        for (key, value) in self
            .inner
            .store
            .experiment_entries(&users_prefix(experiment.id))?
        {
            let record: UserRecord = records::decode(&key, &value)?;
            match sums.iter_mut().find(|(group, _)| *group == record.group) {
                Some((_, group)) => group.add(&record),
                None => {
                    let mut group = results::GroupSums::default();
                    group.add(&record);
                    sums.push((record.group.clone(), group));
                }
            }
        }
        let results = results::results(&experiment, &sums);
        Ok((experiment, results))
    }

    /// The keys of a user's records in every experiment (an erasure deletes them: their
    /// counts leave the results).
    pub(crate) fn user_keys(&self, user_id: &str) -> Vec<Vec<u8>> {
        self.definitions()
            .experiments
            .iter()
            .map(|experiment| user_key(&self.inner.key, experiment.id, user_id))
            .collect()
    }
}

#[cfg(test)]
mod tests;
