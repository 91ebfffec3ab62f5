//! Experiments and feature flags: the operators' routes that define them
//! (`/v1/admin/experiments`, `/v1/admin/flags`), an experiment's results, and a user's
//! assignments. The rules and the statistics are the stream processor's
//! ([`marquee_stream_processor::experiments`]); this module is their wire form: the types in
//! [`wire`], the experiments' routes here, the flags' and the assignments' in [`flags`].

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use marquee_stream_processor::experiments::{
    self, ExperimentSpec, FlagSpec, RankingSettings, Variant,
};

use crate::decode::typed_body;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub mod flags;
pub mod wire;

use wire::*;

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

pub(super) fn flag_spec(body: FlagBody, path_name: Option<&str>) -> Result<FlagSpec, ApiError> {
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn post_experiment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let services = state.services()?;
    let spec = experiment_spec(
        typed_body(&headers, body, state.guard.limits().max_body_bytes)?,
        None,
    )?;
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn put_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ExperimentView>, ApiError> {
    let services = state.services()?;
    let spec = experiment_spec(
        typed_body(&headers, body, state.guard.limits().max_body_bytes)?,
        Some(&name),
    )?;
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn delete_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services()?.experiments.delete(&name)?;
    tracing::info!(experiment = name, "experiment deleted");
    Ok(StatusCode::NO_CONTENT)
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
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

/// The wire form of a list's experiment groups.
pub(crate) fn groups_of(assignment: &experiments::Assignment) -> BTreeMap<String, String> {
    assignment.groups.iter().cloned().collect()
}
