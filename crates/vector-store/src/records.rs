//! The records the state keeps, shared by the store, the item table and the deltas (a leaf
//! module: it imports nothing else of this crate).

use bincode::{Decode, Encode};

/// One entry of a user's recent history.
#[derive(Debug, Clone, Copy, PartialEq, Encode, Decode)]
pub struct HistoryEntry {
    pub item: u32,
    /// The event's weight in the model (negative for dislikes and low ratings).
    pub weight: f32,
    pub timestamp: i64,
}

/// What the model keeps per user. Its record packs the history into fixed-width bytes (see the
/// `Encode` impl): decoding a long history is a copy, not a varint per field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserState {
    /// Events applied for this user (duplicates excluded).
    pub event_count: u64,
    /// Timestamp of the latest applied event.
    pub last_timestamp: i64,
    /// The user's embedding; empty until the first event with an item vector.
    pub vector: Vec<f32>,
    /// The most recent interactions, oldest first, bounded by the model's history window.
    pub history: Vec<HistoryEntry>,
}

/// Bytes of one packed history entry: item `u32`, weight `f32`, timestamp `i64`, little-endian.
const PACKED_HISTORY_ENTRY: usize = 16;

impl Encode for UserState {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.event_count.encode(encoder)?;
        self.last_timestamp.encode(encoder)?;
        self.vector.encode(encoder)?;
        let mut packed = Vec::with_capacity(self.history.len() * PACKED_HISTORY_ENTRY);
        for entry in &self.history {
            packed.extend_from_slice(&entry.item.to_le_bytes());
            packed.extend_from_slice(&entry.weight.to_le_bytes());
            packed.extend_from_slice(&entry.timestamp.to_le_bytes());
        }
        packed.encode(encoder)
    }
}

impl<Context> Decode<Context> for UserState {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let event_count = u64::decode(decoder)?;
        let last_timestamp = i64::decode(decoder)?;
        let vector = Vec::<f32>::decode(decoder)?;
        let packed = Vec::<u8>::decode(decoder)?;
        if packed.len() % PACKED_HISTORY_ENTRY != 0 {
            return Err(bincode::error::DecodeError::Other(
                "user history: length is not a whole number of entries",
            ));
        }
        let history = packed
            .chunks_exact(PACKED_HISTORY_ENTRY)
            .map(|chunk| HistoryEntry {
                item: u32::from_le_bytes(chunk[0..4].try_into().expect("4 bytes")),
                weight: f32::from_le_bytes(chunk[4..8].try_into().expect("4 bytes")),
                timestamp: i64::from_le_bytes(chunk[8..16].try_into().expect("8 bytes")),
            })
            .collect();
        Ok(UserState {
            event_count,
            last_timestamp,
            vector,
            history,
        })
    }
}

/// One item a user interacted with.
#[derive(Debug, Clone, Copy, PartialEq, Default, Encode, Decode)]
pub struct SeenEntry {
    pub interactions: u32,
    pub last_weight: f32,
    pub last_timestamp: i64,
}

impl SeenEntry {
    /// Counts one more interaction, of `weight` at `timestamp`, as the last.
    pub fn record(&mut self, weight: f32, timestamp: i64) {
        self.interactions += 1;
        self.last_weight = weight;
        self.last_timestamp = timestamp;
    }
}

/// What the model keeps per item.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ItemState {
    pub item_id: String,
    pub vector: Vec<f32>,
    /// Time-decayed popularity, as of `popularity_at`.
    pub popularity: f32,
    pub popularity_at: i64,
    pub event_count: u64,
    /// Total weight of the positive events on this item, as the co-occurrence model counts it.
    pub mass: f32,
}

/// Time-decayed popularity of an item.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Popularity {
    /// Score as of `at`.
    pub score: f32,
    /// Stream time (ms) of the last update.
    pub at: i64,
}

impl Popularity {
    /// The score decayed to stream time `now` with the given half-life.
    pub fn decayed(&self, now: i64, half_life_ms: f64) -> f32 {
        let elapsed = (now - self.at).max(0) as f64;
        (f64::from(self.score) * (-elapsed / half_life_ms * std::f64::consts::LN_2).exp()) as f32
    }

    /// Adds `weight` at stream time `now`.
    pub fn add(&mut self, weight: f32, now: i64, half_life_ms: f64) {
        let at = now.max(self.at);
        self.score = self.decayed(at, half_life_ms) + weight;
        self.at = at;
    }

    /// Adds `other` (another sum of decayed weights, as of its own time): both are decayed to
    /// the later time and summed. Unlike [`Popularity::add`] of a late event, this is
    /// commutative and associative, so deltas merged in any order give one score.
    pub fn merge(&mut self, other: Popularity, half_life_ms: f64) {
        if other.score == 0.0 {
            return;
        }
        if self.score == 0.0 {
            *self = other;
            return;
        }
        let at = self.at.max(other.at);
        self.score = self.decayed(at, half_life_ms) + other.decayed(at, half_life_ms);
        self.at = at;
    }

    /// Takes back what [`Popularity::add`] of `weight` at stream time `then` contributed (decayed
    /// to the score's own time), never below zero.
    pub fn remove(&mut self, weight: f32, then: i64, half_life_ms: f64) {
        let elapsed = (self.at - then).max(0) as f64;
        let contribution =
            f64::from(weight) * (-elapsed / half_life_ms * std::f64::consts::LN_2).exp();
        self.score = (f64::from(self.score) - contribution).max(0.0) as f32;
    }
}
