//! The catalogue's rules: the custom properties' schema (`/v1/admin/properties`), saved
//! filters (`/v1/admin/filters`) and campaigns (`/v1/admin/campaigns`). Each change is durable
//! when answered and read by the next request (`docs/RULES.md`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use marquee_schemas::{PropertySchema, PropertyType};
use marquee_stream_processor::rules::{Action, Campaign, SavedFilter};
use serde::{Deserialize, Serialize};

use crate::decode::typed_body;
use crate::error::{ApiError, ErrorBody};
use crate::params::check_path_id;
use crate::state::AppState;

/// The declared custom properties of items: name → type.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// Name (`a-z`, `0-9`, `_`, starting with a letter) → `string`, `number`, `boolean` or
    /// `list` (of strings).
    pub properties: BTreeMap<String, PropertyType>,
}

/// The property schema
#[utoipa::path(
    get,
    path = "/v1/admin/properties",
    tag = "rules",
    responses((status = 200, description = "The declared properties", body = Properties)),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn get_properties(State(state): State<AppState>) -> Result<Json<Properties>, ApiError> {
    let rules = state.services()?.query.rules().current();
    Ok(Json(Properties {
        properties: rules.schema.clone(),
    }))
}

/// Declare the custom properties of items
///
/// Replaces the schema. An upsert whose `properties` hold an undeclared name or a value of
/// another type is refused with 422 naming it; items already stored keep their values.
#[utoipa::path(
    put,
    path = "/v1/admin/properties",
    tag = "rules",
    request_body = Properties,
    responses(
        (status = 200, description = "Stored", body = Properties),
        (status = 422, description = "A name or type is wrong (named)", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn put_properties(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Properties>, ApiError> {
    let services = state.services()?;
    let body: Properties = typed_body(&headers, body, state.guard.limits().max_body_bytes)?;
    let schema: PropertySchema = body.properties;
    services.query.rules().put_schema(schema.clone())?;
    tracing::info!(properties = schema.len(), "property schema replaced");
    Ok(Json(Properties { properties: schema }))
}

/// A saved filter, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// A filter expression (it may use `$region`, `$device`, `$maturity`; not `@name`).
    pub expression: String,
    #[serde(default)]
    pub description: String,
}

/// A saved filter, as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterView {
    pub name: String,
    pub description: String,
    pub expression: String,
}

impl From<&SavedFilter> for FilterView {
    fn from(saved: &SavedFilter) -> FilterView {
        FilterView {
            name: saved.name.clone(),
            description: saved.description.clone(),
            expression: saved.expression.clone(),
        }
    }
}

/// Every saved filter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterList {
    pub filters: Vec<FilterView>,
}

/// Every saved filter
#[utoipa::path(
    get,
    path = "/v1/admin/filters",
    tag = "rules",
    responses((status = 200, description = "By name", body = FilterList)),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn list_filters(State(state): State<AppState>) -> Result<Json<FilterList>, ApiError> {
    let rules = state.services()?.query.rules().current();
    Ok(Json(FilterList {
        filters: rules.filters.values().map(FilterView::from).collect(),
    }))
}

/// One saved filter
#[utoipa::path(
    get,
    path = "/v1/admin/filters/{name}",
    tag = "rules",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The filter", body = FilterView),
        (status = 404, description = "No such filter", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn get_filter(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FilterView>, ApiError> {
    let rules = state.services()?.query.rules().current();
    rules
        .filters
        .get(&name)
        .map(|saved| Json(FilterView::from(saved)))
        .ok_or_else(|| ApiError::not_found(format!("name: no saved filter {name:?}")))
}

/// Save a filter under a name
///
/// Requests name it as `@name` in their `filter` parameter. A syntax error is a 422 that says
/// where.
#[utoipa::path(
    put,
    path = "/v1/admin/filters/{name}",
    tag = "rules",
    params(("name" = String, Path)),
    request_body = FilterBody,
    responses(
        (status = 200, description = "Stored", body = FilterView),
        (status = 422, description = "The expression or name is wrong (the position is named)", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn put_filter(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FilterView>, ApiError> {
    let services = state.services()?;
    check_path_id("name", &name)?;
    let body: FilterBody = typed_body(&headers, body, state.guard.limits().max_body_bytes)?;
    let saved = SavedFilter {
        name,
        description: body.description,
        expression: body.expression,
    };
    services.query.rules().put_filter(saved.clone())?;
    tracing::info!(filter = saved.name, "filter saved");
    Ok(Json(FilterView::from(&saved)))
}

/// Delete a saved filter
#[utoipa::path(
    delete,
    path = "/v1/admin/filters/{name}",
    tag = "rules",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such filter", body = ErrorBody),
        (status = 422, description = "A campaign names it", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn delete_filter(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services()?.query.rules().delete_filter(&name)?;
    tracing::info!(filter = name, "filter deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A campaign, as sent: the items by id or by a filter; a boost or a pin; a time window.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    #[serde(default)]
    pub description: String,
    /// The items, by id (a pin takes the first eligible one in this order).
    #[serde(default)]
    pub items: Vec<String>,
    /// Or a filter expression naming them among each list's candidates.
    pub filter: Option<String>,
    /// Raise the items' scores by this share of the list's best score (above 0, at most 100;
    /// 1 ties with the best).
    pub boost: Option<f32>,
    /// Or put the first eligible item at this position of the ranking (from 0).
    pub position: Option<usize>,
    /// In effect from (milliseconds since the epoch; absent: now).
    pub starts_at: Option<i64>,
    /// In effect until, exclusive (absent: until deleted).
    pub ends_at: Option<i64>,
}

/// A campaign, as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub name: String,
    pub description: String,
    pub items: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boost: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<i64>,
    /// Whether it is in effect now.
    pub active: bool,
}

impl CampaignView {
    fn of(campaign: &Campaign, now: i64) -> CampaignView {
        let (boost, position) = match campaign.action {
            Action::Boost { weight } => (Some(weight), None),
            Action::Pin { position } => (None, Some(position)),
        };
        CampaignView {
            name: campaign.name.clone(),
            description: campaign.description.clone(),
            items: campaign.items.clone(),
            filter: campaign.filter.clone(),
            boost,
            position,
            starts_at: campaign.starts_at,
            ends_at: campaign.ends_at,
            active: campaign.active_at(now),
        }
    }
}

/// Every campaign.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
}

/// Every campaign
#[utoipa::path(
    get,
    path = "/v1/admin/campaigns",
    tag = "rules",
    responses((status = 200, description = "By name", body = CampaignList)),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn list_campaigns(State(state): State<AppState>) -> Result<Json<CampaignList>, ApiError> {
    let rules = state.services()?.query.rules();
    let now = rules.clock().now_ms();
    Ok(Json(CampaignList {
        campaigns: rules
            .current()
            .campaigns
            .values()
            .map(|campaign| CampaignView::of(campaign, now))
            .collect(),
    }))
}

/// One campaign
#[utoipa::path(
    get,
    path = "/v1/admin/campaigns/{name}",
    tag = "rules",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn get_campaign(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    let rules = state.services()?.query.rules();
    let now = rules.clock().now_ms();
    rules
        .current()
        .campaigns
        .get(&name)
        .map(|campaign| Json(CampaignView::of(campaign, now)))
        .ok_or_else(|| ApiError::not_found(format!("name: no campaign {name:?}")))
}

/// Create or replace a campaign
///
/// A boost or a pin of some items for a time window, on recommendations, similar items and
/// trending, from the next request on. Each item it moves says so (`campaign`, and `boost` or
/// `pin` in its `sources`).
#[utoipa::path(
    put,
    path = "/v1/admin/campaigns/{name}",
    tag = "rules",
    params(("name" = String, Path)),
    request_body = CampaignBody,
    responses(
        (status = 200, description = "Stored", body = CampaignView),
        (status = 422, description = "A rule is broken (the field is named)", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn put_campaign(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CampaignView>, ApiError> {
    let services = state.services()?;
    check_path_id("name", &name)?;
    let body: CampaignBody = typed_body(&headers, body, state.guard.limits().max_body_bytes)?;
    let action = match (body.boost, body.position) {
        (Some(weight), None) => Action::Boost { weight },
        (None, Some(position)) => Action::Pin { position },
        _ => {
            return Err(ApiError::Unprocessable {
                message: "boost: give either boost or position".into(),
            });
        }
    };
    let campaign = Campaign {
        name,
        description: body.description,
        items: body.items,
        filter: body.filter,
        action,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
    };
    let rules = services.query.rules();
    rules.put_campaign(campaign.clone())?;
    tracing::info!(campaign = campaign.name, "campaign stored");
    Ok(Json(CampaignView::of(&campaign, rules.clock().now_ms())))
}

/// Delete a campaign
#[utoipa::path(
    delete,
    path = "/v1/admin/campaigns/{name}",
    tag = "rules",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ),
    security(("bearer" = ["catalogue"]), ("apiKey" = ["catalogue"]))
)]
pub async fn delete_campaign(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services()?.query.rules().delete_campaign(&name)?;
    tracing::info!(campaign = name, "campaign deleted");
    Ok(StatusCode::NO_CONTENT)
}
