//! What an operator defines: experiments and their variants, feature flags, and the ranking
//! settings either may change; with the rules each must follow (a [`FieldError`] names the
//! field, `variants[1].share`, as the API's 422 answer shows it).

use bincode::{Decode, Encode};
use marquee_schemas::FieldError;

use crate::model::ModelConfig;

/// Most variants of one experiment.
pub const MAX_VARIANTS: usize = 16;
/// Longest experiment, variant or flag name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most user ids on a flag's allow list.
pub const MAX_ALLOW_LIST: usize = 10_000;
/// How far the shares (and the holdout) may sum from 1: decimal fractions such as 0.1 + 0.2
/// are not exact in binary.
pub const SHARE_TOLERANCE: f64 = 1e-6;
/// How long after a list was served an outcome still counts for it, unless the experiment
/// says otherwise.
pub const DEFAULT_ATTRIBUTION_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// The group name of the users a holdout keeps outside every variant.
pub const HOLDOUT: &str = "holdout";
/// Largest weight a ranking setting takes.
const MAX_WEIGHT: f32 = 100.0;
/// Largest count a ranking setting takes (history entries, candidates).
const MAX_SETTING_COUNT: u32 = 10_000;

/// How a list is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum ListStrategy {
    /// The model's ranking (the default).
    Personalised,
    /// The trending list through the same filters, whatever the user did.
    Popular,
}

/// Which parts rank a personalised list (the query side's `Ranking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct SourceSet {
    pub pairs: bool,
    pub index: bool,
    pub content: bool,
}

/// Settings of the ranking a variant or a flag changes; an absent one keeps the node's.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct RankingSettings {
    pub strategy: Option<ListStrategy>,
    pub sources: Option<SourceSet>,
    pub embedding_weight: Option<f32>,
    pub content_weight: Option<f32>,
    pub pair_history: Option<u32>,
    pub pair_candidates: Option<u32>,
    pub embedding_candidates: Option<u32>,
    /// Only items of this genre (as the `genre` parameter; a request's own wins).
    pub genre: Option<String>,
}

impl RankingSettings {
    pub fn is_empty(&self) -> bool {
        *self == RankingSettings::default()
    }

    /// Checks each setting's range; `field` is where these settings are (`variants[1].config`).
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        let weight = |name: &str, value: Option<f32>| match value {
            Some(value) if !(0.0..=MAX_WEIGHT).contains(&value) => Err(FieldError::new(
                format!("{field}.{name}"),
                format!("must be from 0 to {MAX_WEIGHT}, got {value}"),
            )),
            _ => Ok(()),
        };
        let count = |name: &str, value: Option<u32>| match value {
            Some(value) if !(1..=MAX_SETTING_COUNT).contains(&value) => Err(FieldError::new(
                format!("{field}.{name}"),
                format!("must be from 1 to {MAX_SETTING_COUNT}, got {value}"),
            )),
            _ => Ok(()),
        };
        weight("embedding_weight", self.embedding_weight)?;
        weight("content_weight", self.content_weight)?;
        count("pair_history", self.pair_history)?;
        count("pair_candidates", self.pair_candidates)?;
        count("embedding_candidates", self.embedding_candidates)?;
        if let Some(sources) = self.sources
            && !(sources.pairs || sources.index || sources.content)
        {
            return Err(FieldError::new(
                format!("{field}.sources"),
                "must name at least one of pairs, index, content",
            ));
        }
        if let Some(genre) = &self.genre {
            marquee_schemas::validate_id(&format!("{field}.genre"), genre)?;
        }
        Ok(())
    }

    /// Takes every setting `other` has (flags over variants).
    pub fn override_with(&mut self, other: &RankingSettings) {
        self.fill(other, true);
    }

    /// Takes the settings `other` has that these lack (an experiment started later does not
    /// change what an earlier one tests).
    pub fn fill_from(&mut self, other: &RankingSettings) {
        self.fill(other, false);
    }

    fn fill(&mut self, other: &RankingSettings, replace: bool) {
        fn take<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>, replace: bool) {
            if theirs.is_some() && (replace || mine.is_none()) {
                *mine = theirs.clone();
            }
        }
        take(&mut self.strategy, &other.strategy, replace);
        take(&mut self.sources, &other.sources, replace);
        take(&mut self.embedding_weight, &other.embedding_weight, replace);
        take(&mut self.content_weight, &other.content_weight, replace);
        take(&mut self.pair_history, &other.pair_history, replace);
        take(&mut self.pair_candidates, &other.pair_candidates, replace);
        take(
            &mut self.embedding_candidates,
            &other.embedding_candidates,
            replace,
        );
        take(&mut self.genre, &other.genre, replace);
    }

    /// The model's query settings with these applied.
    pub fn model(&self, model: &ModelConfig) -> ModelConfig {
        let mut changed = model.clone();
        if let Some(weight) = self.embedding_weight {
            changed.embedding_weight = weight;
        }
        if let Some(weight) = self.content_weight {
            changed.content_weight = weight;
        }
        if let Some(history) = self.pair_history {
            changed.pair_history = history as usize;
        }
        if let Some(candidates) = self.pair_candidates {
            changed.pair_candidates = candidates as usize;
        }
        if let Some(candidates) = self.embedding_candidates {
            changed.embedding_candidates = candidates as usize;
        }
        changed
    }

    /// Whether any setting changes the model's query settings (else the node's shared ones
    /// serve, with no copy).
    pub fn changes_model(&self) -> bool {
        self.embedding_weight.is_some()
            || self.content_weight.is_some()
            || self.pair_history.is_some()
            || self.pair_candidates.is_some()
            || self.embedding_candidates.is_some()
    }
}

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Status {
    /// Defined, assigning nobody.
    Draft,
    /// Assigning users and counting what they do.
    Running,
    /// Assigning nobody; its results stay.
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Variant {
    pub name: String,
    /// The fraction of users assigned to it.
    pub share: f64,
    /// What it changes; `None` (or empty) is the node's configuration.
    pub config: Option<RankingSettings>,
}

/// An A/B test: users split between variants by a keyed hash of (salt, user).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Experiment {
    pub name: String,
    pub description: String,
    pub status: Status,
    pub variants: Vec<Variant>,
    /// The fraction of users kept outside every variant (the node's configuration, reported
    /// as the group `holdout`).
    pub holdout: f64,
    /// The variant the others are compared with (default: the first).
    pub control: String,
    /// The key of the assignment hash; the name unless set. Every node, and every restart,
    /// assigns a user the same way for the same salt.
    pub salt: String,
    pub attribution_window_ms: i64,
    /// Set at creation: what the attribution records are keyed by, so an experiment deleted
    /// and created again under the same name starts from nothing.
    pub id: u64,
    pub created_ms: i64,
    /// When it was first set running.
    pub started_ms: Option<i64>,
    pub stopped_ms: Option<i64>,
    pub updated_ms: i64,
}

/// Checks a name: 1 to [`MAX_NAME_BYTES`] of letters, digits, `_`, `-` and `.` (it appears in
/// paths and metric labels).
pub fn validate_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_NAME_BYTES} bytes, got {}", name.len()),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(FieldError::new(
            field,
            format!("may hold letters, digits, `_`, `-` and `.` only, found {bad:?}"),
        ));
    }
    Ok(())
}

impl Experiment {
    /// Checks the definition: names, shares in (0, 1] that sum with the holdout to 1, a known
    /// control, each variant's settings.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        if self.variants.is_empty() || self.variants.len() > MAX_VARIANTS {
            return Err(FieldError::new(
                "variants",
                format!(
                    "must hold 1 to {MAX_VARIANTS} variants, got {}",
                    self.variants.len()
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.holdout) {
            return Err(FieldError::new(
                "holdout",
                format!("must be at least 0 and below 1, got {}", self.holdout),
            ));
        }
        let mut total = self.holdout;
        for (at, variant) in self.variants.iter().enumerate() {
            let field = format!("variants[{at}]");
            validate_name(&format!("{field}.name"), &variant.name)?;
            if variant.name == HOLDOUT {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    "`holdout` names the users outside every variant; choose another name",
                ));
            }
            if self.variants[..at].iter().any(|v| v.name == variant.name) {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    format!("{:?} is the name of an earlier variant", variant.name),
                ));
            }
            if !(variant.share > 0.0 && variant.share <= 1.0) {
                return Err(FieldError::new(
                    format!("{field}.share"),
                    format!("must be above 0 and at most 1, got {}", variant.share),
                ));
            }
            total += variant.share;
            if let Some(config) = &variant.config {
                config.validate(&format!("{field}.config"))?;
            }
        }
        if (total - 1.0).abs() > SHARE_TOLERANCE {
            return Err(FieldError::new(
                "variants",
                format!(
                    "the shares{} must sum to 1, they sum to {total}",
                    if self.holdout > 0.0 {
                        " and the holdout"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if !self.variants.iter().any(|v| v.name == self.control) {
            return Err(FieldError::new(
                "control",
                format!("{:?} is not one of the variants", self.control),
            ));
        }
        if self.salt.is_empty() || self.salt.len() > MAX_NAME_BYTES {
            return Err(FieldError::new(
                "salt",
                format!("must be 1 to {MAX_NAME_BYTES} bytes"),
            ));
        }
        if self.attribution_window_ms <= 0 || self.attribution_window_ms > 90 * 86_400_000 {
            return Err(FieldError::new(
                "attribution_window_secs",
                "must be from 1 second to 90 days",
            ));
        }
        Ok(())
    }

    /// The variant a user is in, or [`HOLDOUT`]: the variants take consecutive ranges of the
    /// hash's unit interval in their order, the holdout the top. Changing a share moves only
    /// the users whose point changes range.
    pub fn group_of(&self, user_id: &str) -> &str {
        let point = crate::experiments::assign::unit_hash(&self.salt, user_id);
        let mut upper = 0.0;
        for variant in &self.variants {
            upper += variant.share;
            if point < upper {
                return &variant.name;
            }
        }
        // Rounding can leave a sliver below 1 - holdout uncovered; it goes to the last variant.
        if point < 1.0 - self.holdout {
            return &self.variants[self.variants.len() - 1].name;
        }
        HOLDOUT
    }

    /// The settings of a group (none for the holdout or a variant without a config).
    pub fn settings_of(&self, group: &str) -> Option<&RankingSettings> {
        self.variants
            .iter()
            .find(|variant| variant.name == group)
            .and_then(|variant| variant.config.as_ref())
    }
}

/// A feature flag: on for a percentage of users (the same keyed hash), always on for an allow
/// list, off for everyone when disabled (the kill switch).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Flag {
    pub name: String,
    pub description: String,
    /// The kill switch: `false` turns the flag off for everyone, the allow list included.
    pub enabled: bool,
    /// 0 to 100.
    pub rollout_percent: f64,
    pub allow: Vec<String>,
    /// What the flag changes in a list where it is on (beyond telling the client it is on).
    pub config: Option<RankingSettings>,
    pub salt: String,
    pub updated_ms: i64,
}

impl Flag {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        if !(0.0..=100.0).contains(&self.rollout_percent) {
            return Err(FieldError::new(
                "rollout_percent",
                format!("must be from 0 to 100, got {}", self.rollout_percent),
            ));
        }
        if self.allow.len() > MAX_ALLOW_LIST {
            return Err(FieldError::new(
                "allow",
                format!("must hold at most {MAX_ALLOW_LIST} user ids"),
            ));
        }
        for (at, user_id) in self.allow.iter().enumerate() {
            marquee_schemas::validate_id(&format!("allow[{at}]"), user_id)?;
        }
        if let Some(config) = &self.config {
            config.validate("config")?;
        }
        if self.salt.is_empty() || self.salt.len() > MAX_NAME_BYTES {
            return Err(FieldError::new(
                "salt",
                format!("must be 1 to {MAX_NAME_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// Whether the flag is on for a user.
    pub fn is_on(&self, user_id: &str) -> bool {
        if !self.enabled {
            return false;
        }
        if self.allow.iter().any(|allowed| allowed == user_id) {
            return true;
        }
        crate::experiments::assign::unit_hash(&self.salt, user_id) * 100.0 < self.rollout_percent
    }
}
