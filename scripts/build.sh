#!/usr/bin/env bash
# Builds the `marquee` binary: the build the demo needs, and the first step of the tests, so
# that the two README commands share it. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p marquee --bin marquee
