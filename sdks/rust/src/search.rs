//! Catalogue search: [`Client::search`] and [`Client::suggest`].

use serde::Deserialize;

use crate::{Client, Error};

/// Options of [`Client::search`]; the defaults are the server's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchOptions {
    /// 1 to 100 (the server's default: 20).
    pub count: Option<usize>,
    /// Only items of this genre (any case).
    pub genre: Option<String>,
    /// Only items of this year or later.
    pub year_from: Option<i32>,
    /// Only items of this year or earlier.
    pub year_to: Option<i32>,
    /// Order equally relevant items by this viewer's taste.
    pub user_id: Option<String>,
}

impl SearchOptions {
    pub fn count(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    pub fn genre(mut self, genre: impl Into<String>) -> Self {
        self.genre = Some(genre.into());
        self
    }

    pub fn years(mut self, from: Option<i32>, to: Option<i32>) -> Self {
        self.year_from = from;
        self.year_to = to;
        self
    }

    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }
}

/// One item found.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchItem {
    pub item_id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default)]
    pub year: Option<i32>,
    /// The text relevance.
    pub relevance: f64,
}

/// How many matches have one value (a genre, or a decade's first year).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FacetCount<T> {
    pub value: T,
    pub count: u64,
}

/// The matches counted by genre (most first) and by decade (oldest first).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Facets {
    pub genres: Vec<FacetCount<String>>,
    pub decades: Vec<FacetCount<i32>>,
}

/// The answer of [`Client::search`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchResults {
    pub query: String,
    /// Best first.
    pub items: Vec<SearchItem>,
    /// How many items matched in all.
    pub total: u64,
    /// False when no item matched every word, and these match some.
    pub all_words: bool,
    /// Whether equally relevant items were ordered by the viewer's taste.
    pub personalised: bool,
    pub facets: Facets,
}

/// One suggestion of [`Client::suggest`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Suggestion {
    pub item_id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub year: Option<i32>,
}

#[derive(Deserialize)]
struct SuggestAnswer {
    suggestions: Vec<Suggestion>,
}

impl Client {
    /// `GET /v1/search`: catalogue items matching `query` (typos forgiven, the last word as a
    /// prefix), with facets.
    pub async fn search(
        &self,
        query: &str,
        options: &SearchOptions,
    ) -> Result<SearchResults, Error> {
        let mut url = self.url(&["v1", "search"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("q", query);
            if let Some(count) = options.count {
                pairs.append_pair("count", &count.to_string());
            }
            if let Some(genre) = &options.genre {
                pairs.append_pair("genre", genre);
            }
            if let Some(year) = options.year_from {
                pairs.append_pair("year_from", &year.to_string());
            }
            if let Some(year) = options.year_to {
                pairs.append_pair("year_to", &year.to_string());
            }
            if let Some(user_id) = &options.user_id {
                pairs.append_pair("user_id", user_id);
            }
        }
        self.get(url).await
    }

    /// `GET /v1/search/suggest`: titles for a query being typed (at most `count`, 1 to 20;
    /// the server's default 8).
    pub async fn suggest(
        &self,
        query: &str,
        count: Option<usize>,
    ) -> Result<Vec<Suggestion>, Error> {
        let mut url = self.url(&["v1", "search", "suggest"]);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("q", query);
            if let Some(count) = count {
                pairs.append_pair("count", &count.to_string());
            }
        }
        Ok(self.get::<SuggestAnswer>(url).await?.suggestions)
    }
}
