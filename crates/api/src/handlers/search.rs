//! Catalogue search: `GET /v1/search` and `GET /v1/search/suggest`.

use axum::Json;
use axum::extract::{Query, State};
use marquee_stream_processor::search::{Filters, Found, SearchRequest};
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::handlers::list_options::list_request;
use crate::params::{Params, parse_number, parse_text, reject_unknown_params};
use crate::state::AppState;

/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Most items a search answer may hold.
pub const MAX_SEARCH_COUNT: usize = 100;
/// Most suggestions an answer may hold.
pub const MAX_SUGGESTIONS: usize = 20;

/// One item found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchItem {
    pub item_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub genres: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// The text relevance: BM25 of the words matched exactly, and the typo, prefix and year
    /// parts.
    pub relevance: f32,
}

impl From<Found> for SearchItem {
    fn from(found: Found) -> SearchItem {
        SearchItem {
            item_id: found.item_id,
            title: found.title,
            genres: found.genres,
            year: found.year,
            relevance: found.relevance,
        }
    }
}

/// How many matches have one genre.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GenreCount {
    pub value: String,
    pub count: u64,
}

/// How many matches are of one decade (`1990`: 1990 to 1999).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecadeCount {
    pub value: i32,
    pub count: u64,
}

/// The matches counted by genre and by decade.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Facets {
    /// Most matches first.
    pub genres: Vec<GenreCount>,
    /// The decade's first year (`1990`), oldest first.
    pub decades: Vec<DecadeCount>,
}

/// A search's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    pub query: String,
    /// Items matching the query, best first.
    pub items: Vec<SearchItem>,
    /// How many items matched in all.
    pub total: usize,
    /// Whether every word matched; false when no item matched them all, and these match some.
    pub all_words: bool,
    /// Whether items of similar relevance were ordered by the viewer's `user_id` (false
    /// without one, or when the model knows nothing of that viewer yet: then by popularity).
    pub personalised: bool,
    pub facets: Facets,
}

/// One suggestion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub item_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
}

/// Suggestions for a query being typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestions {
    pub query: String,
    pub suggestions: Vec<Suggestion>,
}

/// The `q` parameter: 1 to [`MAX_QUERY_BYTES`] bytes with a letter or digit.
fn parse_query(params: &Params) -> Result<String, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_parameter", message);
    let Some(text) = params.get("q") else {
        return Err(invalid("q: required, the text to search for".into()));
    };
    if text.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "q: must be at most {MAX_QUERY_BYTES} bytes, got {}",
            text.len()
        )));
    }
    if !text.chars().any(char::is_alphanumeric) {
        return Err(invalid(format!(
            "q: must contain a letter or a digit, got {text:?}"
        )));
    }
    Ok(text.clone())
}

/// The filters: `genre`, `year_from`, `year_to` (in order).
fn parse_filters(params: &Params) -> Result<Filters, ApiError> {
    let years = (1800, 3000);
    let year_from = parse_number(params, "year_from", years)?.map(|year| year as i32);
    let year_to = parse_number(params, "year_to", years)?.map(|year| year as i32);
    if let (Some(from), Some(to)) = (year_from, year_to)
        && from > to
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("year_from: must not be after year_to, got {from} > {to}"),
        ));
    }
    Ok(Filters {
        genre: parse_text(params, "genre"),
        year_from,
        year_to,
    })
}

/// Search the catalogue
///
/// Titles, genres and tags; typos forgiven (one edit in words of 5 letters or more, two from
/// 9), the last word matched as a prefix while it is typed (no trailing space), accents folded,
/// a year in the text preferred ("king kong 1933"). Every word must match; when no item matches
/// them all, items matching some are returned and `all_words` is false. With `user_id`, items of
/// similar relevance are ordered by that viewer's model score.
#[utoipa::path(
    get,
    path = "/v1/search",
    tag = "search",
    params(
        ("q" = String, Query, description = "The text, 1 to 256 bytes"),
        ("count" = Option<usize>, Query, description = "1 to 100 (default 20)"),
        ("genre" = Option<String>, Query, description = "Only items of this genre (case-insensitive)"),
        ("year_from" = Option<i32>, Query, description = "Only items of this year or later"),
        ("year_to" = Option<i32>, Query, description = "Only items of this year or earlier"),
        ("user_id" = Option<String>, Query, description = "Order items of similar relevance by this viewer's model score"),
        ("filter" = Option<String>, Query, description = "A filter expression every item found passes (docs/RULES.md)"),
        ("region" = Option<String>, Query, description = "The viewer's region, for `$region` in a filter"),
        ("device" = Option<String>, Query, description = "The viewer's device, for `$device` in a filter"),
        ("maturity" = Option<String>, Query, description = "The viewer's maturity rating, for `$maturity` in a filter"),
    ),
    responses(
        (status = 200, description = "The matches", body = SearchResults),
        (status = 400, description = "A parameter is wrong (named in the message)", body = ErrorBody),
        (status = 503, description = "The node is starting", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_search(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<SearchResults>, ApiError> {
    let services = state.services()?;
    reject_unknown_params(
        &params,
        &[
            "q",
            "count",
            "genre",
            "year_from",
            "year_to",
            "user_id",
            "filter",
            "region",
            "device",
            "maturity",
        ],
    )?;
    let rules = services.query.rules();
    let filter = list_request(&params, &rules.current(), &[])?.options.filter;
    let text = parse_query(&params)?;
    let count =
        parse_number(&params, "count", (1, MAX_SEARCH_COUNT as i64))?.unwrap_or(20) as usize;
    let filters = parse_filters(&params)?;
    // A viewer of another node's partition: that node has their history; the text order
    // stands here (`personalised` says so).
    let viewer = match params.get("user_id") {
        Some(user_id) => {
            let stored = state.stored_user_id(user_id)?;
            services.check_owner(&stored).is_ok().then_some(stored)
        }
        None => None,
    };
    let request = SearchRequest {
        text: text.clone(),
        count,
        filters,
        now: rules.clock().now_ms(),
        filter,
    };
    // Bounded work from memory and the index's memory-mapped files, on the async worker (see
    // `lists::get_recommendations`).
    let query = &services.query;
    let affinity = |items: &[u32]| {
        let user = viewer.as_deref()?;
        query.affinity(user, items).ok().flatten()
    };
    let answer = services
        .search
        .search(&request, &services.items, &affinity)?;
    Ok(Json(SearchResults {
        query: text,
        total: answer.total,
        all_words: answer.all_words,
        personalised: answer.personalised,
        items: answer.items.into_iter().map(SearchItem::from).collect(),
        facets: Facets {
            genres: answer
                .genres
                .into_iter()
                .map(|(value, count)| GenreCount { value, count })
                .collect(),
            decades: answer
                .decades
                .into_iter()
                .map(|(value, count)| DecadeCount { value, count })
                .collect(),
        },
    }))
}

/// Titles for a query being typed
///
/// Autocomplete: titles under the rules of `/v1/search`, the most watched first among titles
/// that match equally well.
#[utoipa::path(
    get,
    path = "/v1/search/suggest",
    tag = "search",
    params(
        ("q" = String, Query, description = "The text typed so far, 1 to 256 bytes"),
        ("count" = Option<usize>, Query, description = "1 to 20 (default 8)"),
    ),
    responses(
        (status = 200, description = "The suggestions", body = Suggestions),
        (status = 400, description = "A parameter is wrong (named in the message)", body = ErrorBody),
        (status = 503, description = "The node is starting", body = ErrorBody),
    ),
    security(("bearer" = ["read"]), ("apiKey" = ["read"]))
)]
pub async fn get_suggest(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Json<Suggestions>, ApiError> {
    let services = state.services()?;
    reject_unknown_params(&params, &["q", "count"])?;
    let text = parse_query(&params)?;
    let count = parse_number(&params, "count", (1, MAX_SUGGESTIONS as i64))?.unwrap_or(8) as usize;
    let now = services.query.rules().clock().now_ms();
    let found = services
        .search
        .suggest(&text, count, &services.items, now)?;
    Ok(Json(Suggestions {
        query: text,
        suggestions: found
            .into_iter()
            .map(|found| Suggestion {
                item_id: found.item_id,
                title: found.title,
                year: found.year,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::params;

    #[test]
    fn each_refusal_names_the_parameter() {
        let message = |error: ApiError| error.to_string();
        assert!(message(parse_query(&params(&[])).unwrap_err()).starts_with("q: required"));
        assert!(message(parse_query(&params(&[("q", " ")])).unwrap_err()).starts_with("q: "));
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert!(
            message(parse_query(&params(&[("q", &long)])).unwrap_err())
                .starts_with("q: must be at most 256 bytes")
        );
        assert_eq!(parse_query(&params(&[("q", "toy")])).unwrap(), "toy");
        let reversed = parse_filters(&params(&[("year_from", "2000"), ("year_to", "1990")]));
        assert_eq!(
            message(reversed.unwrap_err()),
            "year_from: must not be after year_to, got 2000 > 1990"
        );
        let bad_year = parse_filters(&params(&[("year_to", "soon")]));
        assert!(message(bad_year.unwrap_err()).starts_with("year_to: "));
    }
}
