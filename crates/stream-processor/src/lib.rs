//! The stream processor: consumes the event log and maintains the model state, and the read side
//! of the same model; the data directory they live in, and its backups. No HTTP, no JSON wire
//! types: those are `marquee_api`'s.
//!
//! - [`backup`]: online backups (RocksDB checkpoints of the state and the log) and restore.
//! - [`data_dir`]: [`DataDir`], the layout of a node's data directory, and its secret keys.
//! - [`catalogue`]: item metadata writes, shared by the API and the evaluator.
//! - [`engine`]: [`Engine`], the processor and query engine wired over one log and state.
//! - [`experiments`]: A/B tests and feature flags — variants of the ranking, sticky assignment,
//!   recommendation ids, attribution of impressions and outcomes, and the results' statistics.
//! - [`journal`]: the data directory's append-only journals of erasures and key revocations,
//!   which outlive any one state (restore, replay, rebuild).
//! - [`factors`]: the item vectors — a factorisation of the co-occurrence, solved now and then
//!   and folded into event by event.
//! - [`model`]: the online model — event weights, sequential item co-occurrence, item and user
//!   embeddings, content labels, popularity. Written down in its module docs.
//! - [`processor`]: the consumer loop. Reads every partition from its committed offset, applies
//!   events once (de-duplicating by `event_id`), commits state and offsets in one RocksDB batch,
//!   then publishes the new vectors to the in-memory table and the index.
//! - [`query`]: recommendations, similar items and trending, over the same state.
//! - [`rules`]: the catalogue's business rules — the custom properties' schema, filter
//!   expressions and saved filters, campaigns (boosts and pins), deleted items, page tokens.
//! - [`search`]: [`SearchIndex`], catalogue search on tantivy — typo-tolerant, prefix-matching,
//!   re-ranked by the model for a viewer; a read model of the catalogue in `<data-dir>/search`.
//! - [`trending`]: the periodically refreshed list of the most popular items.
//! - [`strategy`]: [`Strategy`], which method produced a list.
//! - [`telemetry`]: the Prometheus metrics of the processor, queries, index and storage,
//!   registered once.
//! - [`error`]: this crate's error type.

pub mod backup;
pub mod catalogue;
pub mod data_dir;
pub mod engine;
pub mod error;
pub mod experiments;
pub mod factors;
pub mod journal;
pub mod model;
pub mod processor;
pub mod query;
pub mod rules;
pub mod search;
pub mod strategy;
pub mod telemetry;
pub mod trending;

pub use data_dir::DataDir;
pub use engine::Engine;
pub use error::{Error, Result};
pub use experiments::Experiments;
pub use model::ModelConfig;
pub use processor::{
    Erasure, Processor, ProcessorConfig, ProcessorHandle, erasure_hash, erasure_subject,
};
pub use query::{
    ListOptions, QueryEngine, Ranking, RecentEvent, Recommendation, RecommendationQuery, Sources,
    UserSummary,
};
pub use rules::Rules;
pub use search::SearchIndex;
pub use strategy::Strategy;
pub use telemetry::Metrics;
pub use trending::Trending;
