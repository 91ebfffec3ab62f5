#!/usr/bin/env bash
# Sets up a fresh machine and runs the demo: a generated catalogue, a live stream of synthetic
# viewers, and the API on http://127.0.0.1:8080. Extra arguments go to `marquee demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The binary alone, in the one (dev) profile: the same command the test script builds first, so
# either script run after the other finds it built (docs/PERFORMANCE-JOURNAL.md, "Builds").
./scripts/build.sh
exec ./target/debug/marquee demo "$@"
