//! Which log partition a user's events go to.
//!
//! The partition is `fnv1a_64(user_id as UTF-8) % partition_count`, with the standard 64-bit
//! FNV-1a parameters (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`). It is part of
//! the on-disk contract: one user's events always land in one partition, in order, so the
//! processor sees each user's history in append order. Changing it requires a log rebuild.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The partition of `user_id` among `partition_count` partitions.
pub fn partition_for_user(user_id: &str, partition_count: u32) -> u32 {
    debug_assert!(partition_count > 0);
    (fnv1a_64(user_id.as_bytes()) % u64::from(partition_count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(partition_for_user("u42", 4), partition_for_user("u42", 4));
        for user in 0..1000 {
            assert!(partition_for_user(&format!("u{user}"), 4) < 4);
        }
    }
}
