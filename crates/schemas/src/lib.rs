//! Marquee's shared vocabulary: pure types and codecs, no IO.
//!
//! - [`event`]: the [`Event`] a client emits, its [`EventKind`]s, and validation with field-level
//!   messages ([`FieldError`]).
//! - [`item`]: catalogue [`Item`]s.
//! - [`json`]: decoding of events and items from JSON values, field by field, so that a client
//!   learns which field of which event was wrong.
//! - [`cipher`]: encryption at rest of stored values and of user ids in keys ([`Cipher`]).
//! - [`codec`]: the versioned binary records (bincode 2) that the log and the state store keep.
//! - [`partition`]: the stable hash that maps a `user_id` to a log partition.
//! - [`clock`]: [`now_ms`], the wall clock in the unit of event timestamps.
//!
//! Everything here but [`now_ms`] and [`Cipher::seal`]'s nonces is deterministic and side-effect free; the crates above it
//! own IO.

pub mod cipher;
pub mod clock;
pub mod codec;
pub mod event;
pub mod item;
pub mod json;
pub mod partition;

pub use cipher::{Cipher, CipherError};
pub use clock::{Clock, now_ms};
pub use codec::{CodecError, LogRecord, decode_record, encode_record};
pub use event::{
    Event, EventKind, FieldError, MAX_CONTEXT_ENTRIES, MAX_FUTURE_SKEW_MS, POSITION_KEY,
    POSITIONS_KEY, RECOMMENDATION_ID_KEY, validate_id,
};
pub use item::{Item, PropertySchema, PropertyType, PropertyValue, decode_item};
pub use partition::partition_for_user;
