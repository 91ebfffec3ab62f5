#!/usr/bin/env bash
# Intake benchmark (docs/PERFORMANCE.md): `marquee intake --file --once` of EVENTS events into a
# node on 127.0.0.1, with the default batch (500) and with 5,000, alternated twice. Each run
# starts from an empty progress file (the node appends every event again; its processor applies
# each id once). Everything runs on loopback and stops by itself. MARQUEE_BIN=PATH runs that
# binary instead of building one.
#
#   scripts/bench/intake.sh [EVENTS]   (default: 200000)
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-200000}
port=${MARQUEE_BENCH_PORT:-18482}
cargo build --locked --workspace --all-targets
target_dir=${CARGO_TARGET_DIR:-target}
marquee=${MARQUEE_BIN:-$target_dir/debug/marquee}
work=$(mktemp -d)
trap 'kill "$node" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$events" "$work/events.ndjson" <<'PY'
import json, sys
count, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as out:
    for n in range(count):
        out.write(json.dumps({"event_id": f"b-{n}", "user_id": f"u{n % 5000}",
                              "item_id": f"m{(n * 7) % 3000}", "kind": "watch", "value": 0.5,
                              "timestamp": 1_700_000_000_000 + n}) + "\n")
PY
MARQUEE_LOG=warn "$marquee" serve --auth off --data-dir "$work/data" --listen "127.0.0.1:$port" >/dev/null &
node=$!
for _ in $(seq 1 600); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
for batch in 500 5000 500 5000; do
  rm -f "$work/events.ndjson.intake-progress"
  start=$(date +%s.%N)
  "$marquee" intake --file "$work/events.ndjson" --url "http://127.0.0.1:$port" --once \
    --batch "$batch" 2>/dev/null
  end=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'batch {sys.argv[3]}: {int(sys.argv[4])} events in {s:.2f} s, {int(sys.argv[4])/s:,.0f} events/s')" \
    "$start" "$end" "$batch" "$events"
done
