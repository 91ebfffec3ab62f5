//! The read side: recommendations, similar items and trending, over the processor's state.
//!
//! A personalised list takes candidates from three sources ([`Sources`]): the co-occurrence
//! lists of the user's history (`pairs`, see [`crate::model`]), the [`VectorIndex`] searched
//! with the user's vector (`index`: the recency-weighted sum of the history's source vectors,
//! [`user_vector`]; one graph search whatever the history's length), and items without events
//! that match the user's genres and tags (`content`). Candidates are ranked by the pairs'
//! score, blended with the content part and — when [`ModelConfig::embedding_weight`] is
//! positive — with the inner product of the user's vector (each part divided by its best score).
//! At weight 0, the default, the pairs' score is read exactly for the last
//! [`ModelConfig::pair_history`] events only; a longer history's older events are scored through
//! their vector (`with_tail`: the sum of their source vectors against each candidate's target
//! vector, which the factorisation makes the same units as the pairs), over the index's
//! candidates and the recent pairs' best [`ModelConfig::pair_candidates`]. So a query reads at
//! most `pair_history` co-occurrence lists whatever the history's length. For a shorter history,
//! the index's candidates that no other part ranked follow the ranked ones by inner product
//! (reach: a list the pairs cannot fill). An item the index proposed says so in its sources.
//! What the user has
//! seen, what the caller excluded and items outside the requested genre are filtered out; ties
//! go to the smaller item number. A list that only the content part and the index's reach
//! could rank (the user's items have no co-occurrence pairs yet) is labelled `cold_start`; so is a list of trending
//! items sharing a genre or tag with the user's positive items, when even the content part has
//! nothing (every item the user touched is new, and no cold item shares its labels). A user with no positive
//! signal yet (unknown, or only negative events) gets the trending list (`popular`) through the
//! same filters; a shorter list is filled from it too.
//!
//! Every list then follows the catalogue's rules (`docs/RULES.md`): a candidate must be listable
//! at the request's time (not deleted, not hidden, inside its licence window) and pass the
//! request's filter; `filtered` ranks under a filter (the unfiltered ranking with the refused
//! items taken out, then the ranking among the filter's matches), `finish` applies the
//! campaigns, the page token and the per-genre limit. Candidate pools are the same for every
//! depth up to 200, so a shallower ranking is a prefix of a deeper one.
//!
//! Similar items use the same ranking with a history of the one item (the index searched with
//! its source vector: what viewers watch after it); an item with too few
//! pairs yet (a new one) is completed with trending items sharing a genre or tag with it.

use std::collections::HashSet;
use std::sync::Arc;

use marquee_schemas::Item;
use marquee_vector_store::vector::dot;
use marquee_vector_store::{HistoryEntry, ItemTable, StateStore, Table, VectorIndex};

use crate::error::Result;
use crate::experiments::{ListStrategy, RankingSettings};
use crate::model::ModelConfig;
use crate::rules::Rules;
use crate::strategy::Strategy;
use crate::telemetry::Metrics;
use crate::trending::Trending;

mod filtered;
mod finish;
mod score;
mod seen;
mod sources;

pub use finish::ListOptions;
use finish::{Entry, PAGE_WINDOW, apply_campaigns, page};
pub use seen::SEEN_SCAN;

/// Rankings to this depth share their candidate pools (the index's and the pairs' best), so
/// a shallower ranking is a prefix of a deeper one: the pages of a list and a filter's first
/// pass rest on it (`finish`). Deeper rankings widen the pools to their depth.
const FIXED_POOL_DEPTH: usize = 200;

/// What the candidate pools are widened to for a ranking of `depth`.
fn pool_depth(depth: usize) -> usize {
    if depth <= FIXED_POOL_DEPTH { 0 } else { depth }
}

use score::{
    blend, content_scores, pair_scores, share, top, vector_and_tail, with_reach, with_tail,
};
pub use score::{user_vector, user_vector_from};
pub use sources::{Ranking, Sources};

/// What [`QueryEngine::rank`] found.
struct Ranked {
    /// The best items, best first, with the sources that proposed each.
    items: Vec<(u32, f32, Sources)>,
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
    /// Where it came from.
    pub sources: Sources,
    /// The campaign that boosted or pinned it.
    pub campaign: Option<Arc<str>>,
}

/// A recommendation request, validated by the caller.
#[derive(Debug, Clone)]
pub struct RecommendationQuery {
    pub user_id: String,
    pub count: usize,
    pub exclude_seen: bool,
    pub genre: Option<String>,
    pub exclude: Vec<String>,
    /// The filter, the pages shown, the per-genre limit.
    pub options: ListOptions,
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
    rules: Rules,
}

/// The embedding's score of every candidate, the pairs' included: the index's hits with their
/// inner products, the pairs' other candidates with one inner product each on the current
/// vectors.
fn embedding_scores(
    table: &Table,
    embedded: &[marquee_vector_store::Scored],
    ranked: &[(u32, f32, Sources)],
    user_vector: &[f32],
) -> Vec<(u32, f32, Sources)> {
    let hits: HashSet<u32> = embedded.iter().map(|hit| hit.item).collect();
    let mut scores: Vec<(u32, f32, Sources)> = embedded
        .iter()
        .map(|hit| (hit.item, hit.score, Sources::INDEX))
        .collect();
    scores.extend(
        ranked
            .iter()
            .filter(|(item, _, _)| !hits.contains(item))
            .map(|&(item, _, _)| {
                (
                    item,
                    dot(user_vector, table.vector(item)),
                    Sources::default(),
                )
            }),
    );
    scores
}

fn to_recommendation(
    table: &Table,
    (item, score, sources, campaign): Entry,
) -> Option<Recommendation> {
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
        sources,
        campaign,
    })
}

impl QueryEngine {
    pub fn new(
        model: ModelConfig,
        store: StateStore,
        items: ItemTable,
        index: VectorIndex,
        trending: Trending,
        metrics: Metrics,
        rules: Rules,
    ) -> QueryEngine {
        QueryEngine {
            model: Arc::new(model),
            store,
            items,
            index,
            trending,
            metrics,
            rules,
        }
    }

    /// The rules the lists follow (campaigns, saved filters, the property schema, the clock).
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Applies the campaigns in effect to a ranking and cuts the page (see [`finish`]).
    fn finish(
        &self,
        table: &Table,
        ranked: Vec<(u32, f32, Sources)>,
        count: usize,
        options: &ListOptions,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Recommendation> {
        let rules = self.rules.current();
        let campaigns = rules.active_campaigns(self.rules.clock().now_ms());
        let list = apply_campaigns(table, ranked, &campaigns, accept);
        page(table, list, count, options)
            .into_iter()
            .filter_map(|entry| to_recommendation(table, entry))
            .collect()
    }

    /// A user's recommendations and the strategy that produced them.
    pub fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<(Strategy, Vec<Recommendation>)> {
        self.recommend_with(query, Ranking::ALL)
    }

    /// A user's recommendations from the parts `ranking` names (the evaluator's rows).
    pub fn recommend_with(
        &self,
        query: &RecommendationQuery,
        ranking: Ranking,
    ) -> Result<(Strategy, Vec<Recommendation>)> {
        self.recommend_ranked(query, ranking, &self.model.clone(), false)
    }

    /// A user's recommendations ranked as an experiment's variant or a flag says
    /// ([`RankingSettings`]: the parts, the blend's settings, the trending list only, a genre
    /// when the request names none).
    pub fn recommend_as(
        &self,
        query: &RecommendationQuery,
        settings: &RankingSettings,
    ) -> Result<(Strategy, Vec<Recommendation>)> {
        if settings.is_empty() {
            return self.recommend(query);
        }
        let changed;
        let model = if settings.changes_model() {
            changed = Arc::new(settings.model(&self.model));
            &changed
        } else {
            &self.model
        };
        let mut query = query.clone();
        if query.genre.is_none() {
            query.genre.clone_from(&settings.genre);
        }
        let popular = settings.strategy == Some(ListStrategy::Popular);
        let ranking = settings.sources.map_or(Ranking::ALL, |sources| Ranking {
            pairs: sources.pairs,
            index: sources.index,
            content: sources.content,
        });
        self.recommend_ranked(&query, ranking, model, popular)
    }

    /// Counts a list's items by source.
    fn count_sources(&self, list: &[Recommendation]) {
        for item in list {
            for source in item.sources.names().filter(|name| *name != "trending") {
                self.metrics
                    .recommendation_items
                    .with_label_values(&[source])
                    .inc();
            }
        }
    }

    /// Items most like `item_id`: ranked as for a viewer whose only event is a positive one on
    /// it. `None` when the item is unknown or deleted.
    pub fn similar(
        &self,
        item_id: &str,
        count: usize,
        options: &ListOptions,
    ) -> Option<Vec<Recommendation>> {
        let options = &self.with_matches(options);
        let number = self.items.read().number(item_id)?;
        if self.items.read().is_deleted(number) {
            return None;
        }
        let now = self.rules.clock().now_ms();
        let base =
            |table: &Table, candidate: u32| candidate != number && table.listable(candidate, now);
        let accept = |table: &Table, candidate: u32| {
            base(table, candidate) && options.accepts(table, candidate)
        };
        let history = [HistoryEntry {
            item: number,
            weight: 1.0,
            timestamp: 0,
        }];
        let ((), hits) = self.filtered(options, count, &base, &accept, |depth, accept, among| {
            let mut hits = self
                .rank(&self.model, &history, depth, accept, Ranking::ALL, among)
                .items;
            let table = self.items.read();
            // Too few pairs yet (a new item): fill with the trending items that share a genre
            // or tag with it.
            if hits.len() < depth {
                let labels: HashSet<&str> = table.labels(number).iter().map(|l| &**l).collect();
                let already: HashSet<u32> = hits.iter().map(|(item, _, _)| *item).collect();
                let fill = self.trending_sharing(&table, &labels, depth - hits.len(), &|item| {
                    accept(&table, item) && !already.contains(&item)
                });
                hits.extend(fill);
            }
            ((), hits)
        });
        let table = self.items.read();
        let list = self.finish(&table, hits, count, options, &|item| accept(&table, item));
        self.count_sources(&list);
        Some(list)
    }

    /// Up to `count` trending items, in trending order with score 0, that share one of `labels`
    /// and that `accept` takes.
    fn trending_sharing(
        &self,
        table: &Table,
        labels: &HashSet<&str>,
        count: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32, Sources)> {
        if labels.is_empty() || count == 0 {
            return Vec::new();
        }
        self.trending
            .current()
            .iter()
            .filter(|(item, _)| accept(*item))
            .filter(|(item, _)| table.labels(*item).iter().any(|l| labels.contains(&**l)))
            .take(count)
            .map(|(item, _)| (*item, 0.0, Sources::TRENDING.with(Sources::CONTENT)))
            .collect()
    }

    /// The `count` best items for a history (oldest first), among those `accept`s, from the
    /// parts `ranking` names; empty when none says anything. Each part is divided by its best
    /// score before they are blended (see the module docs).
    fn rank(
        &self,
        model: &ModelConfig,
        history: &[HistoryEntry],
        count: usize,
        accept: &dyn Fn(&Table, u32) -> bool,
        ranking: Ranking,
        among: Option<&[u32]>,
    ) -> Ranked {
        let use_index = ranking.index;
        // With the index, the pairs read the last `pair_history` events exactly and the user's
        // vector carries the rest (at weight 0, the older events' vector scores the candidates,
        // `with_tail`; at a positive weight, the whole vector's share is blended in); without
        // it, the pairs read the whole history.
        let blend_embedding = use_index && (model.embedding_weight > 0.0 || !ranking.pairs);
        let pair_history = if use_index {
            model.pair_history
        } else {
            model.history_len
        };
        let (user_vector, tail) = if use_index {
            let (whole, tail) = vector_and_tail(&self.items.read(), history, model, pair_history);
            (whole, tail.filter(|_| !blend_embedding))
        } else {
            (Vec::new(), None)
        };
        let embedded = if user_vector.iter().any(|x| *x != 0.0) {
            let wanted = model.embedding_candidates.max(pool_depth(count));
            match among {
                Some(members) => self
                    .index
                    .search_among(&user_vector, wanted, members, accept),
                None => self.index.search(&user_vector, wanted, accept),
            }
        } else {
            Vec::new()
        };
        let table = self.items.read();
        let mut ranked = if ranking.pairs {
            pair_scores(&table, history, model, pair_history, accept)
        } else {
            Vec::new()
        };
        self.metrics
            .recommendation_candidates
            .with_label_values(&["pairs"])
            .inc_by(ranked.len() as u64);
        self.metrics
            .recommendation_candidates
            .with_label_values(&["index"])
            .inc_by(embedded.len() as u64);
        // The index's reach alone (weight 0) does not make a list personalised: for a viewer
        // whose items have no pairs yet, its vectors are their genres' and tags'.
        let behavioural = !ranked.is_empty() || (blend_embedding && !embedded.is_empty());
        let embedding_weight = if ranking.pairs {
            model.embedding_weight
        } else {
            1.0
        };
        let mut embedded = embedded;
        if let Some(tail) = &tail
            && !ranked.is_empty()
        {
            // A history longer than the pairs read: the index's candidates are ranked with
            // the recent pairs' best, by both parts of the score.
            let hits: Vec<(u32, Sources)> = embedded
                .iter()
                .map(|hit| (hit.item, Sources::INDEX))
                .collect();
            ranked = with_tail(
                &table,
                ranked,
                &hits,
                tail,
                model.pair_candidates.max(pool_depth(count)),
            );
            embedded.clear();
        }
        // Without the embedding's share (weight 0), the index's candidates that nothing else
        // proposed come after the ranked ones, by inner product: reach, not a change of order.
        let (embedded, reach) = if blend_embedding {
            (embedded, Vec::new())
        } else {
            let reach: Vec<(u32, f32, Sources)> = embedded
                .iter()
                .map(|hit| (hit.item, hit.score, Sources::INDEX))
                .collect();
            (Vec::new(), reach)
        };
        let blended = !embedded.is_empty() || (ranking.content && model.content_weight > 0.0);
        let best = ranked
            .iter()
            .map(|(_, score, _)| *score)
            .fold(0.0, f32::max);
        if blended && best > 0.0 {
            for (_, score, _) in &mut ranked {
                *score /= best;
            }
        }
        let mut parts: Vec<(u32, f32, Sources)> = Vec::new();
        if !embedded.is_empty() {
            let scores = embedding_scores(&table, &embedded, &ranked, &user_vector);
            parts.extend(share(scores, embedding_weight));
        }
        if ranking.content && model.content_weight > 0.0 {
            let content: Vec<(u32, f32, Sources)> = content_scores(&table, history, model, accept)
                .into_iter()
                .map(|(item, score)| (item, score, Sources::CONTENT))
                .collect();
            self.metrics
                .recommendation_candidates
                .with_label_values(&["content"])
                .inc_by(content.len() as u64);
            parts.extend(share(content, model.content_weight));
        }
        if blended {
            blend(&mut ranked, parts, table.len());
        }
        let items = with_reach(top(ranked, count), reach, count, table.len());
        Ranked { items, behavioural }
    }

    /// The most popular items now, optionally within a genre.
    pub fn trending(
        &self,
        count: usize,
        genre: Option<&str>,
        options: &ListOptions,
    ) -> Vec<Recommendation> {
        let options = &self.with_matches(options);
        let trending = self.trending.current();
        let table = self.items.read();
        let now = self.rules.clock().now_ms();
        let accept = |item: u32| {
            table.listable(item, now)
                && genre.is_none_or(|genre| {
                    table
                        .catalogue(item)
                        .is_some_and(|entry| entry.has_genre(genre))
                })
                && options.accepts(&table, item)
        };
        let ranked: Vec<(u32, f32, Sources)> = trending
            .iter()
            .filter(|(item, _)| accept(*item))
            .take(options.depth(count).max(PAGE_WINDOW))
            .map(|&(item, score)| (item, score, Sources::TRENDING))
            .collect();
        self.finish(&table, ranked, count, options, &accept)
    }

    /// A viewer's affinity with each of `items`: the inner product of the user's vector with
    /// each item's (the embedding part of a recommendation's score). `None` when the model has
    /// no vector for the user (unknown, or no positive event on an item with a vector).
    pub fn affinity(&self, user_id: &str, items: &[u32]) -> Result<Option<Vec<f32>>> {
        let Some(user) = self.store.user(user_id)? else {
            return Ok(None);
        };
        let table = self.items.read();
        let vector = user_vector(&table, &user.history, &self.model);
        if vector.iter().all(|x| *x == 0.0) {
            return Ok(None);
        }
        Ok(Some(
            items
                .iter()
                .map(|&item| dot(&vector, table.vector(item)))
                .collect(),
        ))
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
