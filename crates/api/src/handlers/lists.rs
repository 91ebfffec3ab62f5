//! The lists: a user's recommendations, the items similar to one, trending.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use marquee_stream_processor::{Recommendation, RecommendationQuery, Strategy};
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::guard::Granted;
use crate::handlers::experiments::groups_of;
use crate::handlers::list_options::{LIST_PARAMS, list_request};
use crate::keys::Scope;
use crate::params::{
    Params, check_path_id, parse_bool, parse_count, parse_exclude, parse_text,
    reject_unknown_params,
};
use crate::state::AppState;

/// Which method produced a list.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// Ranked from what viewers did after the items the user engaged with.
    Personalised,
    /// Ranked from content only: the user's items have no co-occurrence pairs yet.
    ColdStart,
    /// The trending list, for a user the model knows nothing positive about yet.
    Popular,
}

impl From<Strategy> for StrategyName {
    fn from(strategy: Strategy) -> StrategyName {
        match strategy {
            Strategy::Personalised => StrategyName::Personalised,
            Strategy::ColdStart => StrategyName::ColdStart,
            Strategy::Popular => StrategyName::Popular,
        }
    }
}

/// One item of a list, with what the catalogue says of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListedItem {
    pub item_id: String,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub genres: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// Where it came from: `index` (the nearest neighbours of the user's or the item's
    /// vector), `pairs` (what followed the user's recent items), `content` (genres and tags of
    /// an item without events yet), `trending` (a fill), `boost` and `pin` (a campaign
    /// raised it or put it there).
    pub sources: Vec<&'static str>,
    /// The campaign that boosted or pinned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

impl From<Recommendation> for ListedItem {
    fn from(item: Recommendation) -> ListedItem {
        ListedItem {
            item_id: item.item_id,
            score: item.score,
            title: item.title,
            genres: item.genres,
            year: item.year,
            sources: item.sources.names().collect(),
            campaign: item.campaign.map(|name| name.to_string()),
        }
    }
}

fn listed(items: Vec<Recommendation>) -> Vec<ListedItem> {
    items.into_iter().map(ListedItem::from).collect()
}

/// A user's recommendations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    pub user_id: String,
    pub strategy: StrategyName,
    /// Names this list: send it back on the impression when the list is shown, and with the
    /// click, watch, rating or like that follows (with the item's `position`, from 0), so the
    /// outcome counts for the list, its experiment groups and the position.
    pub recommendation_id: String,
    /// Running experiment → the group the list was made for (a variant, or `holdout`).
    pub experiments: BTreeMap<String, String>,
    /// The feature flags on for this user.
    pub flags: Vec<String>,
    pub items: Vec<ListedItem>,
    /// Send it back as `page_token` for the next page of the same ranking (no item of this
    /// page or the ones before); absent when the ranking is spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The items similar to one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Similar {
    pub item_id: String,
    pub items: Vec<ListedItem>,
    /// As on recommendations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The trending items.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Trending {
    pub items: Vec<ListedItem>,
    /// As on recommendations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What this user should watch next
///
/// Ranked from the co-occurrence neighbours of the user's history (recent events weigh most),
/// blended with new items whose genres and tags match; `strategy` says which method produced
/// the list. Seen items, excluded ids and items outside `genre` are left out. A running
/// experiment's variant or a flag on for the user may change the ranking (`experiments`,
/// `flags`); `recommendation_id` names the list for impressions and attribution.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/recommendations",
    tag = "lists",
    params(
        ("user_id" = String, Path),
        ("count" = Option<usize>, Query, description = "1 to 100 (default 10)"),
        ("exclude_seen" = Option<bool>, Query, description = "Leave out items the user interacted with (default true); `false` needs the users scope"),
        ("genre" = Option<String>, Query, description = "Only items of this genre (case-insensitive)"),
        ("exclude" = Option<String>, Query, description = "Comma-separated item ids to leave out (at most 1000)"),
        ("filter" = Option<String>, Query, description = "A filter expression (docs/RULES.md), e.g. `genres HAS \"Comedy\" AND year >= 1990`; `@name` for a saved filter"),
        ("region" = Option<String>, Query, description = "The viewer's region, for `$region` in a filter"),
        ("device" = Option<String>, Query, description = "The viewer's device, for `$device` in a filter"),
        ("maturity" = Option<String>, Query, description = "The viewer's maturity rating, for `$maturity` in a filter"),
        ("page_token" = Option<String>, Query, description = "The previous answer's `next_page_token`: the next page of the same ranking"),
        ("max_per_genre" = Option<usize>, Query, description = "At most this many items of one genre (1 to 100)"),
    ),
    responses(
        (status = 200, description = "The list", body = Recommendations),
        (status = 400, description = "A parameter is wrong (named in the message)", body = ErrorBody),
        (status = 403, description = "`exclude_seen=false` without the users scope", body = ErrorBody),
        (status = 421, description = "Another node serves this user (its address in `owner`)", body = ErrorBody),
        (status = 503, description = "The node is starting", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_recommendations(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<Params>,
    granted: Option<Extension<Granted>>,
) -> Result<Json<Recommendations>, ApiError> {
    let services = state.services()?;
    let stored_id = state.stored_user_id(&user_id)?;
    services.check_owner(&stored_id)?;
    let own = ["count", "exclude_seen", "genre", "exclude"];
    reject_unknown_params(&params, &[&own[..], &LIST_PARAMS[..]].concat())?;
    let shaping: Vec<&str> = own[1..]
        .iter()
        .map(|name| params.get(*name).map_or("", String::as_str))
        .collect();
    let list = list_request(
        &params,
        &services.query.rules().current(),
        &[&["recommendations", &stored_id][..], &shaping[..]].concat(),
    )?;
    let exclude_seen = parse_bool(&params, "exclude_seen", true)?;
    // The list with the seen items against the list without them tells which items a user
    // has seen: that is the export's data, and needs its scope.
    if !exclude_seen && granted.is_some_and(|Extension(granted)| !granted.allows(Scope::Users)) {
        return Err(ApiError::Forbidden {
            message: "exclude_seen: false lists the items the user has seen, which needs the \
                      users scope (as the user's export does)"
                .into(),
        });
    }
    let query = RecommendationQuery {
        user_id: stored_id,
        count: parse_count(&params)?,
        exclude_seen,
        genre: parse_text(&params, "genre"),
        exclude: parse_exclude(&params)?,
        options: list.options.clone(),
    };
    // On the async worker, not `spawn_blocking`: a query's work is bounded (about 100 µs of
    // ranking and two RocksDB reads served from the block cache), and handing it to the
    // blocking pool cost two thread switches per request, 14% of a serving node's CPU. The
    // body is serialised straight to bytes (through a `serde_json::Value` it cost 6%).
    let assignment = services.experiments.assign(&query.user_id);
    let (strategy, items) = services.query.recommend_as(&query, &assignment.settings)?;
    Ok(Json(Recommendations {
        next_page_token: list.next_page_token(&items, query.count),
        recommendation_id: services.experiments.mint_recommendation_id(&query.user_id),
        experiments: groups_of(&assignment),
        flags: assignment.flags,
        user_id,
        strategy: strategy.into(),
        items: listed(items),
    }))
}

/// Items most like this one
///
/// What viewers watch around it (co-occurrence), completed for a new item by trending items
/// sharing a genre or tag.
#[utoipa::path(
    get,
    path = "/v1/items/{item_id}/similar",
    tag = "lists",
    params(
        ("item_id" = String, Path),
        ("count" = Option<usize>, Query, description = "1 to 100 (default 10)"),
        ("filter" = Option<String>, Query, description = "A filter expression (docs/RULES.md), e.g. `genres HAS \"Comedy\" AND year >= 1990`; `@name` for a saved filter"),
        ("region" = Option<String>, Query, description = "The viewer's region, for `$region` in a filter"),
        ("device" = Option<String>, Query, description = "The viewer's device, for `$device` in a filter"),
        ("maturity" = Option<String>, Query, description = "The viewer's maturity rating, for `$maturity` in a filter"),
        ("page_token" = Option<String>, Query, description = "The previous answer's `next_page_token`: the next page of the same ranking"),
        ("max_per_genre" = Option<usize>, Query, description = "At most this many items of one genre (1 to 100)"),
    ),
    responses(
        (status = 200, description = "The list", body = Similar),
        (status = 400, description = "A parameter is wrong", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_similar(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<Similar>, ApiError> {
    let services = state.services()?;
    check_path_id("item_id", &item_id)?;
    reject_unknown_params(&params, &[&["count"][..], &LIST_PARAMS[..]].concat())?;
    let count = parse_count(&params)?;
    let list = list_request(
        &params,
        &services.query.rules().current(),
        &["similar", &item_id],
    )?;
    // Bounded work from memory, on the async worker (see `get_recommendations`).
    let items = services
        .query
        .similar(&item_id, count, &list.options)
        .ok_or_else(|| ApiError::not_found(format!("item_id: no item {item_id:?}")))?;
    Ok(Json(Similar {
        next_page_token: list.next_page_token(&items, count),
        item_id,
        items: listed(items),
    }))
}

/// The most popular items now (time-decayed)
#[utoipa::path(
    get,
    path = "/v1/trending",
    tag = "lists",
    params(
        ("count" = Option<usize>, Query, description = "1 to 100 (default 10)"),
        ("genre" = Option<String>, Query, description = "Only items of this genre (case-insensitive)"),
        ("filter" = Option<String>, Query, description = "A filter expression (docs/RULES.md), e.g. `genres HAS \"Comedy\" AND year >= 1990`; `@name` for a saved filter"),
        ("region" = Option<String>, Query, description = "The viewer's region, for `$region` in a filter"),
        ("device" = Option<String>, Query, description = "The viewer's device, for `$device` in a filter"),
        ("maturity" = Option<String>, Query, description = "The viewer's maturity rating, for `$maturity` in a filter"),
        ("page_token" = Option<String>, Query, description = "The previous answer's `next_page_token`: the next page of the same ranking"),
        ("max_per_genre" = Option<usize>, Query, description = "At most this many items of one genre (1 to 100)"),
    ),
    responses(
        (status = 200, description = "The list", body = Trending),
        (status = 400, description = "A parameter is wrong", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_trending(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<Trending>, ApiError> {
    let services = state.services()?;
    reject_unknown_params(
        &params,
        &[&["count", "genre"][..], &LIST_PARAMS[..]].concat(),
    )?;
    let count = parse_count(&params)?;
    let genre = params.get("genre").map(String::as_str);
    let list = list_request(
        &params,
        &services.query.rules().current(),
        &["trending", genre.unwrap_or("")],
    )?;
    let items = services.query.trending(count, genre, &list.options);
    Ok(Json(Trending {
        next_page_token: list.next_page_token(&items, count),
        items: listed(items),
    }))
}
