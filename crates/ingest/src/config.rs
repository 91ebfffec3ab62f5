//! [`LogBackend`]: which event log a node writes to and its processor reads from, as configured,
//! and the default names of the Fluvio topics. A leaf: the backends and [`crate::AnyLog`] use it.

/// The Fluvio topic's default name.
pub const DEFAULT_TOPIC: &str = "marquee-events";

/// Which log a node writes to and its processor reads from (config `log.backend`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogBackend {
    /// The embedded RocksDB log in `<data-dir>/log` (the default).
    #[default]
    Embedded,
    /// A topic of a Fluvio cluster.
    Fluvio {
        /// The SC public endpoint, `HOST:PORT`.
        endpoint: String,
        /// The topic ([`DEFAULT_TOPIC`] by default).
        topic: String,
        /// Replicas per partition when the topic is created.
        replication: u32,
    },
}

impl LogBackend {
    /// A short description for logs and error messages.
    pub fn describe(&self) -> String {
        match self {
            LogBackend::Embedded => "embedded".to_owned(),
            LogBackend::Fluvio {
                endpoint, topic, ..
            } => format!("fluvio topic {topic} at {endpoint}"),
        }
    }
}

/// The Fluvio topic of the change log, by default.
pub const DEFAULT_CHANGES_TOPIC: &str = "marquee-item-deltas";
