//! Errors of reading a data set.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be opened or read, or a field that does not parse; the message
    /// names the file (and the field).
    #[error("{message}: {source}")]
    Read {
        message: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A directory or a line that is not of the layout it should be.
    #[error("{0}")]
    Format(String),
}

impl Error {
    pub(crate) fn read(
        message: String,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Read {
            message,
            source: Box::new(source),
        }
    }
}
