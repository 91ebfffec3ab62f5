#!/usr/bin/env bash
# Sets up a fresh machine and runs the demo: a generated catalogue, a live stream of synthetic
# viewers, and the API on http://127.0.0.1:8080. Extra arguments go to `marquee demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked
exec ./target/release/marquee demo "$@"
