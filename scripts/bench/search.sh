#!/usr/bin/env bash
# Search benchmark (docs/PERFORMANCE.md): the search index's build time, memory and per-query
# cost without HTTP (`search_cost`), then a node on 127.0.0.1 with a synthetic catalogue loaded
# through POST /v1/items and `wrk` on GET /v1/search (count 20, with facets) and on
# GET /v1/search/suggest, the queries drawn from the catalogue's titles with one random typo
# each (suggestions: cut inside the last word, as if still typed).
#
#   scripts/bench/search.sh [ITEMS] [CONNECTIONS] [SECONDS]   (defaults: 100000 64 30)
#
# Installs Debian's wrk when absent. Everything runs on loopback and stops by itself. Results go
# to standard output and to target/bench/search.txt. MARQUEE_BIN=PATH runs that binary instead
# of building one.
set -euo pipefail
cd "$(dirname "$0")/../.."
items=${1:-100000}
connections=${2:-64}
seconds=${3:-30}
port=${MARQUEE_BENCH_PORT:-18481}
base="http://127.0.0.1:$port"

if ! command -v wrk >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
# The workspace's one build (the tests' features): no second compile of RocksDB.
cargo build --locked --workspace --all-targets
target_dir=${CARGO_TARGET_DIR:-target}
marquee=${MARQUEE_BIN:-$target_dir/debug/marquee}
work=$(mktemp -d)
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p target/bench
{
  echo "search benchmark $(date -u +%F) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo "== without HTTP, one thread"
  "$target_dir/debug/search_cost" --items "$items" --queries 5000 --write-queries "$work/queries"
} | tee target/bench/search.txt

"$marquee" serve --auth off --data-dir "$work/data" --listen "127.0.0.1:$port" --log-format json \
  2>"$work/node.log" &
node_pid=$!
until curl -sf "$base/readyz" >/dev/null; do sleep 0.2; done
rss_empty=$(ps -o rss= -p "$node_pid" | xargs)
started=$(date +%s.%N)
"$marquee" generate --items "$items" --catalogue | split -l 1000 - "$work/items-"
for file in "$work"/items-*; do
  { printf '['; paste -sd, "$file"; printf ']'; } \
    | curl -sf -o /dev/null -H 'content-type: application/json' --data-binary @- "$base/v1/items"
done
loaded=$(date +%s.%N)

# Each wrk thread reads the query file and asks for a random line's query.
lua() {
  cat <<LUA
local queries = {}
for line in io.lines("$1") do queries[#queries + 1] = line end
math.randomseed(7)
request = function()
  return wrk.format("GET", "$2" .. queries[math.random(#queries)])
end
LUA
}
lua "$work/queries/search.txt" "/v1/search?count=20&q=" >"$work/search.lua"
lua "$work/queries/suggest.txt" "/v1/search/suggest?q=" >"$work/suggest.lua"
{
  echo "== node: $items items upserted in $(echo "$loaded - $started" | bc) s (1,000 a request, each committed to the search index)"
  echo "== /v1/search, $connections connections, ${seconds}s"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/search.lua" "$base"
  echo "== /v1/search/suggest, $connections connections, ${seconds}s"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/suggest.lua" "$base"
  echo "== node: RSS before the catalogue $rss_empty KiB, after the load $(ps -o rss= -p "$node_pid" | xargs) KiB; search index $(du -sh "$work/data/search" | cut -f1) on disk"
  curl -sf "$base/metrics" | grep -E '^marquee_search_(documents|empty_total)'
} | tee -a target/bench/search.txt
# The build at start: the index deleted, the node restarted on the same catalogue.
kill "$node_pid"
wait "$node_pid" 2>/dev/null || true
rm -rf "$work/data/search"
"$marquee" serve --auth off --data-dir "$work/data" --listen "127.0.0.1:$port" --log-format json \
  2>>"$work/node.log" &
node_pid=$!
until curl -sf "$base/readyz" >/dev/null; do sleep 0.1; done
grep '"search index built from the catalogue"' "$work/node.log" | tail -1 | tee -a target/bench/search.txt
