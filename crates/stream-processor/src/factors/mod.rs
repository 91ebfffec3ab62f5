//! Item embeddings learned from the stream: a factorisation of the normalised co-occurrence
//! the ranking reads, kept up to date event by event and re-solved now and then.
//!
//! The pairs score a candidate `j` for a user as `Σₖ rₖ · wₖ · S[iₖ][j]` over the history
//! `iₖ` (recency `rₖ`, event weight `wₖ`), with `S[i][j] = nᵢ · C[i][j] · cⱼ`: the co-occurrence
//! `C` normalised by the items' masses (`nᵢ = (1 + mᵢ)^−α`, `cⱼ = (1 + mⱼ)^(α−1)`; see
//! [`crate::model`]). A rank-`k` factorisation `S ≈ A · diag(σ) · Bᵀ`, split as
//! `aᵢ = Uᵢ·σ^½` (an item's *source* vector) and `bⱼ = Vⱼ·σ^½` (its *target* vector), turns that
//! score into one inner product: the user's vector `u = Σₖ rₖ · wₖ · a_{iₖ}` against `bⱼ`. So
//! a user of any history length is one index search ([`crate::query`]); the factorisation
//! captures what the pairs capture — order (`S` is not symmetric), recency, the user's last
//! items — because it is of the same matrix.
//!
//! - **Solve** ([`solve()`]): a randomised truncated SVD (Halko, Martinsson and Tropp, 2011) of
//!   `S`, read from the item table's co-occurrence lists: `k + 10` random probes, two power
//!   iterations, dense algebra on `n × (k + 10)` matrices (`nalgebra`). The probes are drawn
//!   from a fixed seed and the sparse products run row by row, so the same `S` gives the same
//!   vectors. Cost `O(nnz(S) · (k + 10) · 6 + n · (k + 10)²)`: about 0.1 s for ml-latest-small
//!   at rank 32, seconds for 100,000 items with full lists.
//! - **Fold-in between solves** ([`fold_in`]): a pair weight `δ` added to `C[i][j]` adds
//!   `δ' = nᵢ·δ·cⱼ` to `S[i][j]`. An item's source vector is the projection of its row of `S`
//!   onto the last solve's target vectors, `aᵢ = Sᵢ · B̂ · σ⁻¹` (at the solve, exactly `Uᵢ·σ^½`),
//!   and its target vector the projection of its column onto the solved source vectors; both
//!   are linear in `S`, so the addition moves `aᵢ += δ'·b̂ⱼ/σ` and `bⱼ += δ'·âᵢ/σ` (per
//!   component) at `O(k)` per pair, against the *solved* vectors `âᵢ`, `b̂ⱼ`, which stay fixed
//!   until the next solve. Folding against the current vectors instead compounds: each
//!   addition to a pair grows both of its vectors by a factor `1 + δ'/σ`, and frequent pairs
//!   blow up between solves (on ml-latest-small, recall through the index fell from 0.156 to
//!   0.03 within one solve interval). The result does not depend on the order of additions;
//!   erasures fold in their negative additions the same way. Both sides moving counts the
//!   part of the change inside both bases twice (first order: `δ·(|Uᵢ|² + |Vⱼ|²)` where a
//!   new solve gives `δ·(|Uᵢ|² + |Vⱼ|² − |Uᵢ|²·|Vⱼ|²)`), negligible when an item's share of
//!   the basis is small, as it is among thousands. Changes of the masses (the normalisers)
//!   wait for the next solve.
//! - **New items** start from their metadata ([`label_vectors`], [`content_vectors`]): each
//!   content label (genre, tag) has the mean vectors of the items with events that carry it,
//!   and an item without events the mean of its labels' — so a movie upserted with its genres
//!   is found through the index at once, by the viewers of those genres. Its first events fold
//!   into those vectors, and the next solve gives it its own (an item still without events
//!   keeps its content vectors across solves).

pub mod content;
pub mod solve;

use std::collections::HashMap;

use marquee_vector_store::Table;

pub use content::{content_vectors, label_vectors, with_content};
pub use solve::{Factors, Snapshot, solve};

/// Co-occurrence additions by history item: `(i, [(j, δ)])` adds `δ` to `C[i][j]`.
pub type Additions = Vec<(u32, Vec<(u32, f32)>)>;

/// What [`fold_in`] reads: an item table, or the vectors of a solve about to be installed.
pub trait FactorView {
    /// Floats per vector.
    fn dimension(&self) -> usize;
    /// The factorisation's scales (empty: none yet).
    fn scales(&self) -> &[f32];
    /// Whether `item` is a live item number.
    fn known(&self, item: u32) -> bool;
    /// The item's source vector as the last solve gave it.
    fn basis_source(&self, item: u32) -> &[f32];
    /// The item's target vector as the last solve gave it.
    fn basis_target(&self, item: u32) -> &[f32];
    /// `(nᵢ, cᵢ)`: the item's normalisers as a history item and as a candidate.
    fn normalisers(&self, item: u32) -> (f32, f32);
}

impl FactorView for Table {
    fn dimension(&self) -> usize {
        Table::dimension(self)
    }

    fn scales(&self) -> &[f32] {
        self.factor_scales()
    }

    fn known(&self, item: u32) -> bool {
        self.id(item).is_some()
    }

    fn basis_source(&self, item: u32) -> &[f32] {
        Table::basis_source(self, item)
    }

    fn basis_target(&self, item: u32) -> &[f32] {
        Table::basis_target(self, item)
    }

    fn normalisers(&self, item: u32) -> (f32, f32) {
        Table::normalisers(self, item)
    }
}

/// A table seen with the vectors and scales of a solve instead of its own.
pub struct Solved<'a> {
    pub table: &'a Table,
    pub factors: &'a Factors,
}

impl FactorView for Solved<'_> {
    fn dimension(&self) -> usize {
        self.factors.rank
    }

    fn scales(&self) -> &[f32] {
        &self.factors.scales
    }

    fn known(&self, item: u32) -> bool {
        self.table.id(item).is_some()
            && (item as usize + 1) * self.factors.rank <= self.factors.sources.len()
    }

    fn basis_source(&self, item: u32) -> &[f32] {
        let at = item as usize * self.factors.rank;
        &self.factors.sources[at..at + self.factors.rank]
    }

    fn basis_target(&self, item: u32) -> &[f32] {
        let at = item as usize * self.factors.rank;
        &self.factors.targets[at..at + self.factors.rank]
    }

    fn normalisers(&self, item: u32) -> (f32, f32) {
        self.table.normalisers(item)
    }
}

/// The vector changes, per item (the current source and target: the first `2 · dimension`
/// floats of the stored layout, whose solved parts a fold-in leaves alone), that `additions` to
/// the co-occurrence fold into the current factorisation of `view` (see the module docs):
/// nothing before the first solve.
pub fn fold_in(
    view: &impl FactorView,
    additions: &[(u32, Vec<(u32, f32)>)],
    changes: &mut HashMap<u32, Vec<f32>>,
) {
    let scales = view.scales();
    let dimension = view.dimension();
    if scales.len() != dimension || additions.is_empty() {
        return;
    }
    let inverse: Vec<f32> = scales
        .iter()
        .map(|&sigma| if sigma > 0.0 { 1.0 / sigma } else { 0.0 })
        .collect();
    let stored = 2 * dimension;
    for (from, added) in additions {
        if !view.known(*from) {
            continue;
        }
        let history = view.normalisers(*from).0;
        let solved_source = view.basis_source(*from);
        for &(to, weight) in added {
            if !view.known(to) {
                continue;
            }
            let step = history * weight * view.normalisers(to).1;
            if step == 0.0 {
                continue;
            }
            let solved_target = view.basis_target(to);
            let from_change = changes.entry(*from).or_insert_with(|| vec![0.0; stored]);
            for ((change, b), inverse) in from_change[..dimension]
                .iter_mut()
                .zip(solved_target)
                .zip(&inverse)
            {
                *change += step * b * inverse;
            }
            let to_change = changes.entry(to).or_insert_with(|| vec![0.0; stored]);
            for ((change, a), inverse) in to_change[dimension..2 * dimension]
                .iter_mut()
                .zip(solved_source)
                .zip(&inverse)
            {
                *change += step * a * inverse;
            }
        }
    }
}

/// What replacing the table's vectors, current and solved, by `factors` changes, per item (in
/// the stored layout): the deltas a solve commits.
pub fn replacement(table: &Table, factors: &Factors) -> Vec<(u32, Vec<f32>)> {
    let dimension = table.dimension();
    if factors.rank != dimension {
        return Vec::new();
    }
    table
        .numbers()
        .filter(|&item| (item as usize) < factors.sources.len() / dimension.max(1))
        .map(|item| {
            let at = item as usize * dimension;
            let source = &factors.sources[at..at + dimension];
            let target = &factors.targets[at..at + dimension];
            let new = source.iter().chain(target).chain(source).chain(target);
            let change = new
                .zip(table.stored_vector(item))
                .map(|(new, old)| new - old)
                .collect();
            (item, change)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A factorisation seen without a table: every item known, normalisers 1.
    struct Plain<'a>(&'a Factors);

    impl FactorView for Plain<'_> {
        fn dimension(&self) -> usize {
            self.0.rank
        }

        fn scales(&self) -> &[f32] {
            &self.0.scales
        }

        fn known(&self, item: u32) -> bool {
            (item as usize + 1) * self.0.rank <= self.0.sources.len()
        }

        fn basis_source(&self, item: u32) -> &[f32] {
            let at = item as usize * self.0.rank;
            &self.0.sources[at..at + self.0.rank]
        }

        fn basis_target(&self, item: u32) -> &[f32] {
            let at = item as usize * self.0.rank;
            &self.0.targets[at..at + self.0.rank]
        }

        fn normalisers(&self, _: u32) -> (f32, f32) {
            (1.0, 1.0)
        }
    }

    fn rows() -> Vec<Vec<(u32, f32)>> {
        vec![
            vec![(1, 4.0), (2, 2.0), (3, 0.5)],
            vec![(0, 1.0), (2, 2.0)],
            vec![(0, 2.0), (1, 2.0), (3, 1.0)],
            vec![(4, 3.0), (0, 0.5)],
            vec![(3, 3.0), (2, 0.5)],
        ]
    }

    /// The solved vectors plus the folded changes: `(source, target)` of `item`.
    fn folded(
        factors: &Factors,
        changes: &HashMap<u32, Vec<f32>>,
        item: u32,
    ) -> (Vec<f32>, Vec<f32>) {
        let k = factors.rank;
        let at = item as usize * k;
        let zero = vec![0.0; 2 * k];
        let change = changes.get(&item).unwrap_or(&zero);
        let source = factors.sources[at..at + k]
            .iter()
            .zip(&change[..k])
            .map(|(a, d)| a + d);
        let target = factors.targets[at..at + k]
            .iter()
            .zip(&change[k..2 * k])
            .map(|(b, d)| b + d);
        (source.collect(), target.collect())
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn folding_in_an_addition_moves_the_pair_score_as_a_new_solve_does() {
        let k = 3;
        let factors = solve(&Snapshot::from_rows(rows()), k);
        let before = dot(&factors.sources[..k], &factors.targets[k..2 * k]);
        let mut changes = HashMap::new();
        fold_in(&Plain(&factors), &[(0, vec![(1, 2.0)])], &mut changes);
        let (source, _) = folded(&factors, &changes, 0);
        let (_, target) = folded(&factors, &changes, 1);
        let after = dot(&source, &target);
        let mut grown = rows();
        grown[0][0].1 += 2.0;
        let resolved = solve(&Snapshot::from_rows(grown), k);
        let expected = dot(&resolved.sources[..k], &resolved.targets[k..2 * k]);
        // Closer to the new solve than before, not equal: both sides move, so an item whose
        // vectors carry much of the basis (here 3 components of 5 items) is over-counted by
        // about `δ·|Uᵢ|²·|Vⱼ|²` (see the module docs); in a catalogue of thousands it is small.
        assert!(
            after > before && (after - expected).abs() < (before - expected).abs(),
            "S[0][1] was {before}; folded in {after}; a new solve gives {expected}"
        );
        // The solved parts of the stored layout are left as the solve set them.
        assert!(
            changes
                .values()
                .all(|change| change[2 * k..].iter().all(|x| *x == 0.0))
        );
    }

    #[test]
    fn repeated_additions_fold_in_linearly_without_compounding() {
        let factors = solve(&Snapshot::from_rows(rows()), 3);
        let view = Plain(&factors);
        let once: Vec<(u32, Vec<(u32, f32)>)> = vec![(2, vec![(3, 1.0)])];
        let mut ten = HashMap::new();
        let mut hundred = HashMap::new();
        for round in 0..100 {
            fold_in(&view, &once, &mut hundred);
            if round < 10 {
                fold_in(&view, &once, &mut ten);
            }
        }
        for (item, change) in &hundred {
            for (many, few) in change.iter().zip(&ten[item]) {
                assert!(
                    (many - 10.0 * few).abs() <= 1e-3 * (1.0 + many.abs()),
                    "item {item}: 100 additions moved it by {many}, 10 by {few}"
                );
            }
        }
    }

    #[test]
    fn nothing_folds_in_before_the_first_solve() {
        let unsolved = Factors {
            rank: 2,
            sources: vec![0.0; 10],
            targets: vec![0.0; 10],
            scales: Vec::new(),
        };
        let mut changes = HashMap::new();
        fold_in(&Plain(&unsolved), &[(0, vec![(1, 1.0)])], &mut changes);
        assert!(changes.is_empty());
    }
}
