#!/usr/bin/env bash
# The test command: prerequisites, format, lints, then every test of the workspace, in one cargo
# profile (dev) so that RocksDB's C++ is compiled once, then the TypeScript SDK's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build and test prerequisites (libclang, a C++ compiler, Prometheus); does nothing when present.
./scripts/setup.sh
cargo fmt --all -- --check
# The demo's build first (the binary alone): after this script, `scripts/demo.sh` starts at once.
./scripts/build.sh
# Clippy after the build: it reads the build script output of librocksdb-sys that the build
# left (RocksDB's C++ compiled once). Pointing the script at another library directory for
# clippy alone, as this script once did, changed the script's environment, and the test build
# then compiled RocksDB again: on every run, about 13 CPU-minutes.
cargo clippy --workspace --all-targets --locked -- -D warnings
# The log crate without the `fluvio` feature (an embedded-only build) stays clean too.
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
