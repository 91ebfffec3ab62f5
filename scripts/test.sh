#!/usr/bin/env bash
# The test command: prerequisites, format, lints, then every test of the workspace, in one cargo
# profile (dev) so that RocksDB's C++ is compiled once, then the TypeScript SDK's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build and test prerequisites (libclang, a C++ compiler, Prometheus); does nothing when present.
./scripts/setup.sh
cargo fmt --all -- --check
# RocksDB's C++ is compiled by librocksdb-sys's build script, and cargo runs that script once per
# set of build-time (host) dependencies: those depend on which packages a command selects, so
# `-p marquee --bin marquee` (the demo's build), `--workspace --all-targets` and
# `-p marquee-ingest` each compile RocksDB again (about 13 CPU-minutes each). This script
# compiles it once: every command but the last clippy selects the whole workspace, and that
# clippy, which only type-checks, points the script at a library directory instead, which makes
# it skip the C++ (in a unit of its own, so the workspace's is not disturbed).
cargo clippy --workspace --all-targets --locked -- -D warnings
# The log crate without the `fluvio` feature (an embedded-only build) stays clean too.
ROCKSDB_LIB_DIR="${TMPDIR:-/tmp}/marquee-clippy-needs-no-rocksdb-lib" \
  cargo clippy -p marquee-ingest --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
# The documentation examples (the Rust SDK's), over the whole workspace so that features
# resolve as in the build above and nothing is compiled again.
cargo test --workspace --doc --locked
# The TypeScript SDK: type-checked build, then its tests (Node.js and headless Chromium) against
# the `marquee` binary the cargo tests just built.
(
  cd sdks/typescript
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)
