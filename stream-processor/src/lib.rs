//! The stream processor: consumes the event log and maintains the model state, and the read side
//! of the same model.
//!
//! - [`catalogue`]: item metadata writes, shared by the API and the evaluator.
//! - [`engine`]: [`Engine`], the processor and query engine wired over one log and state.
//! - [`model`]: the online model — event weights, sequential item co-occurrence, item and user
//!   embeddings, content labels, popularity. Written down in its module docs.
//! - [`processor`]: the consumer loop. Reads every partition from its committed offset, applies
//!   events once (de-duplicating by `event_id`), commits state and offsets in one RocksDB batch,
//!   then publishes the new vectors to the in-memory table and the index.
//! - [`query`]: recommendations, similar items and trending, over the same state.
//! - [`trending`]: the periodically refreshed list of the most popular items.
//! - [`telemetry`]: every Prometheus metric of Marquee, registered once.
//! - [`error`]: this crate's error type.

pub mod catalogue;
pub mod engine;
pub mod error;
pub mod model;
pub mod processor;
pub mod query;
pub mod telemetry;
pub mod trending;

pub use engine::Engine;
pub use error::{Error, Result};
pub use model::ModelConfig;
pub use processor::{Erasure, Processor, ProcessorConfig, ProcessorHandle, erasure_hash};
pub use query::{QueryEngine, Recommendation, RecommendationQuery, Strategy, UserSummary};
pub use telemetry::Metrics;
pub use trending::Trending;
