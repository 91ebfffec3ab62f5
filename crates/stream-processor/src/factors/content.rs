//! Vectors for items with only metadata: the mean vectors of their content labels (see
//! [`super`]).

use std::collections::HashMap;

use marquee_schemas::Item;
use marquee_vector_store::{Table, content_labels};

use super::Factors;

/// Per content label, the mean vectors (source then target, `2 · rank` floats) of the items
/// with events that carry it, from `vector(item)` (the table's, or a solve's).
pub fn label_vectors(
    table: &Table,
    rank: usize,
    vector: impl Fn(u32) -> Vec<f32>,
) -> HashMap<String, Vec<f32>> {
    let mut sums: HashMap<String, (Vec<f32>, usize)> = HashMap::new();
    for item in table.numbers() {
        if table.mass(item) == 0.0 {
            continue;
        }
        let Some(entry) = table.catalogue(item) else {
            continue;
        };
        let both = vector(item);
        if both.len() != 2 * rank {
            continue;
        }
        for label in content_labels(entry) {
            let (sum, count) = sums
                .entry(label)
                .or_insert_with(|| (vec![0.0; 2 * rank], 0));
            for (total, value) in sum.iter_mut().zip(&both) {
                *total += value;
            }
            *count += 1;
        }
    }
    sums.into_iter()
        .map(|(label, (sum, count))| {
            let mean = sum.into_iter().map(|total| total / count as f32).collect();
            (label, mean)
        })
        .collect()
}

/// The vectors (source then target) of an item without events: the mean of its labels'
/// vectors; `None` when none of its labels has any.
pub fn content_vectors(
    item: &Item,
    rank: usize,
    label_vector: impl Fn(&str) -> Option<Vec<f32>>,
) -> Option<Vec<f32>> {
    let mut sum = vec![0.0f32; 2 * rank];
    let mut count = 0usize;
    for label in content_labels(item) {
        if let Some(vector) = label_vector(&label).filter(|vector| vector.len() == 2 * rank) {
            for (total, value) in sum.iter_mut().zip(vector) {
                *total += value;
            }
            count += 1;
        }
    }
    (count > 0).then(|| sum.into_iter().map(|total| total / count as f32).collect())
}

/// Gives the items of `table` without events, in `factors`, the content vectors of their
/// labels (from `labels`, the label vectors of the same solve).
pub fn with_content(table: &Table, factors: &mut Factors, labels: &HashMap<String, Vec<f32>>) {
    let rank = factors.rank;
    for item in table.numbers() {
        if table.mass(item) != 0.0 || (item as usize + 1) * rank > factors.sources.len() {
            continue;
        }
        let Some(entry) = table.catalogue(item) else {
            continue;
        };
        let Some(both) = content_vectors(entry, rank, |label| labels.get(label).cloned()) else {
            continue;
        };
        let at = item as usize * rank;
        factors.sources[at..at + rank].copy_from_slice(&both[..rank]);
        factors.targets[at..at + rank].copy_from_slice(&both[rank..]);
    }
}
