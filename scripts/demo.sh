#!/usr/bin/env bash
# Sets up a fresh machine and runs the demo: a generated catalogue, a live stream of synthetic
# viewers, and the API on http://127.0.0.1:8080. Extra arguments go to `marquee demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The binary alone, in the one (dev) profile, and no test binary: the tests build the same
# binary on the same dependency artifacts, RocksDB's included, so either script run after the
# other finds it built (docs/PERFORMANCE-JOURNAL.md, "Build: RocksDB's C++ once per test run").
./scripts/build.sh
exec "${CARGO_TARGET_DIR:-target}/debug/marquee" demo "$@"
