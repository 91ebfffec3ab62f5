//! Small dense-vector helpers shared by the index and the model.

/// Dot product of two equally long slices.
#[inline]
pub fn dot(left: &[f32], right: &[f32]) -> f32 {
    sum_of(left, right, |a, b| a * b)
}

/// Squared Euclidean distance between two equally long slices.
#[inline]
pub fn squared_distance(left: &[f32], right: &[f32]) -> f32 {
    sum_of(left, right, |a, b| (a - b) * (a - b))
}

/// `Σ term(leftᵢ, rightᵢ)`. Four independent accumulators let the compiler vectorise without
/// reassociation.
#[inline(always)]
fn sum_of(left: &[f32], right: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(left.len(), right.len());
    let mut sums = [0.0f32; 4];
    let chunks_left = left.chunks_exact(4);
    let chunks_right = right.chunks_exact(4);
    let tail: f32 = chunks_left
        .remainder()
        .iter()
        .zip(chunks_right.remainder())
        .map(|(a, b)| term(*a, *b))
        .sum();
    for (a, b) in chunks_left.zip(chunks_right) {
        for lane in 0..4 {
            sums[lane] += term(a[lane], b[lane]);
        }
    }
    sums[0] + sums[1] + sums[2] + sums[3] + tail
}

/// Euclidean norm.
#[inline]
pub fn norm(vector: &[f32]) -> f32 {
    dot(vector, vector).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum() {
        let left: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let right: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = left.iter().zip(&right).map(|(a, b)| a * b).sum();
        assert!((dot(&left, &right) - naive).abs() < 1e-3);
    }
}
