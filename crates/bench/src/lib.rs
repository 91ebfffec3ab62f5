//! Marquee's benchmark harnesses: the load runs behind `docs/PERFORMANCE.md` that are not
//! criterion micro-benchmarks (those are in `benches/`). Each has a driver in `src/bin/`
//! (`cargo run -p marquee-bench --bin catch_up -- --help`); the workspace's integration tests
//! run each at a small size. Not part of the `marquee` binary.
//!
//! - [`catch_up`]: processor catch-up from a filled log, beside the raw RocksDB ceiling; on
//!   one node or several that split the partitions.
//! - [`ingest`]: durable HTTP ingest of NDJSON batches on a node started in-process.
//! - [`freshness`]: from a new user's first event's 202 to the first list that reflects it.
//! - [`index`]: the HNSW graph as configured here against exact search and `hnswlib`, on a
//!   state's vectors.
//! - [`shared`]: a node started in-process, quantiles, metric sums, loading a world over HTTP.

pub mod catch_up;
pub mod freshness;
pub mod index;
pub mod ingest;
pub mod shared;
