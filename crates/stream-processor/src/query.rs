//! The read side: recommendations, similar items and trending, over the processor's state.
//!
//! A personalised list ranks candidates by the sequential co-occurrence score of the user's
//! history (see [`crate::model`]), blended with the inner product of the user's embedding when
//! [`ModelConfig::embedding_weight`] is positive (candidates from the [`VectorIndex`], scored on
//! fresh vectors); each part is divided by its best score before blending. What the user has
//! seen, what the caller excluded and items outside the requested genre are filtered out; ties
//! go to the smaller item number. A list that only the content part could rank (the user's
//! items have no co-occurrence pairs yet) is labelled `cold_start`; so is a list of trending
//! items sharing a genre or tag with the user's positive items, when even the content part has
//! nothing (every item the user touched is new, and no cold item shares its labels). A user with no positive
//! signal yet (unknown, or only negative events) gets the trending list (`popular`) through the
//! same filters; a shorter list is filled from it too.
//!
//! Similar items use the same ranking with a history of the one item; an item with too few
//! pairs yet (a new one) is completed with trending items sharing a genre or tag with it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use marquee_schemas::Item;
use marquee_vector_store::{
    HistoryEntry, ItemTable, StateStore, Table, VectorIndex, content_labels,
};

use crate::error::Result;
use crate::model::ModelConfig;
use crate::strategy::Strategy;
use crate::telemetry::Metrics;
use crate::trending::Trending;

/// What [`QueryEngine::rank`] found.
struct Ranked {
    /// The best items, best first.
    items: Vec<(u32, f32)>,
    /// Whether co-occurrence or the embedding produced candidates (else only content did).
    behavioural: bool,
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub item_id: String,
    pub score: f32,
    pub title: Option<String>,
    pub genres: Vec<String>,
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
    model: Arc<ModelConfig>,
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

/// Per-thread score accumulator: one slot per item number, and the slots in use.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
    /// Per item, its position in the list being blended: the blend's lookup without hashing
    /// (a hash map of the candidates cost 11% of a serving node's CPU). An entry counts only
    /// where that position holds the item, so entries left by earlier queries need no reset.
    position: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Content scores of items without positive events, from the labels of the user's recent
/// positive items (see [`crate::model`]).
fn content_scores(
    table: &Table,
    history: &[HistoryEntry],
    model: &ModelConfig,
    accept: &dyn Fn(&Table, u32) -> bool,
) -> Vec<(u32, f32)> {
    // Ordered maps: the sums are then added in the same order on every run.
    let mut profile: BTreeMap<String, f32> = BTreeMap::new();
    let mut recency = 1.0f32;
    for past in history
        .iter()
        .rev()
        .filter(|past| past.weight > 0.0)
        .take(model.content_history)
    {
        if let Some(entry) = table.catalogue(past.item) {
            for label in content_labels(entry) {
                *profile.entry(label).or_default() += recency * past.weight;
            }
        }
        recency *= model.recency_decay;
    }
    let mut scores: BTreeMap<u32, f32> = BTreeMap::new();
    for (label, weight) in &profile {
        for item in table.cold_items(label) {
            if table.mass(item) == 0.0 {
                *scores.entry(item).or_default() += weight;
            }
        }
    }
    scores
        .into_iter()
        .filter(|(item, _)| accept(table, *item))
        .filter_map(|(item, score)| {
            // The number of its content labels, without building them.
            let entry = table.catalogue(item)?;
            let labels = (entry.genres.len() + entry.tags.len()).max(1);
            Some((item, score / (labels as f32).sqrt()))
        })
        .collect()
}

/// The `count` highest scores, best first; ties go to the smaller item number.
fn top(mut ranked: Vec<(u32, f32)>, count: usize) -> Vec<(u32, f32)> {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > count && count > 0 {
        ranked.select_nth_unstable_by(count - 1, order);
        ranked.truncate(count);
    }
    ranked.sort_unstable_by(order);
    ranked.truncate(count);
    ranked
}

impl QueryEngine {
    pub fn new(
        model: ModelConfig,
        store: StateStore,
        items: ItemTable,
        index: VectorIndex,
        trending: Trending,
        metrics: Metrics,
    ) -> QueryEngine {
        QueryEngine {
            model: Arc::new(model),
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
        // Sorted, for binary search: cheaper per candidate than hashing.
        let mut excluded: Vec<u32> = Vec::new();
        if query.exclude_seen {
            match &user {
                // Every event the user has is still in the history (none has fallen out of its
                // window): the items seen are the history's, and the `seen` column family need
                // not be read. Its iterator was 7% of a serving node's CPU.
                Some(state) if state.event_count == state.history.len() as u64 => {
                    excluded.extend(state.history.iter().map(|past| past.item));
                }
                Some(state) => excluded.extend(
                    self.store
                        .seen_with(&query.user_id, Some(state))?
                        .into_iter()
                        .map(|(item, _)| item),
                ),
                // No record: no event applied, so nothing seen.
                None => {}
            }
        }
        {
            let table = self.items.read();
            excluded.extend(query.exclude.iter().filter_map(|id| table.number(id)));
        }
        excluded.sort_unstable();
        excluded.dedup();
        let genre = query.genre.as_deref();
        let accept = |table: &Table, item: u32| {
            excluded.binary_search(&item).is_err()
                && genre.is_none_or(|genre| {
                    table
                        .catalogue(item)
                        .is_some_and(|entry| entry.has_genre(genre))
                })
        };
        let history = user
            .as_ref()
            .map_or(&[][..], |state| state.history.as_slice());
        let user_vector = user
            .as_ref()
            .map_or(&[][..], |state| state.vector.as_slice());
        let Ranked {
            items: mut ranked,
            behavioural,
        } = self.rank(history, user_vector, query.count, &accept);
        let table = self.items.read();
        if ranked.is_empty() {
            // The user's positive items have no pairs and no cold neighbours yet (new items):
            // trending items sharing their genres or tags come before the plain trending list.
            let labels: HashSet<String> = history
                .iter()
                .rev()
                .filter(|past| past.weight > 0.0)
                .take(self.model.content_history)
                .filter_map(|past| table.catalogue(past.item))
                .flat_map(|entry| content_labels(entry))
                .collect();
            ranked =
                self.trending_sharing(&table, &labels, query.count, &|item| accept(&table, item));
        }
        let strategy = if ranked.is_empty() {
            Strategy::Popular
        } else if behavioural {
            Strategy::Personalised
        } else {
            Strategy::ColdStart
        };
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

    /// Items most like `item_id`: ranked as for a viewer whose only event is a positive one on
    /// it. `None` when the item is unknown.
    pub fn similar(&self, item_id: &str, count: usize) -> Option<Vec<Recommendation>> {
        let (number, vector) = {
            let table = self.items.read();
            let number = table.number(item_id)?;
            (number, table.vector(number).to_vec())
        };
        let history = [HistoryEntry {
            item: number,
            weight: 1.0,
            timestamp: 0,
        }];
        let mut hits = self
            .rank(&history, &vector, count, &|_, candidate| {
                candidate != number
            })
            .items;
        let table = self.items.read();
        // Too few pairs yet (a new item): fill with the trending items that share a genre or
        // tag with it.
        if hits.len() < count
            && let Some(entry) = table.catalogue(number)
        {
            let labels: HashSet<String> = content_labels(entry).collect();
            let already: HashSet<u32> = hits.iter().map(|(item, _)| *item).collect();
            let fill = self.trending_sharing(&table, &labels, count - hits.len(), &|item| {
                item != number && !already.contains(&item)
            });
            hits.extend(fill);
        }
        Some(
            hits.into_iter()
                .filter_map(|(item, score)| to_recommendation(&table, item, score))
                .collect(),
        )
    }

    /// Up to `count` trending items, in trending order with score 0, that share one of `labels`
    /// and that `accept` takes.
    fn trending_sharing(
        &self,
        table: &Table,
        labels: &HashSet<String>,
        count: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if labels.is_empty() || count == 0 {
            return Vec::new();
        }
        self.trending
            .current()
            .iter()
            .filter(|(item, _)| accept(*item))
            .filter(|(item, _)| {
                table
                    .catalogue(*item)
                    .is_some_and(|other| content_labels(other).any(|l| labels.contains(&l)))
            })
            .take(count)
            .map(|(item, _)| (*item, 0.0))
            .collect()
    }

    /// The `count` best items for a history (oldest first) and an embedding, among those
    /// `accept`s; empty when neither says anything.
    fn rank(
        &self,
        history: &[HistoryEntry],
        vector: &[f32],
        count: usize,
        accept: &dyn Fn(&Table, u32) -> bool,
    ) -> Ranked {
        let model = &self.model;
        let embedded = if model.embedding_weight > 0.0 && vector.iter().any(|x| *x != 0.0) {
            self.index
                .search(vector, model.embedding_candidates.max(count), accept)
        } else {
            Vec::new()
        };
        let table = self.items.read();
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch {
                scores,
                touched,
                position,
            } = &mut *scratch;
            if scores.len() < table.len() {
                scores.resize(table.len(), 0.0);
            }
            if position.len() < table.len() {
                position.resize(table.len(), 0);
            }
            let mut recency = 1.0f32;
            for past in history.iter().rev().take(model.history_len) {
                let factor =
                    (recency + model.recency_floor) * past.weight * table.normalisers(past.item).0;
                recency *= model.recency_decay;
                if factor == 0.0 {
                    continue;
                }
                for &(candidate, weight) in table.neighbours(past.item).entries() {
                    let slot = &mut scores[candidate as usize];
                    if *slot == 0.0 {
                        touched.push(candidate);
                    }
                    *slot += factor * weight;
                }
            }
            // In three passes: the raw sums (resetting the slots), the candidate normalisers,
            // the filter. A loop of nothing but independent loads lets the CPU wait for many
            // cache misses at once; with the filter's call between them it waited for each.
            let mut ranked: Vec<(u32, f32)> = Vec::with_capacity(touched.len());
            for &candidate in touched.iter() {
                let raw = std::mem::take(&mut scores[candidate as usize]);
                if raw > 0.0 {
                    ranked.push((candidate, raw));
                }
            }
            touched.clear();
            let candidate_normalisers = table.candidate_normalisers();
            for (candidate, score) in &mut ranked {
                *score *= candidate_normalisers[*candidate as usize];
            }
            ranked.retain(|(candidate, _)| accept(&table, *candidate));
            let behavioural = !ranked.is_empty() || !embedded.is_empty();
            let blended = !embedded.is_empty() || model.content_weight > 0.0;
            let best = ranked.iter().map(|(_, score)| *score).fold(0.0, f32::max);
            if blended && best > 0.0 {
                for (_, score) in &mut ranked {
                    *score /= best;
                }
            }
            if blended {
                for (at, (item, _)) in ranked.iter().enumerate() {
                    position[*item as usize] = at as u32;
                }
            }
            let mut blend = |ranked: &mut Vec<(u32, f32)>, item: u32, part: f32| {
                let slot = &mut position[item as usize];
                match ranked.get_mut(*slot as usize) {
                    Some(entry) if entry.0 == item => entry.1 += part,
                    _ => {
                        *slot = ranked.len() as u32;
                        ranked.push((item, part));
                    }
                }
            };
            let best_embedded = embedded.iter().map(|hit| hit.score).fold(0.0, f32::max);
            if best_embedded > 0.0 {
                for hit in embedded.iter().filter(|hit| hit.score > 0.0) {
                    blend(
                        &mut ranked,
                        hit.item,
                        model.embedding_weight * hit.score / best_embedded,
                    );
                }
            }
            if model.content_weight > 0.0 {
                let content = content_scores(&table, history, model, accept);
                let best_content = content.iter().map(|(_, score)| *score).fold(0.0, f32::max);
                if best_content > 0.0 {
                    for (item, score) in content {
                        blend(
                            &mut ranked,
                            item,
                            model.content_weight * score / best_content,
                        );
                    }
                }
            }
            Ranked {
                items: top(ranked, count),
                behavioural,
            }
        })
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
        let seen = self.store.seen_with(user_id, Some(&state))?;
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct RecentEvent {
    pub item_id: String,
    pub weight: f32,
    pub timestamp: i64,
}
