//! `marquee_partition(user_id TEXT, partitions BIGINT) -> BIGINT`: the partition of Marquee's
//! event log that holds a user's events, `fnv1a_64(user_id as UTF-8) % partitions` with the
//! standard 64-bit FNV-1a parameters (Marquee's `marquee_schemas::partition`). A pipeline that
//! keys its output the way Marquee places users can route each user's rows to the node that
//! owns the user's partition (docs/SCALING.md). NULL when `partitions` is not positive.

use arroyo_udf_plugin::udf;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[udf]
pub fn marquee_partition(user_id: &str, partitions: i64) -> Option<i64> {
    let partitions = u64::try_from(partitions).ok().filter(|&count| count > 0)?;
    let mut hash = FNV_OFFSET_BASIS;
    for byte in user_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    i64::try_from(hash % partitions).ok()
}
