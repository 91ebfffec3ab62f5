//! The integration tests: real nodes on temporary data directories and ephemeral loopback
//! ports, the real binary where a test needs a process, real RocksDB, Prometheus, Chromium and
//! (when `MARQUEE_FLUVIO_ENDPOINT` names one) Fluvio. One test binary, so RocksDB is linked
//! into one test executable; `cargo test --test integration MODULE::` runs one file's tests.
//!
//! What each module holds is in `docs/ARCHITECTURE.md`, "Tests".

mod access;
mod audit;
mod backfill;
mod backup;
mod benchmarks;
mod cluster;
mod cold_start;
mod common;
mod connections;
mod corrupt_records;
mod crash_safety;
mod encryption;
mod end_to_end;
mod erasure_list;
mod evaluator;
mod event_log;
mod experiments;
mod fuzz_corpus;
mod heavy_user;
mod index_recall;
mod intake;
mod journals;
mod logs_and_traces;
mod made_up_items;
mod movielens_import;
mod observability;
mod oidc;
mod privacy;
mod processor_workers;
mod replay;
mod rules;
mod sdk_rust;
mod search;
