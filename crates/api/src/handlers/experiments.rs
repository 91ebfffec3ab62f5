//! Experiments and feature flags: the operators' routes that define them
//! (`/v1/admin/experiments`, `/v1/admin/flags`), an experiment's results, and a user's
//! assignments. The rules and the statistics are the stream processor's
//! ([`marquee_stream_processor::experiments`]); this file is their wire form.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use marquee_stream_processor::experiments::results::{Comparison, Estimate, Metric};
use marquee_stream_processor::experiments::{
    self, Experiment, ExperimentSpec, Flag, FlagSpec, ListStrategy, RankingSettings, SourceSet,
    Status, Variant,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::decode::json_body;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

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

/// Decodes a JSON body into `T`, naming the field at fault (`variants[1].share: …`) in a 422.
fn decode_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let value = json_body(headers, body, state.guard.limits().max_body_bytes)?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        ApiError::Unprocessable {
            message: if path == "." {
                format!("body: {inner}")
            } else {
                format!("{path}: {inner}")
            },
        }
    })
}

fn settings_of(config: Option<RankingConfig>) -> Option<RankingSettings> {
    config
        .map(RankingSettings::from)
        .filter(|settings| !settings.is_empty())
}

fn experiment_spec(
    body: ExperimentBody,
    path_name: Option<&str>,
) -> Result<ExperimentSpec, ApiError> {
    let name = match (body.name, path_name) {
        (Some(name), _) => name,
        (None, Some(path)) => path.to_owned(),
        (None, None) => {
            return Err(ApiError::Unprocessable {
                message: "name: required".into(),
            });
        }
    };
    let window_ms = body
        .attribution_window_secs
        .map(|secs| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX));
    Ok(ExperimentSpec {
        name,
        description: body.description.unwrap_or_default(),
        status: body.status.unwrap_or(StatusName::Draft).into(),
        variants: body
            .variants
            .into_iter()
            .map(|variant| Variant {
                name: variant.name,
                share: variant.share,
                config: settings_of(variant.config),
            })
            .collect(),
        holdout: body.holdout.unwrap_or(0.0),
        control: body.control,
        salt: body.salt,
        attribution_window_ms: window_ms,
    })
}

fn flag_spec(body: FlagBody, path_name: Option<&str>) -> Result<FlagSpec, ApiError> {
    let name = match (body.name, path_name) {
        (Some(name), _) => name,
        (None, Some(path)) => path.to_owned(),
        (None, None) => {
            return Err(ApiError::Unprocessable {
                message: "name: required".into(),
            });
        }
    };
    Ok(FlagSpec {
        name,
        description: body.description.unwrap_or_default(),
        enabled: body.enabled.unwrap_or(true),
        rollout_percent: body.rollout_percent.unwrap_or(0.0),
        allow: body.allow.unwrap_or_default(),
        config: settings_of(body.config),
        salt: body.salt,
    })
}

/// Create an experiment
///
/// Variants are named configurations of the ranking; a user's group is a keyed hash of (salt,
/// user), so every node assigns the same way and a user stays put. Persisted with the state.
#[utoipa::path(
    post,
    path = "/v1/admin/experiments",
    tag = "experiments",
    request_body = ExperimentBody,
    responses(
        (status = 201, description = "Created", body = ExperimentView),
        (status = 422, description = "A rule is broken (the field is named): shares that do not sum to 1, an unknown field, a name in use…", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn post_experiment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let services = state.services()?;
    let spec = experiment_spec(decode_body(&state, &headers, body)?, None)?;
    let experiment = services.experiments.create(spec)?;
    tracing::info!(
        experiment = experiment.name,
        status = experiment.status.as_str(),
        "experiment created"
    );
    Ok((StatusCode::CREATED, Json(ExperimentView::from(&experiment))))
}

/// Every experiment
#[utoipa::path(
    get,
    path = "/v1/admin/experiments",
    tag = "experiments",
    responses((status = 200, description = "By name", body = ExperimentList)),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn list_experiments(
    State(state): State<AppState>,
) -> Result<Json<ExperimentList>, ApiError> {
    let definitions = state.services()?.experiments.definitions();
    Ok(Json(ExperimentList {
        experiments: definitions
            .experiments
            .iter()
            .map(|experiment| ExperimentView::from(experiment.as_ref()))
            .collect(),
    }))
}

/// One experiment
#[utoipa::path(
    get,
    path = "/v1/admin/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The experiment", body = ExperimentView),
        (status = 404, description = "No such experiment", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn get_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    let definitions = state.services()?.experiments.definitions();
    definitions
        .experiment(&name)
        .map(|experiment| Json(ExperimentView::from(experiment.as_ref())))
        .ok_or_else(|| ApiError::not_found(format!("name: no experiment named {name:?}")))
}

/// Replace an experiment: its status, shares, variants
///
/// Its id and salt stay (unless a salt is sent), so changing a share moves only the users the
/// change must move. A running or stopped experiment cannot go back to draft.
#[utoipa::path(
    put,
    path = "/v1/admin/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path)),
    request_body = ExperimentBody,
    responses(
        (status = 200, description = "The new definition", body = ExperimentView),
        (status = 404, description = "No such experiment", body = ErrorBody),
        (status = 422, description = "A rule is broken (the field is named)", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn put_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ExperimentView>, ApiError> {
    let services = state.services()?;
    let spec = experiment_spec(decode_body(&state, &headers, body)?, Some(&name))?;
    let experiment = services.experiments.replace(&name, spec)?;
    tracing::info!(
        experiment = experiment.name,
        status = experiment.status.as_str(),
        "experiment changed"
    );
    Ok(Json(ExperimentView::from(&experiment)))
}

/// Delete an experiment and its results
#[utoipa::path(
    delete,
    path = "/v1/admin/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such experiment", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn delete_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services()?.experiments.delete(&name)?;
    tracing::info!(experiment = name, "experiment deleted");
    Ok(StatusCode::NO_CONTENT)
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

/// An experiment's results
///
/// Per group: users, lists shown, click-through, watch-through and positives per list shown,
/// each with a 95% interval; against the control, the difference with its interval and a
/// two-sided p-value (delta method over users); the sample-ratio check. `docs/EXPERIMENTS.md`
/// says how to read them. On a node that applies some partitions only, its own users.
#[utoipa::path(
    get,
    path = "/v1/admin/experiments/{name}/results",
    tag = "experiments",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The results", body = ResultsView),
        (status = 404, description = "No such experiment", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn get_results(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ResultsView>, ApiError> {
    let experiments = state.services()?.experiments.clone();
    let (experiment, results) = tokio::task::spawn_blocking(move || experiments.results(&name))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(ResultsView {
        experiment: experiment.name.clone(),
        status: experiment.status.into(),
        control: results.control,
        sample_ratio: results.sample_ratio.map(|check| SampleRatioView {
            chi_square: check.chi_square,
            degrees_of_freedom: check.degrees_of_freedom,
            p_value: check.p_value,
            mismatch: check.mismatch,
        }),
        groups: results
            .groups
            .into_iter()
            .map(|group| GroupView {
                name: group.name,
                share: group.share,
                users: group.users,
                impressions: group.impressions,
                clicked: group.clicked,
                watched: group.watched,
                positives: group.positives,
                click_through: group.click_through.into(),
                watch_through: group.watch_through.into(),
                positives_per_impression: group.positives_per_impression.into(),
                click_positions: group.click_positions,
            })
            .collect(),
    }))
}

/// Create a feature flag
#[utoipa::path(
    post,
    path = "/v1/admin/flags",
    tag = "experiments",
    request_body = FlagBody,
    responses(
        (status = 201, description = "Created", body = FlagView),
        (status = 422, description = "A rule is broken (the field is named)", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn post_flag(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<FlagView>), ApiError> {
    let services = state.services()?;
    let spec = flag_spec(decode_body(&state, &headers, body)?, None)?;
    let flag = services.experiments.put_flag(spec, true)?;
    tracing::info!(flag = flag.name, enabled = flag.enabled, "flag created");
    Ok((StatusCode::CREATED, Json(FlagView::from(&flag))))
}

/// Every feature flag
#[utoipa::path(
    get,
    path = "/v1/admin/flags",
    tag = "experiments",
    responses((status = 200, description = "By name", body = FlagList)),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn list_flags(State(state): State<AppState>) -> Result<Json<FlagList>, ApiError> {
    let definitions = state.services()?.experiments.definitions();
    Ok(Json(FlagList {
        flags: definitions
            .flags
            .iter()
            .map(|flag| FlagView::from(flag.as_ref()))
            .collect(),
    }))
}

/// One feature flag
#[utoipa::path(
    get,
    path = "/v1/admin/flags/{name}",
    tag = "experiments",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The flag", body = FlagView),
        (status = 404, description = "No such flag", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn get_flag(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FlagView>, ApiError> {
    let definitions = state.services()?.experiments.definitions();
    definitions
        .flag(&name)
        .map(|flag| Json(FlagView::from(flag.as_ref())))
        .ok_or_else(|| ApiError::not_found(format!("name: no flag named {name:?}")))
}

/// Replace a feature flag: its rollout, allow list, kill switch
///
/// Takes effect on the next request.
#[utoipa::path(
    put,
    path = "/v1/admin/flags/{name}",
    tag = "experiments",
    params(("name" = String, Path)),
    request_body = FlagBody,
    responses(
        (status = 200, description = "The new definition", body = FlagView),
        (status = 404, description = "No such flag", body = ErrorBody),
        (status = 422, description = "A rule is broken (the field is named)", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn put_flag(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FlagView>, ApiError> {
    let services = state.services()?;
    let spec = flag_spec(decode_body(&state, &headers, body)?, Some(&name))?;
    if spec.name != name {
        return Err(ApiError::Unprocessable {
            message: format!(
                "name: {:?} differs from the name in the path, {name:?}",
                spec.name
            ),
        });
    }
    let flag = services.experiments.put_flag(spec, false)?;
    tracing::info!(flag = flag.name, enabled = flag.enabled, "flag changed");
    Ok(Json(FlagView::from(&flag)))
}

/// Delete a feature flag
#[utoipa::path(
    delete,
    path = "/v1/admin/flags/{name}",
    tag = "experiments",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such flag", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]), ("apiKey" = ["admin"]))
)]
pub async fn delete_flag(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services()?.experiments.delete_flag(&name)?;
    tracing::info!(flag = name, "flag deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A user's groups and flags.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Assignments {
    pub user_id: String,
    /// Running experiment → the user's group (a variant, or `holdout`).
    pub experiments: BTreeMap<String, String>,
    /// Every flag → whether it is on for the user.
    pub flags: BTreeMap<String, bool>,
}

/// A user's experiment groups and flags
///
/// For a client that branches on a flag or a group of its own (a page layout, a feature): the
/// same keyed hash as the lists, so both agree.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/assignments",
    tag = "experiments",
    params(("user_id" = String, Path)),
    responses(
        (status = 200, description = "The user's groups and flags", body = Assignments),
        (status = 400, description = "The user id is not valid", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_assignments(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<Assignments>, ApiError> {
    let services = state.services()?;
    let stored_id = state.stored_user_id(&user_id)?;
    let assignment = services.experiments.assign(&stored_id);
    let definitions = services.experiments.definitions();
    Ok(Json(Assignments {
        user_id,
        experiments: assignment.groups.into_iter().collect(),
        flags: definitions
            .flags
            .iter()
            .map(|flag| (flag.name.clone(), assignment.flags.contains(&flag.name)))
            .collect(),
    }))
}

/// The wire form of a list's experiment groups.
pub(crate) fn groups_of(assignment: &experiments::Assignment) -> BTreeMap<String, String> {
    assignment.groups.iter().cloned().collect()
}
