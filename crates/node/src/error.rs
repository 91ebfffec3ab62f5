//! Errors of configuring, starting and stopping a node.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that cannot work; the message starts with its key (`log.fluvio_endpoint: …`).
    #[error("{0}")]
    Config(String),
    #[error("reading the configuration file {}: {source}", path.display())]
    ConfigFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in the configuration file {}: {source}", path.display())]
    ConfigSyntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("binding the listen address {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("tls: reading {} and {}: {source}", cert.display(), key.display())]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the event log ({backend}): {source}")]
    OpenLog {
        backend: String,
        source: marquee_ingest::Error,
    },
    #[error("opening the change log (topic {topic}): {source}")]
    OpenChanges {
        topic: String,
        source: marquee_ingest::Error,
    },
    #[error("opening the state: {0}")]
    OpenState(marquee_vector_store::Error),
    #[error("loading the state: {0}")]
    Load(#[from] marquee_stream_processor::Error),
    /// The background load failed; its cause was logged when it happened.
    #[error("the node failed to load its state (see the log)")]
    NotLoaded,
    #[error("the node's {0} panicked")]
    Panicked(&'static str),
    /// The parts still running at the stop deadline were left to end with the process.
    #[error("the node did not stop within {0:?}: {1} still running (see the log)")]
    StopTimeout(Duration, String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
