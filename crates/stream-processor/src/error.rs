//! Errors of the processor, the query side, the data directory and backups.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] marquee_ingest::Error),
    #[error(transparent)]
    State(#[from] marquee_vector_store::Error),
    #[error("the processor stopped before the request ran")]
    Stopped,
    /// A setting of the processor that cannot work (names the setting).
    #[error("{0}")]
    Config(String),
    /// A file or directory of the data directory that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The search index in `path` failed (opening, writing or reading it).
    #[error("search index {}: {source}", path.display())]
    Search {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
    /// An experiment or flag definition that breaks a rule (names the field).
    #[error("{0}")]
    Invalid(marquee_schemas::FieldError),
    /// No experiment or flag of that name.
    #[error("{0}")]
    NotFound(String),
    /// A key file of the wrong length.
    #[error("{}: expected 32 bytes, found {found}", path.display())]
    SecretKey { path: PathBuf, found: usize },
    /// A key the state was made with is gone while the state is there.
    #[error(
        "{}: missing beside an existing state; with a new key, {harm}. Put the file back \
         (from a backup: `marquee restore` copies it), or start from an empty data directory; \
         only if this state never used the key, create it with \
         `head -c 32 /dev/urandom > {}` and `chmod 600` it",
        path.display(),
        path.display()
    )]
    MissingStateKey { path: PathBuf, harm: String },
    /// A journal of the data directory (erasures, revocations) that cannot be read or written.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

impl Error {
    /// The database (`log` or `state`) holding a record that failed to decode, if that is what
    /// this error is.
    pub fn corrupt_db(&self) -> Option<&'static str> {
        match self {
            Error::Log(marquee_ingest::Error::CorruptRecord { .. }) => Some("log"),
            Error::State(error) if error.is_corrupt() => Some("state"),
            _ => None,
        }
    }
}
