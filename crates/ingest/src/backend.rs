//! [`AnyLog`]: the opened log of the backend a [`LogBackend`] names, one of the backends behind
//! one type, so the node and its routes are not generic.

use std::path::Path;
use std::time::Duration;

use marquee_schemas::Event;

use crate::config::LogBackend;
use crate::embedded::{EmbeddedLog, EmbeddedLogConfig};
#[cfg(not(feature = "fluvio"))]
use crate::error::Error;
use crate::error::Result;
#[cfg(feature = "fluvio")]
use crate::fluvio::{FluvioLog, FluvioLogConfig};
use crate::log::{Appended, EventLog, LogEntry, LogRead};

/// An opened event log of any backend.
#[derive(Clone, Debug)]
pub enum AnyLog {
    Embedded(EmbeddedLog),
    #[cfg(feature = "fluvio")]
    Fluvio(FluvioLog),
}

impl AnyLog {
    /// Opens the log `backend` names: the embedded log at `embedded_path`, or a connection to
    /// the Fluvio cluster (creating the topic when absent). `partitions` is the partition count
    /// of a new log; an existing one must match. `cipher`: the embedded log's encryption at
    /// rest (a Fluvio cluster's storage is the cluster's to encrypt).
    ///
    /// # Errors
    /// The backend's opening errors; [`Error::Unsupported`] for Fluvio in a build without the
    /// `fluvio` feature.
    ///
    /// [`Error::Unsupported`]: crate::Error::Unsupported
    pub async fn open(
        backend: &LogBackend,
        embedded_path: &Path,
        partitions: u32,
        cipher: Option<marquee_schemas::Cipher>,
    ) -> Result<AnyLog> {
        match backend {
            LogBackend::Embedded => EmbeddedLog::open(
                embedded_path,
                EmbeddedLogConfig {
                    partitions,
                    cipher,
                    ..EmbeddedLogConfig::default()
                },
            )
            .map(AnyLog::Embedded),
            #[cfg(feature = "fluvio")]
            LogBackend::Fluvio {
                endpoint,
                topic,
                replication,
            } => FluvioLog::connect(FluvioLogConfig {
                topic: topic.clone(),
                partitions,
                replication: *replication,
                ..FluvioLogConfig::new(endpoint.clone())
            })
            .await
            .map(AnyLog::Fluvio),
            #[cfg(not(feature = "fluvio"))]
            LogBackend::Fluvio { .. } => Err(Error::Unsupported(
                "use Fluvio: this binary was built without the `fluvio` cargo feature",
            )),
        }
    }

    /// The embedded log, when that is the backend (checkpoints, retention, storage figures).
    pub fn as_embedded(&self) -> Option<&EmbeddedLog> {
        match self {
            AnyLog::Embedded(log) => Some(log),
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(_) => None,
        }
    }

    /// Flushes what the backend holds in memory, at a clean stop.
    pub fn close(&self) {
        if let Some(log) = self.as_embedded() {
            log.close();
        }
    }
}

impl EventLog for AnyLog {
    fn partition_count(&self) -> u32 {
        match self {
            AnyLog::Embedded(log) => log.partition_count(),
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.partition_count(),
        }
    }

    async fn append(&self, events: Vec<Event>) -> Result<Vec<Appended>> {
        match self {
            AnyLog::Embedded(log) => log.append(events).await,
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.append(events).await,
        }
    }

    fn read(&self, partition: u32, from_offset: u64, max_records: usize) -> Result<LogRead> {
        match self {
            AnyLog::Embedded(log) => log.read(partition, from_offset, max_records),
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.read(partition, from_offset, max_records),
        }
    }

    fn user_entries(&self, user_id: &str) -> Result<Vec<LogEntry>> {
        match self {
            AnyLog::Embedded(log) => log.user_entries(user_id),
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.user_entries(user_id),
        }
    }

    fn erase(&self, positions: &[(u32, u64)]) -> Result<()> {
        match self {
            AnyLog::Embedded(log) => log.erase(positions),
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.erase(positions),
        }
    }

    fn end_offsets(&self) -> Result<Vec<u64>> {
        match self {
            AnyLog::Embedded(log) => log.end_offsets(),
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.end_offsets(),
        }
    }

    async fn wait_for_append(&self, positions: &[u64], timeout: Duration) {
        match self {
            AnyLog::Embedded(log) => log.wait_for_append(positions, timeout).await,
            #[cfg(feature = "fluvio")]
            AnyLog::Fluvio(log) => log.wait_for_append(positions, timeout).await,
        }
    }
}
