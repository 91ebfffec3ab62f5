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
///
/// [`StateStore::seen_outside_history`]: super::StateStore::seen_outside_history
pub const SEEN_LAYOUT_KEY: &[u8] = b"seen_outside_history";
/// Written and flushed after an erasure's compaction, in `default`: the one file it makes is a
/// change of the file set, which writes a new MANIFEST (see `StateStore::compact_user_in_background`).
pub const MANIFEST_ROLL_KEY: &[u8] = b"manifest_roll";

/// Present in `default` in an encrypted state: a known text sealed with its key, which opens
/// only with that key (see `check_encryption`).
pub const ENCRYPTION_KEY: &[u8] = b"encryption";

/// Whether the values of `cf_name` are sealed in an encrypted state (see the module docs of
/// [`super`]).
pub fn is_sealed(cf_name: &str) -> bool {
    matches!(
        cf_name,
        USERS_CF
            | SEEN_CF
            | ITEMS_CF
            | NEIGHBOURS_CF
            | CATALOGUE_CF
            | OUTBOX_CF
            | EXPERIMENTS_CF
            | RULES_CF
    )
}

/// The start of every `seen` and `dedup` key of the user whose `users` key is `user_key`
/// (`StateStore::user_key`): that key and 0x00.
pub fn user_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_key.len() + 5);
    key.extend_from_slice(user_key);
    key.push(0);
    key
}

pub fn seen_key(user_key: &[u8], item: u32) -> Vec<u8> {
    let mut key = user_prefix(user_key);
    key.extend_from_slice(&item.to_be_bytes());
    key
}

pub fn item_offset_key(partition: u32) -> Vec<u8> {
    let mut key = ITEM_OFFSET_PREFIX.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// `event_key`: the event id, sealed in an encrypted state (`StateStore::dedup_key`).
pub fn dedup_key(user_key: &[u8], event_key: &[u8]) -> Vec<u8> {
    let mut key = user_prefix(user_key);
    key.extend_from_slice(event_key);
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
