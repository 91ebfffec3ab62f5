//! The experiments column family's keys and records (the layout is this module's; the store
//! keeps bytes).
//!
//! | key | value |
//! |---|---|
//! | `e` ‖ name | [`Experiment`](super::Experiment) |
//! | `f` ‖ name | [`Flag`](super::Flag) |
//! | `l` ‖ recommendation id | [`ListRecord`]: one list shown, its groups, its outcomes |
//! | `u` ‖ experiment id (8 bytes) ‖ user key (16 bytes) | [`UserRecord`]: one user's counts |
//!
//! A user key is an HMAC of the user id under the recommendation key, so no raw user id is a
//! key here, and an erasure can find the user's records without a scan.

use bincode::{Decode, Encode};
use hmac::{Hmac, Mac};
use marquee_schemas::{decode_record, encode_record};
use marquee_vector_store::store::keys::EXPERIMENTS_CF;
use sha2::Sha256;

use crate::error::{Error, Result};

pub const EXPERIMENT_PREFIX: u8 = b'e';
pub const FLAG_PREFIX: u8 = b'f';
pub const LIST_PREFIX: u8 = b'l';
pub const USER_PREFIX: u8 = b'u';
/// Click positions are counted one by one up to this, the rest together.
pub const POSITION_BUCKETS: usize = 11;

/// A record of this column family, encoded.
pub(crate) fn encode<T: Encode>(value: &T) -> Result<Vec<u8>> {
    encode_record(value).map_err(|source| {
        Error::State(marquee_vector_store::Error::Encode {
            column_family: EXPERIMENTS_CF,
            source,
        })
    })
}

/// A record of this column family stored under `key`, decoded (a corrupt one is an error that
/// names the key).
pub(crate) fn decode<T: Decode<()>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    decode_record(bytes).map_err(|source| {
        Error::State(marquee_vector_store::Error::CorruptRecord {
            column_family: EXPERIMENTS_CF,
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        })
    })
}

pub fn named_key(prefix: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(prefix);
    key.extend_from_slice(name.as_bytes());
    key
}

pub fn list_key(recommendation_id: &str) -> Vec<u8> {
    named_key(LIST_PREFIX, recommendation_id)
}

/// The prefix of every user record of one experiment.
pub fn users_prefix(experiment_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(USER_PREFIX);
    key.extend_from_slice(&experiment_id.to_be_bytes());
    key
}

pub fn user_key(key: &[u8; 32], experiment_id: u64, user_id: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"marquee-experiment-user\0");
    mac.update(user_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut record_key = users_prefix(experiment_id);
    record_key.extend_from_slice(&digest[..16]);
    record_key
}

/// One list that was shown (its first impression made it).
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct ListRecord {
    pub served_ms: i64,
    /// `(experiment id, group)` of every experiment running when it was shown.
    pub groups: Vec<(u64, String)>,
    pub clicked: bool,
    pub watched: bool,
}

/// One user's counts in one experiment.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct UserRecord {
    /// The group of the user's first impression.
    pub group: String,
    /// Lists shown.
    pub impressions: u64,
    /// Lists clicked (at least once).
    pub clicked: u64,
    /// Lists watched from (at least once).
    pub watched: u64,
    /// Positive events attributed to the lists (a like, a good rating, a watch, a click).
    pub positives: u64,
    /// First clicks by position (the last bucket holds the rest).
    pub click_positions: Vec<u64>,
}
