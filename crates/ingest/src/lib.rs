//! The event log: the durable, partitioned record of every acknowledged event.
//!
//! - [`EventLog`]: the trait every backend implements, with its written contract.
//! - [`embedded`]: the default backend, a RocksDB instance in the data directory with group
//!   commit.
//! - [`fluvio`] (cargo feature `fluvio`): a topic of a Fluvio cluster, for more than one machine.
//! - [`changes`]: the change log, which carries item changes between nodes that split the
//!   partitions.
//! - [`LogBackend`] (which backend, as configured) and [`AnyLog`] (the opened log of any
//!   backend behind one type).
//! - [`error`]: this crate's error type.
//!
//! The processor reads the log only through [`EventLog`], so backends are interchangeable.

mod backend;
pub mod changes;
mod config;
pub mod embedded;
pub mod error;
#[cfg(feature = "fluvio")]
pub mod fluvio;
mod log;

pub use backend::AnyLog;
#[cfg(feature = "fluvio")]
pub use changes::FluvioChangeLog;
pub use changes::{AnyChangeLog, ChangeLog, EmbeddedChangeLog};
pub use config::{DEFAULT_CHANGES_TOPIC, DEFAULT_TOPIC, LogBackend};
pub use embedded::{EmbeddedLog, EmbeddedLogConfig};
pub use error::{Error, Result};
#[cfg(feature = "fluvio")]
pub use fluvio::{FluvioLog, FluvioLogConfig};
pub use log::{Appended, ChangeRecord, EventLog, LogEntry, LogRead};
