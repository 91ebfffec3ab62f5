//! The event log: the durable, partitioned record of every acknowledged event.
//!
//! - [`EventLog`]: the trait every backend implements, with its written contract.
//! - [`embedded`]: the default backend, a RocksDB instance in the data directory with group
//!   commit.
//! - [`error`]: this crate's error type.
//!
//! The processor reads the log only through [`EventLog`], so backends are interchangeable.

pub mod embedded;
pub mod error;
mod log;

pub use embedded::{EmbeddedLog, EmbeddedLogConfig};
pub use error::{Error, Result};
pub use log::{Appended, EventLog, LogEntry, LogRead};
