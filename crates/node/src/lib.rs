//! A Marquee node: its configuration, its start and its stop, and the operations that run
//! beside one (replay).
//!
//! - [`config`]: [`Settings`] (the configuration file's layout, every default written once),
//!   [`Overrides`] (environment and flags) and the validated [`NodeConfig`].
//! - [`running`]: [`RunningNode`] — binds the listener, serves the API (`marquee_api`) at once,
//!   loads the state in the background, stops within a deadline.
//! - `http`: the HTTP(S) server with the edge's connection limits (header-read timeout,
//!   connection cap, open files limit).
//! - `load`: opening the log and the state, the first index, the processor's workers, the
//!   background tasks (read-ahead of the state files, log retention).
//! - [`replay`]: the state rebuilt from the log into a new data directory beside a running
//!   node.
//! - [`error`]: this crate's error type.

pub mod config;
pub mod error;
mod http;
mod load;
pub mod replay;
pub mod running;

pub use config::{ClusterConfig, NodeConfig, Overrides, Settings, TlsFiles};
pub use error::{Error, Result};
pub use marquee_api::guard::AuthMode;
pub use running::{RunningNode, shutdown_signal};
