#!/usr/bin/env bash
# Sets up a fresh machine and runs the demo: a generated catalogue, a live stream of synthetic
# viewers, and the API on http://127.0.0.1:8080. Extra arguments go to `marquee demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The same (dev) profile as the tests: RocksDB's C++ is compiled once for both README commands.
# Dependencies are optimised in it (see Cargo.toml).
cargo build --locked
exec ./target/debug/marquee demo "$@"
