//! Column-family names and key encodings of the state.

pub const USERS_CF: &str = "users";
pub const SEEN_CF: &str = "seen";
pub const ITEMS_CF: &str = "items";
pub const ITEM_IDS_CF: &str = "item_ids";
pub const CATALOGUE_CF: &str = "catalogue";
pub const DEDUP_CF: &str = "dedup";
pub const OFFSETS_CF: &str = "offsets";
pub const NEIGHBOURS_CF: &str = "neighbours";
pub const ERASED_CF: &str = "erased";
pub const OUTBOX_CF: &str = "outbox";
/// Experiments and flags (their definitions) and what was attributed to them; the keys are the
/// stream processor's (`marquee_stream_processor::experiments`), opaque here.
pub const EXPERIMENTS_CF: &str = "experiments";
/// The catalogue's rules: the property schema, saved filters, campaigns and deleted items; the
/// keys are the stream processor's (`marquee_stream_processor::rules`), opaque here.
pub const RULES_CF: &str = "rules";
pub const ITEM_OFFSET_PREFIX: &[u8] = b"items";
pub const CHANGE_OFFSET_KEY: &[u8] = b"changes";
pub const SHIPPED_KEY: &[u8] = b"shipped";
pub const DIMENSION_KEY: &[u8] = b"dimension";
/// The scales of the item vectors' factorisation (little-endian `f32`s), in `default`.
pub const FACTOR_SCALES_KEY: &[u8] = b"factor_scales";
/// Present in a state created with the `seen` layout that holds only interactions that left
/// the users' history windows (see [`StateStore::seen_outside_history`]).
pub const SEEN_LAYOUT_KEY: &[u8] = b"seen_outside_history";
/// Written and flushed after an erasure's compaction, in `default`: the one file it makes is a
/// change of the file set, which writes a new MANIFEST (see `StateStore::compact_user_in_background`).
pub const MANIFEST_ROLL_KEY: &[u8] = b"manifest_roll";

pub fn user_prefix(user_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.len() + 5);
    key.extend_from_slice(user_id.as_bytes());
    key.push(0);
    key
}

pub fn seen_key(user_id: &str, item: u32) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(&item.to_be_bytes());
    key
}

pub fn item_offset_key(partition: u32) -> Vec<u8> {
    let mut key = ITEM_OFFSET_PREFIX.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

pub fn dedup_key(user_id: &str, event_id: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// Every column family of the state, for figures summed over all of them.
pub const ALL_CFS: [&str; 13] = [
    rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
    USERS_CF,
    SEEN_CF,
    ITEMS_CF,
    ITEM_IDS_CF,
    CATALOGUE_CF,
    DEDUP_CF,
    OFFSETS_CF,
    NEIGHBOURS_CF,
    ERASED_CF,
    OUTBOX_CF,
    EXPERIMENTS_CF,
    RULES_CF,
];
