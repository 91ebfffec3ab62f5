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
# Clippy only type-checks: nothing is linked, so it needs RocksDB's bindings but not its C++
# library. Pointing librocksdb-sys at a library directory makes its build script skip the C++
# build (about 13 CPU-minutes) for this check; the test build below compiles and links it.
ROCKSDB_LIB_DIR="${TMPDIR:-/tmp}/marquee-clippy-needs-no-rocksdb-lib" \
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
