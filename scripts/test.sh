#!/usr/bin/env bash
# The test command: prerequisites, format, lints, then every test of the workspace, in one cargo
# profile (dev) so that RocksDB's C++ is compiled once, then the TypeScript SDK's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build and test prerequisites (libclang, a C++ compiler, Prometheus); does nothing when present.
./scripts/setup.sh
cargo fmt --all -- --check
# RocksDB's C++ is compiled by librocksdb-sys's build script, and cargo runs that script once per
# set of build-time (host) dependencies. With the build-override profile of Cargo.toml, the
# demo's build (`scripts/build.sh`, the binary alone), the workspace's clippy, tests and
# doctests share one; the log crate's clippy alone resolves other features, so it points the
# script at a library directory instead, which makes it skip the C++ (about 13 CPU-minutes) for a
# check that links nothing, in a unit of its own that the others do not read.
cargo clippy --workspace --all-targets --locked -- -D warnings
# The log crate without the `fluvio` feature (an embedded-only build) stays clean too.
ROCKSDB_LIB_DIR="${TMPDIR:-/tmp}/marquee-clippy-needs-no-rocksdb-lib" \
  cargo clippy -p marquee-ingest --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
# The API documentation builds with every link resolved.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# The documentation examples (the Rust SDK's), over the whole workspace so that features
# resolve as in the build above and nothing is compiled again.
cargo test --workspace --doc --locked
# The container image, built and run with podman over the binary the tests just built.
./scripts/test-image.sh "${CARGO_TARGET_DIR:-target}/debug/marquee"
# Compose, Kubernetes, CloudFormation and the CI workflows, each through its real validator.
./scripts/check-deploy.sh
# The TypeScript SDK: type-checked build, then its tests (Node.js and headless Chromium) against
# the `marquee` binary the cargo tests just built.
(
  cd sdks/typescript
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)
# The Python SDK: format, lints, types, then its tests against the same binary.
./scripts/test-python.sh
# The Arroyo UDFs: a workspace of their own (Arroyo's plugin pins Arrow 51 and an older chrono).
(
  cd integrations/arroyo
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  cargo test --workspace --all-targets --locked
)
# The viewer app: its committed bundle is the build of its sources (the node embeds it), and
# its browser test against the binary.
(
  cd crates/api/web
  npm ci --no-audit --no-fund --loglevel=error
  npm run check-dist
  npm test
)
