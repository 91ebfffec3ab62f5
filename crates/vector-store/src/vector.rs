//! Small dense-vector helpers shared by the index and the model.

/// Scale of a new item's seeded vector components.
pub const INITIAL_VECTOR_SCALE: f32 = 0.05;

/// Dot product of two equally long slices.
#[inline]
pub fn dot(left: &[f32], right: &[f32]) -> f32 {
    debug_assert_eq!(left.len(), right.len());
    // Four independent accumulators let the compiler vectorise without reassociation.
    let mut sums = [0.0f32; 4];
    let chunks_left = left.chunks_exact(4);
    let chunks_right = right.chunks_exact(4);
    let tail: f32 = chunks_left
        .remainder()
        .iter()
        .zip(chunks_right.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in chunks_left.zip(chunks_right) {
        for lane in 0..4 {
            sums[lane] += a[lane] * b[lane];
        }
    }
    sums[0] + sums[1] + sums[2] + sums[3] + tail
}

/// Euclidean norm.
#[inline]
pub fn norm(vector: &[f32]) -> f32 {
    dot(vector, vector).sqrt()
}

/// A deterministic pseudo-random vector for `key`: components uniform in `[-scale, scale]`,
/// seeded by the key's FNV-1a hash (splitmix64 stream). New items start here, so the same item
/// gets the same starting vector on every node and on every replay.
pub fn seeded_vector(key: &str, dimension: usize, scale: f32) -> Vec<f32> {
    let mut state = marquee_schemas::partition::fnv1a_64(key.as_bytes());
    (0..dimension)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut mixed = state;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            mixed ^= mixed >> 31;
            let unit = (mixed >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
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

    #[test]
    fn seeded_vectors_are_deterministic_and_bounded() {
        let first = seeded_vector("m1", 16, 0.1);
        assert_eq!(first, seeded_vector("m1", 16, 0.1));
        assert_ne!(first, seeded_vector("m2", 16, 0.1));
        assert!(first.iter().all(|x| x.abs() <= 0.1));
    }
}
