//! Errors of the state store and index.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("corrupt {column_family} record for key {key:?}: {source}")]
    CorruptRecord {
        column_family: &'static str,
        key: String,
        source: marquee_schemas::CodecError,
    },
    #[error("cannot encode a {column_family} record: {source}")]
    Encode {
        column_family: &'static str,
        source: marquee_schemas::CodecError,
    },
    #[error("corrupt {column_family} entry (wrong key or value length)")]
    CorruptKey { column_family: &'static str },
    #[error("corrupt co-occurrence list for item {item}")]
    CorruptNeighbours { item: u32 },
    #[error(
        "the state at {path} was built with item vectors of dimension {}, but the configuration \
         asks for {}: set [model] dimension = {} to open it, or rebuild the state from the log \
         with the new dimension",
        .existing / crate::STORED_PARTS,
        .requested / crate::STORED_PARTS,
        .existing / crate::STORED_PARTS
    )]
    DimensionMismatch {
        path: String,
        existing: usize,
        requested: usize,
    },
    #[error(
        "a {column_family} value does not open with the encryption key (another key, or corrupt)"
    )]
    Sealed { column_family: &'static str },
    #[error(
        "the state at {path} is encrypted: set [storage] encryption_key_file (or \
         MARQUEE_ENCRYPTION_KEY) to the key it was created with"
    )]
    EncryptedState { path: String },
    #[error(
        "the state at {path} was created without encryption and an encryption key is set: \
         encryption is chosen when a data directory is created; unset the key to open this one"
    )]
    PlainState { path: String },
    #[error(
        "the encryption key does not open the state at {path}: it was created with another key"
    )]
    WrongEncryptionKey { path: String },
    #[error("saved index at {path}: {message}")]
    SavedIndex { path: String, message: String },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    /// Whether a stored record failed to decode (as opposed to a storage or configuration
    /// failure).
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            Error::CorruptRecord { .. }
                | Error::CorruptKey { .. }
                | Error::CorruptNeighbours { .. }
                | Error::Sealed { .. }
        )
    }
}
