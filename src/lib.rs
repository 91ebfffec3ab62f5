//! The `marquee` binary's library: what its commands need beyond the workspace crates.
//!
//! - [`config`]: layered configuration — defaults, then a TOML file, then `MARQUEE_*`
//!   environment variables, then flags — validated into a [`NodeConfig`](marquee_api::NodeConfig).
//! - [`synthetic`]: the deterministic synthetic catalogue and viewer stream (demo, `generate`,
//!   tests and benchmarks), with its ground truth of taste clusters.
//! - [`movielens`]: readers for the MovieLens layouts (ml-latest-small CSV, ml-100k, ml-1m/10m).
//! - [`eval`]: `marquee eval`, the offline evaluator (Protocols T and P) over the production
//!   processor and query path, with its reference baselines.
//! - [`logging`]: log lines (JSON or text) and the optional OTLP trace export.
//! - [`bench`]: load harnesses for the benchmarks that are not criterion micro-benchmarks
//!   (processor catch-up, HTTP ingest, freshness).
//! - [`index_bench`]: the index benchmark: `hnsw_rs` as configured here against exact search
//!   on a state's vectors, and the data for the same run of `hnswlib`.
//! - [`client`]: a small HTTP client that sends items and events to a running node, with retries
//!   and progress.

pub mod backfill;
pub mod bench;
pub mod client;
pub mod config;
pub mod eval;
pub mod index_bench;
pub mod logging;
pub mod movielens;
pub mod replay;
pub mod synthetic;
