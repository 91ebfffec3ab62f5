//! Versioned binary records.
//!
//! Every record the log or the state store writes is one format-version byte followed by the
//! bincode 2 "standard" encoding of the value. A reader that meets a version it does not know, or
//! bytes that do not decode, gets a [`CodecError`], never a panic: stored data may outlive the
//! code that wrote it, and a disk may corrupt it.

use bincode::{Decode, Encode};

/// The version byte written in front of every record by this build.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record is empty")]
    Empty,
    #[error("record has format version {found}, this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion { found: u8 },
    #[error("record does not decode: {0}")]
    Corrupt(#[from] bincode::error::DecodeError),
    #[error("record has {trailing} trailing bytes")]
    TrailingBytes { trailing: usize },
    #[error("record does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// The most bytes one record may claim while it is decoded. Far above any real record (the
/// largest, a user state, is a few tens of KiB); it stops a corrupt length prefix from asking
/// for an allocation of exabytes, which would abort the process instead of failing the read.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes `value` as a versioned record.
pub fn encode_record<T: Encode>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![FORMAT_VERSION];
    bincode::encode_into_std_write(value, &mut bytes, config())?;
    Ok(bytes)
}

/// Decodes a versioned record written by [`encode_record`].
pub fn decode_record<T: Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion { found: version });
    }
    let (value, read) = bincode::decode_from_slice(body, config())?;
    if read != body.len() {
        return Err(CodecError::TrailingBytes {
            trailing: body.len() - read,
        });
    }
    Ok(value)
}

/// What the embedded log stores per event: the server's append time and the event.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch, when the log appended the event.
    pub append_ms: i64,
    pub event: crate::event::Event,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_corrupt_length_prefix_is_an_error_not_an_abort() {
        // Found by the `log_record` fuzz target: a string length near 2^64.
        let bytes = [1, 1, 253, 0, 1, 0, 0, 0, 251, 255, 128];
        assert!(matches!(
            decode_record::<LogRecord>(&bytes),
            Err(CodecError::Corrupt(_))
        ));
    }
    use crate::event::{Event, EventKind};

    #[test]
    fn events_round_trip() {
        let event = Event {
            event_id: "e1".into(),
            user_id: "u1".into(),
            item_id: "m1".into(),
            kind: EventKind::Watch,
            value: Some(0.5),
            timestamp: 42,
            context: BTreeMap::from([("surface".into(), "home".into())]),
        };
        let bytes = encode_record(&event).unwrap();
        assert_eq!(decode_record::<Event>(&bytes).unwrap(), event);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        assert!(matches!(
            decode_record::<Event>(&[9, 1, 2]),
            Err(CodecError::UnsupportedVersion { found: 9 })
        ));
        assert!(decode_record::<Event>(&[FORMAT_VERSION, 0xff, 0xff]).is_err());
        assert!(matches!(
            decode_record::<Event>(&[]),
            Err(CodecError::Empty)
        ));
    }
}
