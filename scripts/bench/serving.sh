#!/usr/bin/env bash
# Serving benchmark (docs/PERFORMANCE.md): a node on 127.0.0.1 filled through the real ingest
# path with a synthetic catalogue and event stream, then `wrk` on
# GET /v1/users/{random user}/recommendations?count=10 and on GET /healthz in the same run;
# then the time a restart on that state takes to answer /readyz.
#
#   scripts/bench/serving.sh [USERS] [ITEMS] [EVENTS] [CONNECTIONS] [SECONDS]
#   (defaults: 1000000 100000 5000000 64 30)
#
# Then 10,000 concurrent viewers: `oha` holds MARQUEE_BENCH_OPEN_CONNECTIONS (10000) keep-alive
# connections open and sends MARQUEE_BENCH_OPEN_RATE (5000) requests/s over them in an open loop
# (each connection asks every 2 s), for MARQUEE_BENCH_OPEN_SECONDS (60), latencies corrected for
# coordinated omission. The script raises its open-file limit for that (the node and oha each
# hold one descriptor per connection); it stops with a message if the hard limit is too low.
#
# Installs Debian's wrk when absent. Everything runs on loopback and stops by itself. The data
# directory is temporary, unless MARQUEE_BENCH_DATA names one: it is then kept, and a later run
# with the same variable serves the state already in it instead of loading it again (the
# arguments must match the first run's). Measuring starts once RocksDB's compactions of the
# loaded state have settled (at most 10 minutes). Results go to standard output and to
# target/bench/serving.txt. MARQUEE_BIN=PATH runs that binary instead of building one.
# MARQUEE_BENCH_MAX_HISTORY=N gives users a heavy-tailed activity (`marquee generate
# --max-history N`): for example `scripts/bench/serving.sh 100000 100000 11400000` with 5000,
# histories of about 1 to 5,000 events. MARQUEE_BENCH_MOVIELENS=DIR loads a MovieLens release
# instead (`marquee import movielens DIR`, through the same API; USERS, ITEMS and EVENTS are then
# ignored) and draws the users uniformly from its own; the open-loop run is then skipped (it is
# a target of the 1M-user state). MARQUEE_BENCH_QUERY=STRING is appended to every
# recommendation URL (URL-encoded parameters, e.g. `&filter=year%20%3D%201990`);
# MARQUEE_BENCH_OPEN_CONNECTIONS=0 skips the open-loop run.
set -euo pipefail
cd "$(dirname "$0")/../.."
users=${1:-1000000}
items=${2:-100000}
events=${3:-5000000}
connections=${4:-64}
seconds=${5:-30}
port=${MARQUEE_BENCH_PORT:-18480}
max_history=${MARQUEE_BENCH_MAX_HISTORY:-0}
base="http://127.0.0.1:$port"
movielens=${MARQUEE_BENCH_MOVIELENS:-}
extra_query=${MARQUEE_BENCH_QUERY:-}
if [ -n "$movielens" ]; then
  # MovieLens user ids are 1..N, N the number of distinct users of ratings.csv.
  users=$(tail -n +2 "$movielens/ratings.csv" | cut -d, -f1 | sort -u | wc -l)
  user_first=1
  user_prefix=""
  items=$(($(wc -l <"$movielens/movies.csv") - 1))
  events=$(($(wc -l <"$movielens/ratings.csv") - 1))
else
  user_first=0
  user_prefix=u
fi

open_connections=${MARQUEE_BENCH_OPEN_CONNECTIONS:-10000}
open_rate=${MARQUEE_BENCH_OPEN_RATE:-5000}
open_seconds=${MARQUEE_BENCH_OPEN_SECONDS:-60}
descriptors=$((open_connections + 1024))
hard_limit=$(ulimit -Hn)
if [ "$hard_limit" != unlimited ] && [ "$hard_limit" -lt "$descriptors" ]; then
  echo "serving.sh: the hard limit on open files is $hard_limit; $open_connections connections" \
    "need $descriptors (raise it in /etc/security/limits.conf, or set" \
    "MARQUEE_BENCH_OPEN_CONNECTIONS lower)" >&2
  exit 1
fi
ulimit -n "$descriptors"

if [ -z "$movielens" ] && [ "$open_connections" != 0 ] && ! command -v oha >/dev/null 2>&1; then
  cargo install --locked oha
fi
if ! command -v wrk >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
# MARQUEE_BIN runs another build of the binary on the same harness (builds compared in one
# sitting, alternated); by default the one built here.
if [ -n "${MARQUEE_BIN:-}" ]; then
  marquee=$MARQUEE_BIN
else
  cargo build --locked -p marquee --bin marquee
  marquee=./target/debug/marquee
fi
work=$(mktemp -d)
data=${MARQUEE_BENCH_DATA:-$work/data}
reuse=false
if [ -n "${MARQUEE_BENCH_DATA:-}" ] && [ -d "$data/state" ]; then reuse=true; fi
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$marquee" serve --auth off --data-dir "$data" --listen "127.0.0.1:$port" --log-format json \
  2>"$work/node.log" &
node_pid=$!
until curl -sf "$base/readyz" >/dev/null; do sleep 0.2; done

# Catalogue and events through the HTTP ingest path, 1,000 per request, 4 requests at a time.
started=$(date +%s.%N)
if ! $reuse && [ -n "$movielens" ]; then
  "$marquee" import movielens "$movielens" --url "$base" 2>"$work/import.log"
elif ! $reuse; then
"$marquee" generate --users "$users" --items "$items" --catalogue \
  | split -l 1000 - "$work/items-"
for file in "$work"/items-*; do
  # NDJSON lines to one JSON array.
  { printf '['; paste -sd, "$file"; printf ']'; } \
    | curl -sf -o /dev/null -H 'content-type: application/json' --data-binary @- "$base/v1/items"
done
"$marquee" generate --users "$users" --items "$items" --events "$events" --max-history "$max_history" \
  | split -l 1000 - "$work/events-"
ls "$work"/events-* | xargs -P 4 -I{} curl -sf -o /dev/null \
  -H 'content-type: application/x-ndjson' --data-binary @{} "$base/v1/events"
rm -f "$work"/events-*
fi
until [ "$(curl -sf "$base/readyz" | grep -o '"processor_lag_events":[0-9]*' | cut -d: -f2)" = "0" ]; do
  sleep 1
done
loaded=$(date +%s.%N)
# Steady state: a freshly loaded state is compacted for minutes after the processor caught up
# (RocksDB rewrites the merge operands and de-duplication keys of millions of events), which
# takes a core from the node. Wait, at most 10 minutes, until RocksDB estimates nothing is left
# to compact in the log and the state.
pending_compaction() {
  curl -sf "$base/metrics" | awk '/^marquee_rocksdb_pending_compaction_bytes/ { sum += $2 } END { print sum + 0 }'
}
settle_deadline=$(( $(date +%s) + 600 ))
while [ "$(pending_compaction)" != 0 ] && [ "$(date +%s)" -lt "$settle_deadline" ]; do
  sleep 2
done
settled=$(date +%s.%N)

cat >"$work/users.lua" <<LUA
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/users/$user_prefix" .. math.random($user_first, $users + $user_first - 1) .. "/recommendations?count=10$extra_query")
end
LUA
mkdir -p target/bench
{
  echo "serving benchmark $(date -u +%F) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo "state: ${movielens:+MovieLens $movielens: }$users users, $items items, $events events, $($reuse && echo "reused from $data, caught up" || echo "loaded and applied") in $(echo "$loaded - $started" | bc) s"
  echo "compactions settled $(echo "$settled - $loaded" | bc) s later (pending compaction bytes: $(pending_compaction))"
  # Measuring does not wait for the index: a rebuild may be under way (at a lower priority).
  echo "index at the start: $(curl -sf "$base/metrics" | awk '/^marquee_index_(items|side_set_items|rebuilds_total|graph_age_seconds) / { printf "%s %s  ", $1, $2 }')"
  echo "== recommendations${extra_query:+ ($extra_query)}, $connections connections, ${seconds}s"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/users.lua" "$base"
  echo "== /healthz, $connections connections, ${seconds}s"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency "$base/healthz"
  echo "== node: RSS $(ps -o rss= -p "$node_pid" | xargs) KiB, data $(du -sh "$data" | cut -f1)"
  if [ -z "$movielens" ] && [ "$open_connections" != 0 ]; then
  echo "== $open_connections open connections, $open_rate requests/s in an open loop, ${open_seconds}s"
  # Users drawn uniformly by oha's URL generator: the URL is a regular expression (so `.` and
  # `?` in classes), u1 .. u999999 for a million users.
  # -w: requests still in flight when the time is up are waited for, not counted as errors.
  oha --no-tui -c "$open_connections" -q "$open_rate" -z "${open_seconds}s" --latency-correction -w \
    --rand-regex-url "http://127[.]0[.]0[.]1:$port/v1/users/u[1-9][0-9]{0,$(( ${#users} - 2 ))}/recommendations[?]count=10"
  fi
  echo "== node after it: RSS $(ps -o rss= -p "$node_pid" | xargs) KiB"
  echo "index at the end: $(curl -sf "$base/metrics" | awk '/^marquee_index_(items|side_set_items|rebuilds_total|graph_age_seconds) / { printf "%s %s  ", $1, $2 }')"
} | tee target/bench/serving.txt
# Restart: a clean stop (SIGTERM), then a new process on the same state, timed until /readyz
# answers 200 (state loaded, index built). Outside the pipe above: `node_pid` must change here.
kill "$node_pid"
wait "$node_pid" 2>/dev/null || true
restart_started=$(date +%s.%N)
"$marquee" serve --auth off --data-dir "$data" --listen "127.0.0.1:$port" --log-format json \
  2>>"$work/node.log" &
node_pid=$!
until curl -sf "$base/readyz" >/dev/null; do sleep 0.1; done
echo "== restart to /readyz: $(echo "$(date +%s.%N) - $restart_started" | bc) s" \
  | tee -a target/bench/serving.txt
# The restart's phases, from the node's log: opening RocksDB and loading the items, then the
# index (loaded from the graph saved at the clean stop, or built).
grep -E '"(state loaded|index rebuilt|index loaded)"' "$work/node.log" | tail -2 \
  | tee -a target/bench/serving.txt
