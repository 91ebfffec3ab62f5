//! The online model.
//!
//! **Event weights.** Each event gets a weight `w` that says how much it tells about the viewer's
//! taste: a rating `r` counts `(r − 3) / 2` (5★ → 1, 3★ → 0, 1★ → −1), `like` 1, `dislike` −1,
//! `add_to_watchlist` 0.7, `watch` the fraction watched minus 0.3, `click` 0.3, `view` 0.15,
//! `skip` −0.3.
//!
//! **Item embeddings** are learned online by skip-gram with negative sampling over each user's
//! sequence of positive events (item2vec): when user `u` has a positive event on item `i`, `i` is
//! pulled towards each of the last [`ModelConfig::context_window`] items `u` liked (and they
//! towards `i`) with step `η·w·(1 − σ(vᵢ·vⱼ))`, and pushed away from
//! [`ModelConfig::negatives`] items drawn uniformly from the catalogue with step
//! `η·σ(vᵢ·vₙ)`. Items liked by the same viewers end up close; items that are liked often get
//! longer vectors. New items start from a small seeded random vector, the same on every node.
//!
//! **User embeddings** are recomputed at every event of the user from the bounded history:
//! `u = Σₖ λᵏ·wₖ·v(itemₖ)` over the last [`ModelConfig::history_len`] events (`k` = 0 for the
//! newest, `λ` = [`ModelConfig::recency_decay`]). A recommendation is the items with the largest
//! `u·v`, so a new event changes the very next answer.
//!
//! **Popularity** is a time-decayed count of positive events with half-life
//! [`ModelConfig::popularity_half_life`], on the stream's clock (the latest event timestamp), so
//! that a replay of old data gives the same trend as it did live.
//!
//! **Cost per event** is `O((history_len + context_window + negatives) · dimension)`,
//! independent of the number of users and items.

use std::time::Duration;

use marquee_schemas::partition::fnv1a_64;
use marquee_schemas::{Event, EventKind};
use marquee_vector_store::vector::dot;

/// Hyper-parameters of the online model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Embedding dimension (fixed when a state directory is created).
    pub dimension: usize,
    /// SGD step size `η`.
    pub learning_rate: f32,
    /// Recent positive items each positive event is paired with.
    pub context_window: usize,
    /// Negative samples per positive event.
    pub negatives: usize,
    /// Events kept in a user's history.
    pub history_len: usize,
    /// Weight factor per step back in a user's history.
    pub recency_decay: f32,
    /// Half-life of item popularity, on the stream's clock.
    pub popularity_half_life: Duration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            dimension: 32,
            learning_rate: 0.05,
            context_window: 10,
            negatives: 3,
            history_len: 50,
            recency_decay: 0.97,
            popularity_half_life: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl ModelConfig {
    pub fn popularity_half_life_ms(&self) -> f64 {
        self.popularity_half_life.as_secs_f64() * 1000.0
    }
}

/// How much an event says about the viewer's taste (see the module docs).
pub fn event_weight(event: &Event) -> f32 {
    match event.kind {
        EventKind::Rating => (event.value.unwrap_or(3.0) - 3.0) / 2.0,
        EventKind::Like => 1.0,
        EventKind::Dislike => -1.0,
        EventKind::AddToWatchlist => 0.7,
        EventKind::Watch => event.value.unwrap_or(0.0) - 0.3,
        EventKind::Click => 0.3,
        EventKind::View => 0.15,
        EventKind::Skip => -0.3,
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

/// Pulls `target` and `context` together (both updated from their old values).
pub fn positive_pair_step(target: &mut [f32], context: &mut [f32], step: f32) {
    let gradient = step * (1.0 - sigmoid(dot(target, context)));
    for (t, c) in target.iter_mut().zip(context.iter_mut()) {
        let old_target = *t;
        *t += gradient * *c;
        *c += gradient * old_target;
    }
}

/// Pushes `target` away from `negative` (only `target` moves).
pub fn negative_step(target: &mut [f32], negative: &[f32], step: f32) {
    let gradient = step * sigmoid(dot(target, negative));
    for (t, n) in target.iter_mut().zip(negative) {
        *t -= gradient * n;
    }
}

/// The `k`-th negative sample for an event: an item number in `0..item_count`, derived from the
/// event id so that a replay draws the same samples.
pub fn negative_sample(event_id: &str, k: usize, item_count: usize) -> usize {
    let mut key = fnv1a_64(event_id.as_bytes()) ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    key ^= key >> 33;
    key = key.wrapping_mul(0xff51_afd7_ed55_8ccd);
    key ^= key >> 33;
    (key % item_count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_steps_raise_and_negative_steps_lower_the_score() {
        let mut a = vec![0.1, 0.2, -0.1];
        let mut b = vec![0.05, -0.1, 0.2];
        let before = dot(&a, &b);
        positive_pair_step(&mut a, &mut b, 0.5);
        assert!(dot(&a, &b) > before);
        let before = dot(&a, &b);
        negative_step(&mut a, &b.clone(), 0.5);
        assert!(dot(&a, &b) < before);
    }

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
        assert_eq!(event_weight(&event), 1.0);
        event.value = Some(1.0);
        assert_eq!(event_weight(&event), -1.0);
    }
}
