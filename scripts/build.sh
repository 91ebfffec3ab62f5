#!/usr/bin/env bash
# Builds the `marquee` binary: the build the demo needs, and no test binary. Honours
# CARGO_TARGET_DIR. The tests build the same binary with the same dependency artifacts
# (RocksDB's included: scripts/test.sh says how), so either README command run after the other
# starts at once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p marquee --bin marquee
