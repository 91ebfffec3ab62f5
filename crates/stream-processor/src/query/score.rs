//! The parts of a ranking: the pairs' scores, the viewer's vector, content, and their blend
//! (see [`super`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use marquee_vector_store::vector::dot;
use marquee_vector_store::{HistoryEntry, Table};

use super::Sources;
use crate::model::ModelConfig;

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
pub(super) fn content_scores(
    table: &Table,
    history: &[HistoryEntry],
    model: &ModelConfig,
    accept: &dyn Fn(&Table, u32) -> bool,
) -> Vec<(u32, f32)> {
    // Ordered maps: the sums are then added in the same order on every run.
    let mut profile: BTreeMap<&str, f32> = BTreeMap::new();
    let mut recency = 1.0f32;
    for past in history
        .iter()
        .rev()
        .filter(|past| past.weight > 0.0)
        .take(model.content_history)
    {
        for label in table.labels(past.item) {
            *profile.entry(label).or_default() += recency * past.weight;
        }
        recency *= model.recency_decay;
    }
    // Each cold item's sum over the labels, added in the profile's label order (so the same
    // on every run), in the thread's score slots.
    let scores: Vec<(u32, f32)> = with_slots(table.len(), |slots| {
        for (label, weight) in &profile {
            for item in table.cold_items(label) {
                if table.mass(item) == 0.0 {
                    slots.add(item, *weight);
                }
            }
        }
        slots.sort();
        slots.drain().collect()
    });
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
pub(super) fn top(mut ranked: Vec<(u32, f32, Sources)>, count: usize) -> Vec<(u32, f32, Sources)> {
    let order =
        |a: &(u32, f32, Sources), b: &(u32, f32, Sources)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > count && count > 0 {
        ranked.select_nth_unstable_by(count - 1, order);
        ranked.truncate(count);
    }
    ranked.sort_unstable_by(order);
    ranked.truncate(count);
    ranked
}

/// Sums by item in the thread's score slots: a slot is zero except while its item is listed
/// in `touched`, so a query resets only what it used.
struct Slots<'a> {
    scores: &'a mut [f32],
    touched: &'a mut Vec<u32>,
}

impl Slots<'_> {
    /// Adds `value` to `item`'s sum.
    #[inline]
    fn add(&mut self, item: u32, value: f32) {
        let slot = &mut self.scores[item as usize];
        if *slot == 0.0 {
            self.touched.push(item);
        }
        *slot += value;
    }

    /// Items with a sum.
    fn len(&self) -> usize {
        self.touched.len()
    }

    /// Orders the items by number (else they come in the order first added).
    fn sort(&mut self) {
        self.touched.sort_unstable();
    }

    /// Every item with its sum, the slots zeroed behind them.
    fn drain(&mut self) -> impl Iterator<Item = (u32, f32)> + '_ {
        let scores = &mut *self.scores;
        self.touched
            .drain(..)
            .map(move |item| (item, std::mem::take(&mut scores[item as usize])))
    }
}

/// Runs `work` with the thread's score slots (`numbers`: the table's item numbers in use).
fn with_slots<R>(numbers: usize, work: impl FnOnce(&mut Slots<'_>) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let Scratch {
            scores, touched, ..
        } = &mut *scratch;
        if scores.len() < numbers {
            scores.resize(numbers, 0.0);
        }
        work(&mut Slots { scores, touched })
    })
}

/// Runs `work` with the thread's position array holding each of `items`' index in it (see
/// [`Scratch::position`]; `numbers`: the table's item numbers in use).
fn with_positions<R>(
    items: &mut Vec<(u32, f32, Sources)>,
    numbers: usize,
    work: impl FnOnce(&mut [u32], &mut Vec<(u32, f32, Sources)>) -> R,
) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let position = &mut scratch.position;
        if position.len() < numbers {
            position.resize(numbers, 0);
        }
        for (at, (item, _, _)) in items.iter().enumerate() {
            position[*item as usize] = at as u32;
        }
        work(position, items)
    })
}

/// `items` (ranked, best first) filled up to `count` with the index's candidates in `reach`
/// (by inner product) that they do not hold; an item in both gains the index as a source.
pub(super) fn with_reach(
    mut items: Vec<(u32, f32, Sources)>,
    reach: Vec<(u32, f32, Sources)>,
    count: usize,
    numbers: usize,
) -> Vec<(u32, f32, Sources)> {
    if reach.is_empty() {
        return items;
    }
    with_positions(&mut items, numbers, |position, items| {
        let mut extra = Vec::new();
        for hit in reach {
            match items.get_mut(position[hit.0 as usize] as usize) {
                // Ranked already: the index proposed it too.
                Some(entry) if entry.0 == hit.0 => entry.2 = entry.2.with(Sources::INDEX),
                _ => extra.push(hit),
            }
        }
        let room = count.saturating_sub(items.len());
        items.extend(top(extra, room));
    });
    items
}

/// The recency weight of each of a history's events, newest first: `λᵏ + φ` times the
/// event's weight, over the last `history_len` events.
pub(super) fn recency_weights<'h>(
    history: &'h [HistoryEntry],
    model: &ModelConfig,
) -> impl Iterator<Item = (&'h HistoryEntry, f32)> {
    let mut recency = 1.0f32;
    history
        .iter()
        .rev()
        .take(model.history_len)
        .map(move |past| {
            let factor = (recency + model.recency_floor) * past.weight;
            recency *= model.recency_decay;
            (past, factor)
        })
}

/// A user's vector: the recency-weighted sum of the source vectors of their history (which
/// carry the history item's normalisation, [`crate::factors`]), so that its inner product with
/// an item's target vector approximates the item's pair score. Computed from the current
/// vectors at each query: `O(history · dimension)`.
pub fn user_vector(table: &Table, history: &[HistoryEntry], model: &ModelConfig) -> Vec<f32> {
    user_vector_from(history, model, table.dimension(), |item| {
        table.id(item).map(|_| table.source_vector(item))
    })
}

/// [`user_vector`] with the source vectors from `source` (`None`: an item without one), for a
/// reader of the stored state without an item table (the index benchmark).
pub fn user_vector_from<'v>(
    history: &[HistoryEntry],
    model: &ModelConfig,
    dimension: usize,
    source: impl Fn(u32) -> Option<&'v [f32]>,
) -> Vec<f32> {
    let mut vector = vec![0.0f32; dimension];
    for (past, factor) in recency_weights(history, model) {
        if factor == 0.0 {
            continue;
        }
        let Some(components) = source(past.item) else {
            continue;
        };
        for (sum, component) in vector.iter_mut().zip(components) {
            *sum += factor * component;
        }
    }
    vector
}

/// A user's vector ([`user_vector`]) and its older part: the recency-weighted sum of the
/// source vectors of the history's events after the newest `skip` (the events the pairs do not
/// read exactly; `None` when there are none, or their sum is zero), in one pass over the
/// history.
pub(super) fn vector_and_tail(
    table: &Table,
    history: &[HistoryEntry],
    model: &ModelConfig,
    skip: usize,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let dimension = table.dimension();
    let mut recent = vec![0.0f32; dimension];
    let mut tail = vec![0.0f32; dimension];
    for (at, (past, factor)) in recency_weights(history, model).enumerate() {
        if factor == 0.0 || table.id(past.item).is_none() {
            continue;
        }
        let sum = if at < skip { &mut recent } else { &mut tail };
        for (sum, component) in sum.iter_mut().zip(table.source_vector(past.item)) {
            *sum += factor * component;
        }
    }
    let whole = recent.iter().zip(&tail).map(|(a, b)| a + b).collect();
    (whole, tail.iter().any(|x| *x != 0.0).then_some(tail))
}

/// The ranking of a long history: the exact pair scores of its recent events (`recent`, every
/// candidate they touched) plus, for each candidate, the inner product of the older events'
/// vector `tail` with its target vector (the same units: the factorisation approximates the
/// normalised pairs, [`crate::factors`]). Candidates are the index's `hits` (searched with the
/// whole history's vector) and the best `pool` of `recent`; an item in both names both
/// sources. `O(pool + hits)` inner products, whatever the history's length.
pub(super) fn with_tail(
    table: &Table,
    mut recent: Vec<(u32, f32, Sources)>,
    hits: &[(u32, Sources)],
    tail: &[f32],
    pool: usize,
) -> Vec<(u32, f32, Sources)> {
    let mut extra: Vec<(u32, f32, Sources)> = Vec::new();
    with_positions(&mut recent, table.len(), |position, recent| {
        for &(hit, _) in hits {
            match recent.get_mut(position[hit as usize] as usize) {
                Some(entry) if entry.0 == hit => entry.2 = entry.2.with(Sources::INDEX),
                _ => extra.push((hit, 0.0, Sources::INDEX)),
            }
        }
    });
    let (mut ranked, rest): (Vec<_>, Vec<_>) = recent
        .into_iter()
        .partition(|(_, _, sources)| sources.contains(Sources::INDEX));
    ranked.extend(top(rest, pool));
    ranked.extend(extra);
    for (item, score, _) in &mut ranked {
        *score += dot(tail, table.vector(*item));
    }
    ranked
}

/// The pair scores of the candidates `accept` takes: the co-occurrence lists of the last
/// `pair_history` events, recency-weighted and normalised (see [`crate::model`]).
pub(super) fn pair_scores(
    table: &Table,
    history: &[HistoryEntry],
    model: &ModelConfig,
    pair_history: usize,
    accept: &dyn Fn(&Table, u32) -> bool,
) -> Vec<(u32, f32, Sources)> {
    with_slots(table.len(), |slots| {
        for (past, factor) in recency_weights(history, model).take(pair_history) {
            let factor = factor * table.normalisers(past.item).0;
            if factor == 0.0 {
                continue;
            }
            for &(candidate, weight) in table.neighbours(past.item).entries() {
                slots.add(candidate, factor * weight);
            }
        }
        // In three passes: the raw sums (resetting the slots), the candidate normalisers, the
        // filter. A loop of nothing but independent loads lets the CPU wait for many cache
        // misses at once; with the filter's call between them it waited for each.
        let mut ranked: Vec<(u32, f32, Sources)> = Vec::with_capacity(slots.len());
        ranked.extend(
            slots
                .drain()
                .filter(|(_, raw)| *raw > 0.0)
                .map(|(candidate, raw)| (candidate, raw, Sources::PAIRS)),
        );
        let candidate_normalisers = table.candidate_normalisers();
        for (candidate, score, _) in &mut ranked {
            *score *= candidate_normalisers[*candidate as usize];
        }
        ranked.retain(|(candidate, _, _)| accept(table, *candidate));
        ranked
    })
}

/// `parts` scaled so that the best positive one is `weight`; the others (zero or negative)
/// left out.
pub(super) fn share(parts: Vec<(u32, f32, Sources)>, weight: f32) -> Vec<(u32, f32, Sources)> {
    let best = parts.iter().map(|(_, score, _)| *score).fold(0.0, f32::max);
    if best <= 0.0 {
        return Vec::new();
    }
    parts
        .into_iter()
        .filter(|(_, score, _)| *score > 0.0)
        .map(|(item, score, source)| (item, weight * score / best, source))
        .collect()
}

/// Adds each of `parts` to the item's entry in `ranked` (or a new entry), with its source:
/// the blend of a ranking's parts (`numbers`: the table's item numbers in use).
pub(super) fn blend(
    ranked: &mut Vec<(u32, f32, Sources)>,
    parts: Vec<(u32, f32, Sources)>,
    numbers: usize,
) {
    with_positions(ranked, numbers, |position, ranked| {
        for (item, part, source) in parts {
            let slot = &mut position[item as usize];
            match ranked.get_mut(*slot as usize) {
                Some(entry) if entry.0 == item => {
                    entry.1 += part;
                    entry.2 = entry.2.with(source);
                }
                _ => {
                    *slot = ranked.len() as u32;
                    ranked.push((item, part, source));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use marquee_vector_store::ItemTable;

    use super::*;

    /// Items 0..5 with target vectors `[n, 0]`: item `n`'s inner product with `[1, 0]` is `n`.
    fn table() -> ItemTable {
        let items = ItemTable::new(2);
        {
            let mut table = items.write();
            for n in 0..5u32 {
                let (number, _) = table.assign(&format!("i{n}"));
                table.vector_mut(number).copy_from_slice(&[n as f32, 0.0]);
                table.source_vector_mut(number).copy_from_slice(&[1.0, 0.0]);
            }
        }
        items
    }

    #[test]
    fn the_tail_adds_the_older_events_part_to_the_recent_pairs_and_the_index_hits() {
        let items = table();
        let table = items.read();
        let recent = vec![
            (0, 10.0, Sources::PAIRS),
            (1, 5.0, Sources::PAIRS),
            (2, 1.0, Sources::PAIRS),
        ];
        // Item 2 is among the index's hits too; item 4 only there. A pool of 1 keeps the
        // recent pairs' best (item 0) and drops item 1; item 2 stays as a hit.
        let hits = [(2, Sources::INDEX), (4, Sources::INDEX)];
        let mut ranked = with_tail(&table, recent, &hits, &[0.5, 0.0], 1);
        ranked.sort_by_key(|(item, _, _)| *item);
        assert_eq!(
            ranked,
            vec![
                (0, 10.0, Sources::PAIRS),
                (2, 1.0 + 1.0, Sources::PAIRS.with(Sources::INDEX)),
                (4, 2.0, Sources::INDEX),
            ]
        );
    }

    #[test]
    fn a_history_the_pairs_read_whole_has_no_tail() {
        let items = table();
        let table = items.read();
        let model = ModelConfig::default();
        let history: Vec<HistoryEntry> = (0..3)
            .map(|item| HistoryEntry {
                item,
                weight: 1.0,
                timestamp: item as i64,
            })
            .collect();
        let (whole, tail) = vector_and_tail(&table, &history, &model, 3);
        assert_eq!(tail, None);
        // The whole vector is the user's, whatever the split.
        assert_eq!(whole, user_vector(&table, &history, &model));
        // Past the newest two, the oldest event remains: weight (λ² + φ) · 1 on its source.
        let (split, tail) = vector_and_tail(&table, &history, &model, 2);
        let tail = tail.expect("one older event");
        assert_eq!(split, whole);
        let factor = model.recency_decay.powi(2) + model.recency_floor;
        assert!((tail[0] - factor).abs() < 1e-6, "{tail:?}");
        assert_eq!(tail[1], 0.0);
    }
}
