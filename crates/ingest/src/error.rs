//! Errors of the event log.

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("corrupt log record at partition {partition} offset {offset}: {source}")]
    CorruptRecord {
        partition: u32,
        offset: u64,
        source: marquee_schemas::CodecError,
    },
    #[error("cannot encode an event for the log: {0}")]
    Encode(marquee_schemas::CodecError),
    #[error(
        "the log at {path} has {existing} partitions, but {requested} were requested; \
         the partition count is fixed when a log is created"
    )]
    PartitionCountMismatch {
        path: String,
        existing: u32,
        requested: u32,
    },
    #[error("partition {partition} does not exist (the log has {partition_count})")]
    NoSuchPartition {
        partition: u32,
        partition_count: u32,
    },
    #[error("the log is closed")]
    Closed,
    /// The log's cluster cannot be reached or refused a request; retrying later may succeed.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    #[error("this log backend cannot {0}")]
    Unsupported(&'static str),
    #[error("no event log at {0}")]
    NotFound(String),
    #[error(
        "the log entry at partition {partition} offset {offset} does not open with the \
         encryption key (another key, or corrupt)"
    )]
    Sealed { partition: u32, offset: u64 },
    /// The log was created with another encryption choice than the one it is opened with.
    #[error("the log at {path}: {problem}")]
    Encryption { path: String, problem: &'static str },
}

impl Error {
    /// Whether retrying the same call later may succeed (storage trouble, shutdown) rather than
    /// fail the same way (a bad argument, corrupt data).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage(_) | Error::Closed | Error::Unavailable(_) => true,
            Error::CorruptRecord { .. }
            | Error::Encode(_)
            | Error::PartitionCountMismatch { .. }
            | Error::NoSuchPartition { .. }
            | Error::Unsupported(_)
            | Error::NotFound(_)
            | Error::Sealed { .. }
            | Error::Encryption { .. } => false,
        }
    }
}
