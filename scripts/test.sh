#!/usr/bin/env bash
# The test command: format, lints, then every test of the workspace. One cargo profile (dev)
# for the build and the tests, so RocksDB's C++ is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
