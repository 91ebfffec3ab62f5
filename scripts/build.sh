#!/usr/bin/env bash
# Builds the `marquee` binary: the build the demo needs. Honours CARGO_TARGET_DIR. The tests
# build it too, with the whole workspace's features: the two commands share most artifacts,
# but not RocksDB's (scripts/test.sh says why).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p marquee --bin marquee
