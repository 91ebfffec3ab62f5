#!/usr/bin/env bash
# Index benchmark (docs/PERFORMANCE-JOURNAL.md, "The index"): hnsw_rs as Marquee configures it, exact
# search and hnswlib (PyPI, C++) on the same vectors, the same transformed space, the same
# queries, one thread per query run, over a grid of M and ef, in one run.
#
#   scripts/bench/index.sh DATA_DIR [USERS] [QUERIES]
#   (DATA_DIR: a node's data directory, e.g. the one
#    `MARQUEE_BENCH_DATA=DIR scripts/bench/serving.sh` keeps; defaults 1000000 2000)
#
# Installs hnswlib and numpy into target/bench/venv (Python >= 3.9 with venv; a C++ compiler
# when pip builds hnswlib). Results: standard output and target/bench/index.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
data_dir=${1:?usage: scripts/bench/index.sh DATA_DIR [USERS] [QUERIES]}
users=${2:-1000000}
queries=${3:-2000}
venv=target/bench/venv
mkdir -p target/bench
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null \
  || "$venv/bin/pip" install --quiet hnswlib numpy
cargo build --locked -p marquee-bench --bin index_compare
./target/debug/index_compare --data-dir "$data_dir" --users "$users" \
  --queries "$queries" --out target/bench/index-data --json target/bench/index-rust.json
"$venv/bin/python" scripts/bench/index_hnswlib.py target/bench/index-data \
  target/bench/index-rust.json --json target/bench/index.json
