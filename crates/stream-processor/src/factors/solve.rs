//! The solve: a randomised truncated SVD of the normalised co-occurrence (see [`super`]).

use marquee_vector_store::Table;
use nalgebra::{DMatrix, SymmetricEigen};

/// Random probes beyond the rank: what makes the randomised SVD accurate.
const OVERSAMPLING: usize = 10;
/// Power iterations of the randomised SVD: the co-occurrence spectrum decays slowly.
const POWER_ITERATIONS: usize = 2;
/// The seed of the probes: a fixed one, so a solve is a function of `S` alone.
const PROBE_SEED: u64 = 0x6d61_7271_7565_6521;

/// A solved factorisation: both vectors of every item number (`rank` floats each, row-major;
/// zeros for an item without co-occurrence) and the scales `σ`.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub rank: usize,
    pub sources: Vec<f32>,
    pub targets: Vec<f32>,
    pub scales: Vec<f32>,
}

/// The normalised co-occurrence `S` of a table, row by row: `(j, S[i][j])` for each item `i`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    rows: Vec<Vec<(u32, f32)>>,
}

impl Snapshot {
    /// Reads `S` from the table's co-occurrence lists and masses.
    pub fn of(table: &Table) -> Snapshot {
        let candidate = table.candidate_normalisers();
        let rows = (0..table.len() as u32)
            .map(|item| {
                let history = table.normalisers(item).0;
                table
                    .neighbours(item)
                    .entries()
                    .iter()
                    .filter(|(_, weight)| *weight > 0.0)
                    .map(|&(to, weight)| (to, history * weight * candidate[to as usize]))
                    .collect()
            })
            .collect();
        Snapshot { rows }
    }

    /// A snapshot of explicit rows.
    #[cfg(test)]
    pub(crate) fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Snapshot {
        Snapshot { rows }
    }

    /// Items (rows and columns).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(Vec::is_empty)
    }

    /// `S · x` for `x` of `columns` columns (row-major, `len() × columns`).
    fn times(&self, x: &[f64], columns: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.rows.len() * columns];
        for (row, entries) in out.chunks_exact_mut(columns).zip(&self.rows) {
            for &(to, value) in entries {
                let value = f64::from(value);
                let source = &x[to as usize * columns..(to as usize + 1) * columns];
                for (sum, x) in row.iter_mut().zip(source) {
                    *sum += value * x;
                }
            }
        }
        out
    }

    /// `Sᵀ`, row by row.
    fn transpose(&self) -> Snapshot {
        let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); self.rows.len()];
        for (from, entries) in self.rows.iter().enumerate() {
            for &(to, value) in entries {
                if let Some(row) = rows.get_mut(to as usize) {
                    row.push((from as u32, value));
                }
            }
        }
        Snapshot { rows }
    }
}

/// A deterministic probe value in [−1, 1) for `(row, column)`.
fn probe(row: usize, column: usize) -> f64 {
    let mut key = PROBE_SEED ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (column as u64);
    key ^= key >> 30;
    key = key.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    key ^= key >> 27;
    key = key.wrapping_mul(0x94d0_49bb_1331_11eb);
    key ^= key >> 31;
    (key >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// An orthonormal basis of the columns of `x` (`rows × columns`, row-major), row-major.
fn orthonormal(x: Vec<f64>, rows: usize, columns: usize) -> Vec<f64> {
    let matrix = DMatrix::from_row_slice(rows, columns, &x);
    let q = matrix.qr().q();
    let mut out = Vec::with_capacity(rows * columns);
    for row in 0..rows {
        for column in 0..columns {
            out.push(q[(row, column)]);
        }
    }
    out
}

/// The rank-`rank` factorisation of `snapshot` (see the module docs).
pub fn solve(snapshot: &Snapshot, rank: usize) -> Factors {
    let n = snapshot.len();
    let width = (rank + OVERSAMPLING).min(n.max(1));
    let mut factors = Factors {
        rank,
        sources: vec![0.0; n * rank],
        targets: vec![0.0; n * rank],
        scales: vec![0.0; rank],
    };
    if snapshot.is_empty() || n == 0 {
        return factors;
    }
    let transposed = snapshot.transpose();
    let probes: Vec<f64> = (0..n * width)
        .map(|at| probe(at / width, at % width))
        .collect();
    let mut basis = orthonormal(snapshot.times(&probes, width), n, width);
    for _ in 0..POWER_ITERATIONS {
        let back = orthonormal(transposed.times(&basis, width), n, width);
        basis = orthonormal(snapshot.times(&back, width), n, width);
    }
    // Bᵀ = Sᵀ·Q (n × width); its Gram matrix B·Bᵀ = Qᵀ·S·Sᵀ·Q holds the squared singular
    // values and the left vectors of B.
    let b_t = DMatrix::from_row_slice(n, width, &transposed.times(&basis, width));
    let gram = b_t.transpose() * &b_t;
    let eigen = SymmetricEigen::new(gram);
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by(|&x, &y| eigen.eigenvalues[y].total_cmp(&eigen.eigenvalues[x]));
    let q = DMatrix::from_row_slice(n, width, &basis);
    let left_all = &q * &eigen.eigenvectors;
    let right_all = &b_t * &eigen.eigenvectors;
    for (component, &column) in order.iter().take(rank.min(width)).enumerate() {
        let sigma = eigen.eigenvalues[column].max(0.0).sqrt();
        if sigma <= f64::EPSILON {
            continue;
        }
        factors.scales[component] = sigma as f32;
        let half = sigma.sqrt();
        for item in 0..n {
            // Left: U·σ^½; right: V·σ^½ = Bᵀ·W·σ^−1·σ^½.
            factors.sources[item * rank + component] = (left_all[(item, column)] * half) as f32;
            factors.targets[item * rank + component] =
                (right_all[(item, column)] / sigma * half) as f32;
        }
    }
    factors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(rows: Vec<Vec<(u32, f32)>>) -> Snapshot {
        Snapshot::from_rows(rows)
    }

    fn score(factors: &Factors, from: usize, to: usize) -> f32 {
        let k = factors.rank;
        factors.sources[from * k..(from + 1) * k]
            .iter()
            .zip(&factors.targets[to * k..(to + 1) * k])
            .map(|(a, b)| a * b)
            .sum()
    }

    #[test]
    fn a_solve_of_a_low_rank_matrix_reproduces_it_and_keeps_its_order() {
        // Two blocks, and order inside them: 0 → 1 strong, 1 → 0 weak.
        let rows = vec![
            vec![(1, 4.0), (2, 2.0)],
            vec![(0, 1.0), (2, 2.0)],
            vec![(0, 2.0), (1, 2.0)],
            vec![(4, 3.0)],
            vec![(3, 3.0)],
        ];
        // Two blocks of rank 3 and 2: rank 5 holds all of it.
        let factors = solve(&snapshot(rows.clone()), 5);
        for (from, entries) in rows.iter().enumerate() {
            for &(to, value) in entries {
                let approximated = score(&factors, from, to as usize);
                assert!(
                    (approximated - value).abs() < 0.5,
                    "S[{from}][{to}] = {value}, factors give {approximated}"
                );
            }
        }
        assert!(score(&factors, 0, 1) > score(&factors, 1, 0));
        assert!(score(&factors, 0, 3).abs() < 0.2, "the blocks stay apart");
        // The same matrix, the same vectors.
        assert_eq!(solve(&snapshot(rows), 5), factors);
    }

    #[test]
    fn an_empty_matrix_gives_zero_vectors() {
        let factors = solve(&snapshot(vec![Vec::new(); 3]), 2);
        assert!(
            factors
                .sources
                .iter()
                .chain(&factors.targets)
                .all(|x| *x == 0.0)
        );
        assert_eq!(factors.scales, vec![0.0, 0.0]);
    }
}
