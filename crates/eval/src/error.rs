//! Errors of an evaluation.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading MovieLens data from {}: {source}", dir.display())]
    Data {
        dir: PathBuf,
        source: marquee_datasets::Error,
    },
    #[error("the data holds no ratings")]
    NoRatings,
    #[error("the scratch data directory or runtime: {0}")]
    Scratch(std::io::Error),
    #[error(transparent)]
    Log(#[from] marquee_ingest::Error),
    #[error(transparent)]
    State(#[from] marquee_vector_store::Error),
    #[error(transparent)]
    Model(#[from] marquee_stream_processor::Error),
}
