//! The wire form of experiments, flags and results: what the routes take and answer.

use marquee_stream_processor::experiments::results::{Comparison, Estimate, Metric};
use marquee_stream_processor::experiments::{
    Experiment, Flag, ListStrategy, RankingSettings, SourceSet, Status,
};
use serde::{Deserialize, Serialize};

/// How a list is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyChoice {
    /// The model's ranking.
    Personalised,
    /// The trending list, whatever the user did.
    Popular,
}

/// A part of the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceName {
    Pairs,
    Index,
    Content,
}

/// What a variant or a flag changes in a list; an absent setting keeps the node's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyChoice>,
    /// The parts that rank a personalised list (default: all three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceName>>,
    /// The share of the user vector's inner product in the blend (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_weight: Option<f32>,
    /// The share of the content part (genres and tags of items without events; 0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_weight: Option<f32>,
    /// History entries whose pairs are read exactly (1 to 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_history: Option<u32>,
    /// Candidates from the pairs (1 to 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_candidates: Option<u32>,
    /// Candidates from the index (1 to 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_candidates: Option<u32>,
    /// Only items of this genre, unless the request names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genre: Option<String>,
}

impl From<RankingConfig> for RankingSettings {
    fn from(config: RankingConfig) -> RankingSettings {
        RankingSettings {
            strategy: config.strategy.map(|strategy| match strategy {
                StrategyChoice::Personalised => ListStrategy::Personalised,
                StrategyChoice::Popular => ListStrategy::Popular,
            }),
            sources: config.sources.map(|sources| SourceSet {
                pairs: sources.contains(&SourceName::Pairs),
                index: sources.contains(&SourceName::Index),
                content: sources.contains(&SourceName::Content),
            }),
            embedding_weight: config.embedding_weight,
            content_weight: config.content_weight,
            pair_history: config.pair_history,
            pair_candidates: config.pair_candidates,
            embedding_candidates: config.embedding_candidates,
            genre: config.genre,
        }
    }
}

impl From<&RankingSettings> for RankingConfig {
    fn from(settings: &RankingSettings) -> RankingConfig {
        RankingConfig {
            strategy: settings.strategy.map(|strategy| match strategy {
                ListStrategy::Personalised => StrategyChoice::Personalised,
                ListStrategy::Popular => StrategyChoice::Popular,
            }),
            sources: settings.sources.map(|sources| {
                [
                    (sources.pairs, SourceName::Pairs),
                    (sources.index, SourceName::Index),
                    (sources.content, SourceName::Content),
                ]
                .into_iter()
                .filter(|(on, _)| *on)
                .map(|(_, name)| name)
                .collect()
            }),
            embedding_weight: settings.embedding_weight,
            content_weight: settings.content_weight,
            pair_history: settings.pair_history,
            pair_candidates: settings.pair_candidates,
            embedding_candidates: settings.embedding_candidates,
            genre: settings.genre.clone(),
        }
    }
}

/// An experiment's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    Draft,
    Running,
    Stopped,
}

impl From<StatusName> for Status {
    fn from(status: StatusName) -> Status {
        match status {
            StatusName::Draft => Status::Draft,
            StatusName::Running => Status::Running,
            StatusName::Stopped => Status::Stopped,
        }
    }
}

impl From<Status> for StatusName {
    fn from(status: Status) -> StatusName {
        match status {
            Status::Draft => StatusName::Draft,
            Status::Running => StatusName::Running,
            Status::Stopped => StatusName::Stopped,
        }
    }
}

/// One variant.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBody {
    pub name: String,
    /// The fraction of users in it (the shares and the holdout sum to 1).
    pub share: f64,
    /// What it changes; absent: the node's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RankingConfig>,
}

/// An experiment as an operator sends it. The fields the server sets (`id`, `created_ms`,
/// `started_ms`, `stopped_ms`, `updated_ms`) may be sent back as read and are ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentBody {
    /// Letters, digits, `_`, `-`, `.`; 1 to 64 bytes. Optional in a PUT (the path's).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Default `draft`.
    #[serde(default)]
    pub status: Option<StatusName>,
    pub variants: Vec<VariantBody>,
    /// The fraction of users kept out of every variant (default 0).
    #[serde(default)]
    pub holdout: Option<f64>,
    /// The variant the others are compared with (default: the first).
    #[serde(default)]
    pub control: Option<String>,
    /// The assignment hash's key (default: the name; keep it to keep the assignment).
    #[serde(default)]
    pub salt: Option<String>,
    /// How long after a list was served its outcomes count (default 86,400).
    #[serde(default)]
    pub attribution_window_secs: Option<u64>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub created_ms: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub started_ms: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stopped_ms: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub updated_ms: Option<serde::de::IgnoredAny>,
}

/// An experiment as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentView {
    pub name: String,
    pub description: String,
    pub status: StatusName,
    pub variants: Vec<VariantBody>,
    pub holdout: f64,
    pub control: String,
    pub salt: String,
    pub attribution_window_secs: u64,
    /// Unique per creation (attribution records are keyed by it).
    pub id: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub stopped_ms: Option<i64>,
    pub updated_ms: i64,
}

impl From<&Experiment> for ExperimentView {
    fn from(experiment: &Experiment) -> ExperimentView {
        ExperimentView {
            name: experiment.name.clone(),
            description: experiment.description.clone(),
            status: experiment.status.into(),
            variants: experiment
                .variants
                .iter()
                .map(|variant| VariantBody {
                    name: variant.name.clone(),
                    share: variant.share,
                    config: variant.config.as_ref().map(RankingConfig::from),
                })
                .collect(),
            holdout: experiment.holdout,
            control: experiment.control.clone(),
            salt: experiment.salt.clone(),
            attribution_window_secs: (experiment.attribution_window_ms / 1000) as u64,
            id: format!("{:016x}", experiment.id),
            created_ms: experiment.created_ms,
            started_ms: experiment.started_ms,
            stopped_ms: experiment.stopped_ms,
            updated_ms: experiment.updated_ms,
        }
    }
}

/// Every experiment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentList {
    pub experiments: Vec<ExperimentView>,
}

/// A flag as an operator sends it (`updated_ms` may be sent back and is ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagBody {
    /// Optional in a PUT (the path's).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The kill switch: false turns the flag off for everyone (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The users it is on for, 0 to 100 (default 0: the allow list only).
    #[serde(default)]
    pub rollout_percent: Option<f64>,
    /// User ids it is on for whatever the percentage.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// What it changes in the lists of the users it is on for.
    #[serde(default)]
    pub config: Option<RankingConfig>,
    /// The rollout hash's key (default: the name).
    #[serde(default)]
    pub salt: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub updated_ms: Option<serde::de::IgnoredAny>,
}

/// A flag as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagView {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub rollout_percent: f64,
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<RankingConfig>,
    pub salt: String,
    pub updated_ms: i64,
}

impl From<&Flag> for FlagView {
    fn from(flag: &Flag) -> FlagView {
        FlagView {
            name: flag.name.clone(),
            description: flag.description.clone(),
            enabled: flag.enabled,
            rollout_percent: flag.rollout_percent,
            allow: flag.allow.clone(),
            config: flag.config.as_ref().map(RankingConfig::from),
            salt: flag.salt.clone(),
            updated_ms: flag.updated_ms,
        }
    }
}

/// Every flag.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagList {
    pub flags: Vec<FlagView>,
}

/// A rate with its 95% interval.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EstimateView {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl From<Estimate> for EstimateView {
    fn from(estimate: Estimate) -> EstimateView {
        EstimateView {
            value: estimate.value,
            low: estimate.low,
            high: estimate.high,
        }
    }
}

/// A group's rate against the control's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ComparisonView {
    /// This group's rate minus the control's, with its 95% interval.
    pub difference: EstimateView,
    /// Two-sided p-value of no difference.
    pub p_value: f64,
}

impl From<Comparison> for ComparisonView {
    fn from(comparison: Comparison) -> ComparisonView {
        ComparisonView {
            difference: comparison.difference.into(),
            p_value: comparison.p_value,
        }
    }
}

/// One metric: `null` estimates with fewer than two users or no impression.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricView {
    pub estimate: Option<EstimateView>,
    /// Absent for the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_control: Option<ComparisonView>,
}

impl From<Metric> for MetricView {
    fn from(metric: Metric) -> MetricView {
        MetricView {
            estimate: metric.estimate.map(EstimateView::from),
            vs_control: metric.vs_control.map(ComparisonView::from),
        }
    }
}

/// One group (a variant, or the holdout).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub name: String,
    pub share: f64,
    /// Users with at least one list shown.
    pub users: u64,
    /// Lists shown.
    pub impressions: u64,
    /// Lists clicked.
    pub clicked: u64,
    /// Lists watched from.
    pub watched: u64,
    /// Positive events (likes, good ratings, watches, clicks) attributed to lists.
    pub positives: u64,
    /// Lists clicked per list shown.
    pub click_through: MetricView,
    /// Lists watched from per list shown.
    pub watch_through: MetricView,
    /// Positive events per list shown.
    pub positives_per_impression: MetricView,
    /// First clicks by position, 0 to 9, then every later position together.
    pub click_positions: Vec<u64>,
}

/// The sample-ratio check: a chi-square test of the users per group against the shares.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SampleRatioView {
    pub chi_square: f64,
    pub degrees_of_freedom: u64,
    pub p_value: f64,
    /// p < 0.001: the split does not fit the shares; distrust the comparison.
    pub mismatch: bool,
}

/// An experiment's results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultsView {
    pub experiment: String,
    pub status: StatusName,
    pub control: String,
    pub groups: Vec<GroupView>,
    /// Absent with fewer than two groups holding users.
    pub sample_ratio: Option<SampleRatioView>,
}
