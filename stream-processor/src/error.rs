//! Errors of the processor and the query side.

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
}
