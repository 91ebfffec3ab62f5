//! Feature flags' routes, and a user's assignments.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::flag_spec;
use super::wire::{FlagBody, FlagList, FlagView};
use crate::decode::typed_body;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn post_flag(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<FlagView>), ApiError> {
    let services = state.services()?;
    let spec = flag_spec(
        typed_body(&headers, body, state.guard.limits().max_body_bytes)?,
        None,
    )?;
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
)]
pub async fn put_flag(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FlagView>, ApiError> {
    let services = state.services()?;
    let spec = flag_spec(
        typed_body(&headers, body, state.guard.limits().max_body_bytes)?,
        Some(&name),
    )?;
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
    security(("bearer" = ["operations"]), ("apiKey" = ["operations"]))
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
