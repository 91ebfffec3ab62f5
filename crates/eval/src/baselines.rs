//! What the reference rows share: the top K of a dense score vector, and dense co-occurrence
//! counts for item-kNN.

use std::collections::HashSet;

use crate::K;

/// The top `K` of `scores` (indexed by item), skipping `seen`; ties go to the smaller index.
pub(crate) fn top_k(scores: &[f32], seen: &HashSet<u32>) -> Vec<u32> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(K + 1);
    for (item, &score) in scores.iter().enumerate() {
        let item = item as u32;
        if seen.contains(&item) {
            continue;
        }
        if best.len() == K && score <= best[K - 1].1 {
            continue;
        }
        let at = best.partition_point(|&(_, other)| other >= score);
        best.insert(at, (item, score));
        best.truncate(K);
    }
    best.into_iter().map(|(item, _)| item).collect()
}

/// Dense co-occurrence counts for the item-kNN baselines.
pub(crate) struct CoCounts {
    items: usize,
    pub(crate) count: Vec<f32>,
    pub(crate) pairs: Vec<f32>,
}

impl CoCounts {
    pub(crate) fn new(items: usize) -> CoCounts {
        CoCounts {
            items,
            count: vec![0.0; items],
            pairs: vec![0.0; items * items],
        }
    }

    /// Sum of cosine similarities to `history`, top K outside `seen`.
    pub(crate) fn recommend(&self, history: &[u32], seen: &HashSet<u32>) -> Vec<u32> {
        let mut scores = vec![0.0f32; self.items];
        let norms: Vec<f32> = self.count.iter().map(|count| count.sqrt()).collect();
        for &a in history {
            if self.count[a as usize] == 0.0 {
                continue;
            }
            let row = &self.pairs[a as usize * self.items..(a as usize + 1) * self.items];
            let scale = 1.0 / norms[a as usize];
            for ((score, &pair), &norm) in scores.iter_mut().zip(row).zip(&norms) {
                if pair > 0.0 {
                    *score += pair * scale / norm;
                }
            }
        }
        top_k(&scores, seen)
    }
}
