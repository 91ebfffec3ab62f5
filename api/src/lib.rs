//! The HTTP edge of Marquee and the wiring of a node.
//!
//! - [`node`]: opens the log and the state, loads items, builds the index, starts the processor
//!   and serves HTTP; one [`node::RunningNode`] per process (or per test).
//! - [`routes`]: the axum router — events in, recommendations, similar items, trending,
//!   catalogue, users, health, metrics and the OpenAPI document.
//! - [`backup`]: online backups (RocksDB checkpoints of the state and the log) and restore.
//! - [`decode`]: request bodies (JSON object, JSON array, NDJSON) into validated events and items.
//! - [`error`]: [`ApiError`] and its one exhaustive mapping to HTTP statuses and JSON bodies.
//! - [`guard`]: what every request passes first: size limits, load shedding, API keys and
//!   scopes, per-key rate limits, the request timeout.
//! - [`keys`]: the keys file (hashed API keys and their scopes) that `marquee keys` edits.
//!
//! Invariant: only this crate knows HTTP. A 202 from `POST /v1/events` means the accepted events
//! are durable in the log.

pub mod backup;
pub mod decode;
pub mod error;
pub mod guard;
pub mod keys;
pub mod node;
pub mod routes;

pub use error::ApiError;
pub use node::{ClusterConfig, NodeConfig, RunningNode, TlsFiles};
