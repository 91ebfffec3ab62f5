#!/usr/bin/env bash
# Sets up a fresh machine and runs the demo: a generated catalogue, a live stream of synthetic
# viewers, and the API on http://127.0.0.1:8080. Extra arguments go to `marquee demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The same (dev) profile and the same targets as the tests (`--all-targets` brings in the
# dev-dependencies, so features unify exactly as in `cargo test --all-targets`): RocksDB's C++
# is compiled once for both README commands. Dependencies are optimised in it (see Cargo.toml).
cargo build --locked --all-targets
exec ./target/debug/marquee demo "$@"
