//! Sticky, stateless assignment: a keyed hash of (salt, user) read as a point of the unit
//! interval. No table of who is where: every node computes the same point, and a restart
//! changes nothing.

use sha2::{Digest, Sha256};

/// A point in `[0, 1)` for a user under a salt: the first 53 bits of SHA-256 over a domain
/// tag, the salt, a separator and the user id. Uniform (SHA-256's output), so a 50/50 split of
/// 100,000 users lands within binomial bounds (tested).
pub fn unit_hash(salt: &str, user_id: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(b"marquee-assignment\0");
    hasher.update(salt.as_bytes());
    hasher.update([0]);
    hasher.update(user_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_stable_and_in_range() {
        let point = unit_hash("e1", "u1");
        assert_eq!(point, unit_hash("e1", "u1"));
        assert_ne!(point, unit_hash("e2", "u1"));
        assert_ne!(point, unit_hash("e1", "u2"));
        for user in 0..1000 {
            let point = unit_hash("s", &format!("u{user}"));
            assert!((0.0..1.0).contains(&point));
        }
    }
}
