//! The parameters every list route shares beyond its count — `filter` (with `region`,
//! `device`, `maturity` for its `$` names), `page_token`, `max_per_genre` — and the
//! `next_page_token` of an answer.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marquee_stream_processor::rules::paging::{MAX_SHOWN, PageToken, item_key, scope};
use marquee_stream_processor::rules::{REQUEST_PROPERTIES, RuleSet};
use marquee_stream_processor::{ListOptions, Recommendation};

use crate::error::ApiError;
use crate::params::{Params, parse_number};

/// The shared parameters, for `reject_unknown_params`.
pub const LIST_PARAMS: [&str; 6] = [
    "filter",
    "page_token",
    "max_per_genre",
    "region",
    "device",
    "maturity",
];

/// A list request's options and the scope its page tokens are bound to.
pub struct ListRequest {
    pub options: ListOptions,
    scope: u64,
    shown: Vec<u32>,
}

/// Reads the shared parameters. `parts` name the list (route, user or item, and the route's
/// own parameters that shape the ranking), for the page token's scope.
pub fn list_request(
    params: &Params,
    rules: &RuleSet,
    parts: &[&str],
) -> Result<ListRequest, ApiError> {
    let request: BTreeMap<String, String> = REQUEST_PROPERTIES
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), params.get(*name)?.clone())))
        .collect();
    for (name, value) in &request {
        if value.is_empty() || value.len() > 128 {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{name}: must be 1 to 128 bytes"),
            ));
        }
    }
    let filter = params
        .get("filter")
        .map(|text| rules.parse("filter", text, &request))
        .transpose()
        .map_err(|error| ApiError::bad_request("invalid_parameter", error.to_string()))?;
    let max_per_genre = parse_number(params, "max_per_genre", (1, 100))?.map(|n| n as usize);
    let mut scope_parts: Vec<&str> = parts.to_vec();
    for name in LIST_PARAMS.iter().filter(|name| **name != "page_token") {
        scope_parts.push(name);
        scope_parts.push(params.get(*name).map_or("", String::as_str));
    }
    let scope = scope(&scope_parts);
    let shown = match params.get("page_token") {
        None => Vec::new(),
        Some(text) => {
            let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "page_token: is not a page token of this node's",
                )
            })?;
            PageToken::decode(&bytes, scope)
                .map_err(|error| {
                    ApiError::bad_request("invalid_parameter", format!("page_token: {error}"))
                })?
                .shown
        }
    };
    Ok(ListRequest {
        options: ListOptions {
            filter,
            shown: shown.iter().copied().collect(),
            max_per_genre,
            matches: None,
        },
        scope,
        shown,
    })
}

impl ListRequest {
    /// The token of the page after `page` (of `count` asked): `None` when the page was not
    /// full (the ranking is spent) or the list reached [`MAX_SHOWN`] items.
    pub fn next_page_token(&self, page: &[Recommendation], count: usize) -> Option<String> {
        if page.len() < count || self.shown.len() + page.len() >= MAX_SHOWN {
            return None;
        }
        let mut shown = self.shown.clone();
        shown.extend(page.iter().map(|item| item_key(&item.item_id)));
        Some(
            URL_SAFE_NO_PAD.encode(
                PageToken {
                    scope: self.scope,
                    shown,
                }
                .encode(),
            ),
        )
    }
}
