//! The online model.
//!
//! Two kinds of state are learned from the stream, both updated event by event in bounded time.
//!
//! **Event weights.** Each event gets a weight `w` that says how much it tells about the viewer's
//! taste ([`EventWeights`], configurable): a rating `r` counts
//! `(r − n) / (5 − n)` above the neutral rating `n` and `(r − n) / (n − 0.5)` below it
//! (default `n` = 2: 5★ → 1, 3★ → 0.33, 2★ → 0, 0.5★ → −1; a lukewarm 3★ still says "watched,
//! and about that kind of film", which measured better than treating it as neutral), `like`
//! 1, `dislike` −1, `add_to_watchlist` 0.7, `watch` the fraction watched minus 0.3, `click` 0.3,
//! `view` 0.15, `skip` −0.3. Only events with `w > 0` teach co-occurrence (and so embeddings); events
//! with `w < 0` push the neighbours of their item down in the user's ranking.
//!
//! **Sequential co-occurrence** (the main ranking signal). When user `u` has a positive event
//! on item `j`, each of the last [`ModelConfig::pair_window`] positive items `i` of `u` (the
//! `k`-th most recent, `k` = 0, 1, …) gains the pair weight `c = w · δᵏ / log₂(2 + nᵤ)^ρ` towards
//! `j` ("`j` came after `i`"), and `j` gains `β·c` towards `i` ("`i` came before `j`"), with
//! `δ` = [`ModelConfig::pair_decay`], `β` = [`ModelConfig::backward_weight`], `nᵤ` the user's
//! events so far and `ρ` = [`ModelConfig::activity_damping`] (heavy users do not drown out the
//! rest). Events with the same timestamp are simultaneous: both directions get `(1 + β)/2 · c`.
//! Every item keeps its heaviest pairs in a bounded list ([`marquee_vector_store::Neighbours`])
//! and its mass `mⱼ = Σ w / log₂(2 + nᵤ)^ρ`.
//!
//! A user's score for a candidate `j` is
//! `Σₖ (λᵏ + φ) · wₖ · C[iₖ][j] / ((1 + m_{iₖ})^α · (1 + mⱼ)^{1−α})` over the last
//! [`ModelConfig::history_len`] events `iₖ` (newest first; `λ` =
//! [`ModelConfig::recency_decay`], `φ` = [`ModelConfig::recency_floor`], `α` =
//! [`ModelConfig::neighbour_exponent`]): recent events dominate, older ones still count. The
//! terms of the events after the newest [`ModelConfig::pair_history`] are read through the item
//! embeddings (below), which approximate the same normalised pairs.
//!
//! **Item embeddings** factorise the same normalised co-occurrence ([`crate::factors`]): each
//! item has a source and a target vector of [`ModelConfig::dimension`] floats, re-solved every
//! [`ModelConfig::solve_every_events`] events and moved between solves by every pair addition
//! (fold-in). A user's vector is the recency-weighted sum of their history's source vectors,
//! computed when a list is asked for; its inner products with target vectors approximate the
//! pair scores, whatever the history's length. The embeddings feed the HNSW index: candidates
//! of every list, blended into its ranking with weight [`ModelConfig::embedding_weight`].
//!
//! **Content** (cold items). An item catalogued with genres and tags but without a positive
//! event yet has no pairs; it reaches viewers through its labels, and through the index from its
//! labels' mean vectors ([`crate::factors::content`]).
//! A user's content profile sums `λᵏ · wₖ` over the labels of their last
//! [`ModelConfig::content_history`] positive items; an item without positive events scores the
//! profile weight of its labels divided by `√(labels)`, and joins the ranking with weight
//! [`ModelConfig::content_weight`] relative to the best co-occurrence score. Once it has events,
//! co-occurrence takes over.
//!
//! **Popularity** is a time-decayed count of positive events with half-life
//! [`ModelConfig::popularity_half_life_secs`], on the stream's clock (the latest event
//! timestamp), so that a replay of old data gives the same trend as it did live.
//!
//! **Cost per event** is `O(pair_window · (log C + dimension))` (the pairs, and their fold-in)
//! with `C` the neighbour-list capacity (`O(C)` when a full list takes a new neighbour heavier
//! than its lightest), independent of the number of users and items. **Cost per query** is
//! `O(min(history, pair_history) · C + history · dimension)` plus one index search and at most
//! `pair_candidates + embedding_candidates` inner products: the events older than the last
//! [`ModelConfig::pair_history`] are scored through their vector ([`crate::query`]).

use marquee_schemas::{Event, EventKind};
use marquee_vector_store::{HistoryEntry, Popularity, UserState};
use serde::{Deserialize, Serialize};

/// Weight of each event kind (see the module docs).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventWeights {
    /// The rating that says nothing either way; higher ratings are positive.
    pub rating_neutral: f32,
    pub like: f32,
    pub dislike: f32,
    pub add_to_watchlist: f32,
    /// Subtracted from the fraction watched.
    pub watch_offset: f32,
    pub click: f32,
    pub view: f32,
    pub skip: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights {
            rating_neutral: 2.0,
            like: 1.0,
            dislike: -1.0,
            add_to_watchlist: 0.7,
            watch_offset: 0.3,
            click: 0.3,
            view: 0.15,
            skip: -0.3,
        }
    }
}

/// Hyper-parameters of the online model. Each default, and why, is in `docs/QUALITY.md`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Floats of each item vector, source and target: the factorisation's rank (fixed when a
    /// state directory is created; the state stores both and the last solve's, `4 · dimension`).
    pub dimension: usize,
    /// Events between two solves of the factorisation; the pairs fold in between.
    pub solve_every_events: u64,
    /// Events kept in a user's history.
    pub history_len: usize,
    /// Weight factor per step back in a user's history.
    pub recency_decay: f32,
    /// Constant added to the recency factor, so old history still counts.
    pub recency_floor: f32,
    /// Half-life of item popularity in seconds, on the stream's clock.
    pub popularity_half_life_secs: u64,
    /// Weight of each event kind.
    pub weights: EventWeights,
    /// Recent positive items each positive event forms co-occurrence pairs with.
    pub pair_window: usize,
    /// Pair weight factor per step back in the user's positive history.
    pub pair_decay: f32,
    /// Weight of the "came before" direction relative to "came after".
    pub backward_weight: f32,
    /// Exponent `ρ` of the user-activity damping `1 / log₂(2 + events)^ρ`.
    pub activity_damping: f32,
    /// Exponent `α` splitting the pair normalisation between the history item and the
    /// candidate: near 1 favours popular candidates, near 0 rare ones.
    pub neighbour_exponent: f32,
    /// Weight of the embedding score in a user's ranking (0: co-occurrence and content only).
    pub embedding_weight: f32,
    /// Candidates taken from the index for the embedding part of a ranking.
    pub embedding_candidates: usize,
    /// Recent events whose co-occurrence lists a ranking reads exactly (at most
    /// `history_len`); the older events' vector scores the candidates for the rest.
    pub pair_history: usize,
    /// Candidates the recent events' pairs keep, beside the index's, when a longer history's
    /// older events are scored through their vector.
    pub pair_candidates: usize,
    /// Weight of the content part: items with no positive event yet whose genres and tags
    /// match the user's recent positive items (0: off).
    pub content_weight: f32,
    /// Recent positive items whose genres and tags form the user's content profile.
    pub content_history: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            dimension: 64,
            solve_every_events: 2_000,
            history_len: 500,
            recency_decay: 0.8,
            recency_floor: 0.02,
            popularity_half_life_secs: 7 * 24 * 3600,
            weights: EventWeights::default(),
            pair_window: 30,
            pair_decay: 0.95,
            backward_weight: 0.3,
            activity_damping: 1.0,
            neighbour_exponent: 0.8,
            embedding_weight: 0.0,
            embedding_candidates: 50,
            pair_history: 100,
            pair_candidates: 200,
            content_weight: 0.1,
            content_history: 20,
        }
    }
}

impl ModelConfig {
    /// Floats of the vectors an item's stored record holds: source and target, current and
    /// solved.
    pub fn stored_dimension(&self) -> usize {
        marquee_vector_store::STORED_PARTS * self.dimension
    }

    pub fn popularity_half_life_ms(&self) -> f64 {
        self.popularity_half_life_secs as f64 * 1000.0
    }
}

/// How much an event says about the viewer's taste (see the module docs).
pub fn event_weight(event: &Event, weights: &EventWeights) -> f32 {
    match event.kind {
        EventKind::Rating => {
            let neutral = weights.rating_neutral;
            let rating = event.value.unwrap_or(neutral);
            if rating >= neutral {
                (rating - neutral) / (5.0 - neutral).max(f32::EPSILON)
            } else {
                (rating - neutral) / (neutral - 0.5).max(f32::EPSILON)
            }
        }
        EventKind::Like => weights.like,
        EventKind::Dislike => weights.dislike,
        EventKind::AddToWatchlist => weights.add_to_watchlist,
        EventKind::Watch => event.value.unwrap_or(0.0) - weights.watch_offset,
        EventKind::Click => weights.click,
        EventKind::View => weights.view,
        EventKind::Skip => weights.skip,
        // A list shown says nothing of taste by itself; its clicks do.
        EventKind::Impression => 0.0,
    }
}

/// The damping of a user's pair weights: `1 / log₂(2 + events)^ρ`.
pub fn activity_damping(user_events: u64, exponent: f32) -> f32 {
    if exponent == 0.0 {
        return 1.0;
    }
    1.0 / (2.0 + user_events as f32).log2().powf(exponent)
}

/// The sequential co-occurrence pairs an event on `number` at `timestamp`, of weight `damped`,
/// forms with the user's recent positive items (`history`, oldest first): `emit(from, to,
/// weight)` for each. The one definition shared by applying an event and erasing it.
pub fn sequential_pairs(
    history: &[HistoryEntry],
    number: u32,
    timestamp: i64,
    damped: f32,
    model: &ModelConfig,
    mut emit: impl FnMut(u32, u32, f32),
) {
    let mut factor = damped;
    for past in history
        .iter()
        .rev()
        .filter(|past| past.weight > 0.0)
        .take(model.pair_window)
    {
        if past.item != number {
            let (after, before) = if past.timestamp == timestamp {
                let both = (1.0 + model.backward_weight) / 2.0 * factor;
                (both, both)
            } else {
                (factor, model.backward_weight * factor)
            };
            emit(past.item, number, after);
            emit(number, past.item, before);
        }
        factor *= model.pair_decay;
    }
}

/// Appends to a user's history, keeping the newest `history_len` entries.
pub fn push_history(history: &mut Vec<HistoryEntry>, entry: HistoryEntry, history_len: usize) {
    history.push(entry);
    if history.len() > history_len {
        let excess = history.len() - history_len;
        history.drain(..excess);
    }
}

/// The event's item, as [`learn_event`] changes it.
pub struct TargetItem<'a> {
    /// Its number.
    pub number: u32,
    pub popularity: &'a mut Popularity,
    pub mass: &'a mut f32,
    pub event_count: &'a mut u64,
}

/// What one event teaches the model, in memory: its item's popularity, mass and count, the
/// co-occurrence pairs (`pairs(from, to, weight)`, which the caller adds to the lists and folds
/// into the item vectors, [`crate::factors`]), and the user's count and history. `weight` is
/// [`event_weight`] of the event. The processor applies every
/// event through this, and the criterion bench measures it alone
/// (`crates/bench/benches/model.rs`): the model's per-event cost without the state store.
pub fn learn_event(
    model: &ModelConfig,
    half_life_ms: f64,
    event: &Event,
    weight: f32,
    user: &mut UserState,
    target: TargetItem<'_>,
    pairs: impl FnMut(u32, u32, f32),
) {
    let number = target.number;
    if weight > 0.0 {
        target.popularity.add(1.0, event.timestamp, half_life_ms);
        // Sequential co-occurrence with the user's recent positive items.
        let damped = weight * activity_damping(user.event_count, model.activity_damping);
        *target.mass += damped;
        sequential_pairs(&user.history, number, event.timestamp, damped, model, pairs);
    }
    *target.event_count += 1;

    user.event_count += 1;
    user.last_timestamp = user.last_timestamp.max(event.timestamp);
    push_history(
        &mut user.history,
        HistoryEntry {
            item: number,
            weight,
            timestamp: event.timestamp,
        },
        model.history_len,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_rating() {
        let mut event = Event {
            event_id: "e".into(),
            user_id: "u".into(),
            item_id: "i".into(),
            kind: EventKind::Rating,
            value: Some(5.0),
            timestamp: 0,
            context: Default::default(),
        };
        let weights = EventWeights::default();
        assert_eq!(event_weight(&event, &weights), 1.0);
        event.value = Some(2.0);
        assert_eq!(event_weight(&event, &weights), 0.0);
        event.value = Some(0.5);
        assert_eq!(event_weight(&event, &weights), -1.0);
    }

    /// The weight table the Arroyo UDF `marquee_event_weight` is tested against
    /// (`integrations/arroyo/fixtures/event_weights.tsv`) is this function's, with the default
    /// weights: a change here without the table (and the UDF) fails.
    #[test]
    fn the_arroyo_weight_table_is_the_models() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../integrations/arroyo/fixtures/event_weights.tsv"
        );
        let table = std::fs::read_to_string(path).expect("the weight table is readable");
        let weights = EventWeights::default();
        let mut kinds = std::collections::HashSet::new();
        for line in table
            .lines()
            .filter(|line| !line.starts_with('#') && !line.starts_with("kind\t"))
        {
            let fields: Vec<&str> = line.split('\t').collect();
            let kind = EventKind::parse(fields[0]).expect("a kind the node has");
            let event = Event {
                event_id: "e".into(),
                user_id: "u".into(),
                item_id: "i".into(),
                kind,
                value: (!fields[1].is_empty()).then(|| fields[1].parse().unwrap()),
                timestamp: 0,
                context: Default::default(),
            };
            let expected: f32 = fields[2].parse().unwrap();
            let got = event_weight(&event, &weights);
            assert!(
                (got - expected).abs() < 1e-5,
                "{line}: the model gives {got}"
            );
            kinds.insert(kind);
        }
        assert_eq!(
            kinds.len(),
            EventKind::ALL.len(),
            "every kind is in the table"
        );
    }
}
