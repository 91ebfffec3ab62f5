//! The read side: recommendations, similar items and trending, over the processor's state.
//!
//! A personalised list is the items with the largest inner product with the user's embedding
//! (from the [`VectorIndex`], scored on fresh vectors), minus what the user has seen, what the
//! caller excluded, and items outside the requested genre. A user without an embedding (unknown,
//! or only negative events so far) gets the trending list through the same filters; a
//! personalised list that comes up short is filled from it too.

use std::collections::HashSet;
use std::sync::Arc;

use marquee_schemas::Item;
use marquee_vector_store::{ItemTable, StateStore, Table, VectorIndex};
use serde::Serialize;

use crate::error::Result;
use crate::telemetry::Metrics;
use crate::trending::Trending;

/// Which method produced a list. The same values label `marquee_recommendations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Ranked by the user's embedding.
    Personalised,
    /// The trending list, for a user the model knows nothing positive about yet.
    Popular,
}

impl Strategy {
    pub const ALL: [Strategy; 2] = [Strategy::Personalised, Strategy::Popular];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Personalised => "personalised",
            Strategy::Popular => "popular",
        }
    }
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub item_id: String,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub genres: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
}

/// A recommendation request, validated by the caller.
#[derive(Debug, Clone)]
pub struct RecommendationQuery {
    pub user_id: String,
    pub count: usize,
    pub exclude_seen: bool,
    pub genre: Option<String>,
    pub exclude: Vec<String>,
}

/// Answers queries. Cheap to clone.
#[derive(Clone, Debug)]
pub struct QueryEngine {
    store: StateStore,
    items: ItemTable,
    index: VectorIndex,
    trending: Trending,
    metrics: Metrics,
}

fn to_recommendation(table: &Table, item: u32, score: f32) -> Option<Recommendation> {
    let item_id = table.id(item)?.to_string();
    let catalogue: Option<&Arc<Item>> = table.catalogue(item);
    Some(Recommendation {
        item_id,
        score,
        title: catalogue.and_then(|entry| entry.title.clone()),
        genres: catalogue
            .map(|entry| entry.genres.clone())
            .unwrap_or_default(),
        year: catalogue.and_then(|entry| entry.year),
    })
}

impl QueryEngine {
    pub fn new(
        store: StateStore,
        items: ItemTable,
        index: VectorIndex,
        trending: Trending,
        metrics: Metrics,
    ) -> QueryEngine {
        QueryEngine {
            store,
            items,
            index,
            trending,
            metrics,
        }
    }

    /// A user's recommendations and the strategy that produced them.
    pub fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<(Strategy, Vec<Recommendation>)> {
        let user = self.store.user(&query.user_id)?;
        let mut excluded: HashSet<u32> = HashSet::new();
        if query.exclude_seen {
            excluded.extend(
                self.store
                    .seen_items(&query.user_id)?
                    .into_iter()
                    .map(|(item, _)| item),
            );
        }
        {
            let table = self.items.read();
            excluded.extend(query.exclude.iter().filter_map(|id| table.number(id)));
        }
        let genre = query.genre.as_deref();
        let accept = |table: &Table, item: u32| {
            !excluded.contains(&item)
                && genre.is_none_or(|genre| {
                    table
                        .catalogue(item)
                        .is_some_and(|entry| entry.has_genre(genre))
                })
        };
        let user_vector = user
            .as_ref()
            .map(|state| state.vector.as_slice())
            .filter(|vector| vector.iter().any(|x| *x != 0.0));
        let (strategy, mut ranked) = match user_vector {
            Some(vector) => (
                Strategy::Personalised,
                self.index
                    .search(vector, query.count, accept)
                    .into_iter()
                    .map(|scored| (scored.item, scored.score))
                    .collect::<Vec<_>>(),
            ),
            None => (Strategy::Popular, Vec::new()),
        };
        let table = self.items.read();
        if ranked.len() < query.count {
            let already: HashSet<u32> = ranked.iter().map(|(item, _)| *item).collect();
            let trending = self.trending.current();
            ranked.extend(
                trending
                    .iter()
                    .filter(|(item, _)| !already.contains(item) && accept(&table, *item))
                    .take(query.count - ranked.len())
                    .copied(),
            );
        }
        let list = ranked
            .into_iter()
            .filter_map(|(item, score)| to_recommendation(&table, item, score))
            .collect();
        self.metrics
            .recommendations
            .with_label_values(&[strategy.as_str()])
            .inc();
        Ok((strategy, list))
    }

    /// Items whose vectors have the largest inner product with `item_id`'s; `None` when the
    /// item is unknown.
    pub fn similar(&self, item_id: &str, count: usize) -> Option<Vec<Recommendation>> {
        let (number, vector) = {
            let table = self.items.read();
            let number = table.number(item_id)?;
            (number, table.vector(number).to_vec())
        };
        let hits = self
            .index
            .search(&vector, count, |_, candidate| candidate != number);
        let table = self.items.read();
        Some(
            hits.into_iter()
                .filter_map(|hit| to_recommendation(&table, hit.item, hit.score))
                .collect(),
        )
    }

    /// The most popular items now, optionally within a genre.
    pub fn trending(&self, count: usize, genre: Option<&str>) -> Vec<Recommendation> {
        let trending = self.trending.current();
        let table = self.items.read();
        trending
            .iter()
            .filter(|(item, _)| {
                genre.is_none_or(|genre| {
                    table
                        .catalogue(*item)
                        .is_some_and(|entry| entry.has_genre(genre))
                })
            })
            .filter_map(|(item, score)| to_recommendation(&table, *item, *score))
            .take(count)
            .collect()
    }

    /// The catalogue entry of an item, or `None`.
    pub fn item(&self, item_id: &str) -> Option<Arc<Item>> {
        let table = self.items.read();
        let number = table.number(item_id)?;
        table.catalogue(number).cloned()
    }

    /// A user's state summary, for the user endpoint.
    pub fn user_summary(&self, user_id: &str) -> Result<Option<UserSummary>> {
        let Some(state) = self.store.user(user_id)? else {
            return Ok(None);
        };
        let seen = self.store.seen_items(user_id)?;
        let table = self.items.read();
        let mut seen_ids: Vec<String> = seen
            .iter()
            .filter_map(|(item, _)| table.id(*item).map(|id| id.to_string()))
            .collect();
        seen_ids.sort();
        let recent = state
            .history
            .iter()
            .rev()
            .filter_map(|entry| {
                Some(RecentEvent {
                    item_id: table.id(entry.item)?.to_string(),
                    weight: entry.weight,
                    timestamp: entry.timestamp,
                })
            })
            .collect();
        Ok(Some(UserSummary {
            user_id: user_id.to_owned(),
            event_count: state.event_count,
            last_timestamp: state.last_timestamp,
            seen_items: seen_ids,
            recent,
        }))
    }
}

/// What the model knows of a user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSummary {
    pub user_id: String,
    /// Events applied (each `event_id` once).
    pub event_count: u64,
    pub last_timestamp: i64,
    /// Every item the user interacted with, sorted.
    pub seen_items: Vec<String>,
    /// The model's history window, newest first.
    pub recent: Vec<RecentEvent>,
}

/// One entry of a user's recent history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentEvent {
    pub item_id: String,
    pub weight: f32,
    pub timestamp: i64,
}
