//! Queries and catalogue writes: one request each, answered or failed with the server's
//! message. They are not retried: a caller waiting for a page prefers a quick error to a slow
//! answer, and decides itself whether to ask again ([`Error::Api`] carries `Retry-After`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ApiErrorBody;
use crate::{Client, Error};

/// Most items one catalogue request carries.
pub const ITEMS_PER_REQUEST: usize = 2_000;

/// One recommended, similar or trending item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recommendation {
    pub item_id: String,
    pub score: f64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default)]
    pub year: Option<i32>,
    /// Where it came from: `index`, `pairs`, `content`, `trending`, and `boost` or `pin`
    /// when a campaign moved it (one or more).
    #[serde(default)]
    pub sources: Vec<String>,
    /// The campaign that boosted or pinned it.
    #[serde(default)]
    pub campaign: Option<String>,
}

/// The answer of [`Client::recommendations`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recommendations {
    pub user_id: String,
    /// `personalised`, `cold_start` (built from a new user's few events) or `popular`.
    pub strategy: String,
    /// Names the list: pass it to [`crate::Client::impression`] when the list is shown and to
    /// [`crate::Event::from_list`] on what follows.
    #[serde(default)]
    pub recommendation_id: String,
    /// Running experiment → the group the list was made for.
    #[serde(default)]
    pub experiments: std::collections::BTreeMap<String, String>,
    /// The feature flags on for the user.
    #[serde(default)]
    pub flags: Vec<String>,
    pub items: Vec<Recommendation>,
    /// Pass it as [`RecommendationOptions::page_token`] for the next page of the same ranking;
    /// `None` once the ranking is spent.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// Options of [`Client::recommendations`]; the defaults are the server's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecommendationOptions {
    pub count: Option<usize>,
    pub genre: Option<String>,
    pub exclude: Vec<String>,
    /// Whether items the user has interacted with are left out (the server's default: yes).
    pub exclude_seen: Option<bool>,
    /// A filter expression (`docs/RULES.md`), e.g. `genres HAS "Comedy" AND year >= 1990`.
    pub filter: Option<String>,
    /// The viewer's region, device and maturity rating, for `$region`, `$device` and
    /// `$maturity` in a filter.
    pub region: Option<String>,
    pub device: Option<String>,
    pub maturity: Option<String>,
    /// The previous answer's `next_page_token`.
    pub page_token: Option<String>,
    /// At most this many items of one genre.
    pub max_per_genre: Option<usize>,
}

impl RecommendationOptions {
    pub fn count(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    pub fn genre(mut self, genre: impl Into<String>) -> Self {
        self.genre = Some(genre.into());
        self
    }

    pub fn exclude(mut self, item_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.exclude = item_ids.into_iter().map(Into::into).collect();
        self
    }

    pub fn exclude_seen(mut self, exclude_seen: bool) -> Self {
        self.exclude_seen = Some(exclude_seen);
        self
    }

    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.filter = Some(expression.into());
        self
    }

    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    pub fn maturity(mut self, maturity: impl Into<String>) -> Self {
        self.maturity = Some(maturity.into());
        self
    }

    pub fn page_token(mut self, token: impl Into<String>) -> Self {
        self.page_token = Some(token.into());
        self
    }

    pub fn max_per_genre(mut self, limit: usize) -> Self {
        self.max_per_genre = Some(limit);
        self
    }
}

/// Options of [`Client::trending`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrendingOptions {
    pub count: Option<usize>,
    pub genre: Option<String>,
}

/// A catalogue item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub item_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The licence window, in milliseconds since the epoch: listed from `available_from`
    /// until before `available_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<i64>,
    /// Pulled from every list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// Custom properties, of the types the server's property schema declares.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub properties: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The answer of [`Client::upsert_items`]: how many were stored, and each refused item's
/// position and the server's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    pub upserted: u64,
    pub rejected: Vec<(usize, String)>,
}

#[derive(Deserialize)]
struct ItemsAnswer {
    items: Vec<Recommendation>,
}

#[derive(Deserialize)]
struct UpsertAnswer {
    #[serde(default)]
    upserted: u64,
    #[serde(default)]
    rejected: Vec<UpsertRejection>,
}

#[derive(Deserialize)]
struct UpsertRejection {
    index: usize,
    error: String,
}

impl Client {
    /// `GET /v1/users/{user_id}/recommendations`: what this user should watch next.
    pub async fn recommendations(
        &self,
        user_id: &str,
        options: &RecommendationOptions,
    ) -> Result<Recommendations, Error> {
        let mut url = self.url(&["v1", "users", user_id, "recommendations"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(count) = options.count {
                query.append_pair("count", &count.to_string());
            }
            if let Some(genre) = &options.genre {
                query.append_pair("genre", genre);
            }
            if !options.exclude.is_empty() {
                query.append_pair("exclude", &options.exclude.join(","));
            }
            if let Some(exclude_seen) = options.exclude_seen {
                query.append_pair("exclude_seen", if exclude_seen { "true" } else { "false" });
            }
            for (name, value) in [
                ("filter", &options.filter),
                ("region", &options.region),
                ("device", &options.device),
                ("maturity", &options.maturity),
                ("page_token", &options.page_token),
            ] {
                if let Some(value) = value {
                    query.append_pair(name, value);
                }
            }
            if let Some(limit) = options.max_per_genre {
                query.append_pair("max_per_genre", &limit.to_string());
            }
        }
        self.get(url).await
    }

    /// `DELETE /v1/items/{item_id}` (an `admin` key): the item leaves every list, similar
    /// items and search from the next request on; its events stay. An upsert brings it back.
    pub async fn delete_item(&self, item_id: &str) -> Result<(), Error> {
        let request = self.handle.http.delete(self.url(&["v1", "items", item_id]));
        let (status, retry_after, text) = self.exchange(request).await?;
        if status.is_success() {
            return Ok(());
        }
        let error = ApiErrorBody::parse(&text);
        Err(Error::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            retry_after,
        })
    }

    /// `GET /v1/items/{item_id}/similar`: items most like this one.
    pub async fn similar(
        &self,
        item_id: &str,
        count: Option<usize>,
    ) -> Result<Vec<Recommendation>, Error> {
        let mut url = self.url(&["v1", "items", item_id, "similar"]);
        if let Some(count) = count {
            url.query_pairs_mut()
                .append_pair("count", &count.to_string());
        }
        Ok(self.get::<ItemsAnswer>(url).await?.items)
    }

    /// `GET /v1/trending`: the most popular items now.
    pub async fn trending(&self, options: &TrendingOptions) -> Result<Vec<Recommendation>, Error> {
        let mut url = self.url(&["v1", "trending"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(count) = options.count {
                query.append_pair("count", &count.to_string());
            }
            if let Some(genre) = &options.genre {
                query.append_pair("genre", genre);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(self.get::<ItemsAnswer>(url).await?.items)
    }

    /// `GET /v1/items/{item_id}`.
    pub async fn item(&self, item_id: &str) -> Result<Item, Error> {
        self.get(self.url(&["v1", "items", item_id])).await
    }

    /// `POST /v1/items`: creates or replaces catalogue items (an `admin` key), in requests of
    /// at most [`ITEMS_PER_REQUEST`]; a refusal's position is the item's in `items`. Anything
    /// that serialises as the server's item JSON will do ([`Item`], or a server-side type).
    pub async fn upsert_items<I: Serialize>(&self, items: &[I]) -> Result<Upserted, Error> {
        let mut total = Upserted {
            upserted: 0,
            rejected: Vec::new(),
        };
        for (chunk_at, chunk) in items.chunks(ITEMS_PER_REQUEST).enumerate() {
            let request = self
                .handle
                .http
                .post(self.url(&["v1", "items"]))
                .json(chunk);
            let answer: UpsertAnswer = match self.send(request).await {
                Ok(answer) => answer,
                // Every item of the chunk invalid: the same answer under 422.
                Err(Error::Api {
                    status: 422,
                    message,
                    ..
                }) => match serde_json::from_str::<UpsertAnswer>(&message) {
                    Ok(answer) => answer,
                    Err(_) => {
                        return Err(Error::Api {
                            status: 422,
                            code: "validation_failed".into(),
                            message,
                            retry_after: None,
                        });
                    }
                },
                Err(error) => return Err(error),
            };
            total.upserted += answer.upserted;
            let offset = chunk_at * ITEMS_PER_REQUEST;
            total.rejected.extend(
                answer
                    .rejected
                    .into_iter()
                    .map(|rejection| (offset + rejection.index, rejection.error)),
            );
        }
        Ok(total)
    }

    /// The base URL with `segments` appended, each percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.handle.base.clone();
        url.path_segments_mut()
            .expect("checked at build: a base URL")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, url: reqwest::Url) -> Result<T, Error> {
        let request = self.handle.http.get(url);
        self.send(request).await
    }

    /// Sends `request` with the key and reads a 2xx answer as `T`; any other status is the
    /// server's error.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let (status, retry_after, text) = self.exchange(request).await?;
        if !status.is_success() {
            let error = ApiErrorBody::parse(&text);
            return Err(Error::Api {
                status: status.as_u16(),
                code: error.code,
                message: error.message,
                retry_after,
            });
        }
        serde_json::from_str(&text).map_err(|error| Error::Decode(error.to_string()))
    }
}
