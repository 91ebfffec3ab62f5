#!/usr/bin/env bash
# Change-log lag between nodes that split the partitions (docs/PERFORMANCE.md): two nodes on
# one Fluvio cluster, partitions 0-1 and 2-3, on 127.0.0.1. Each trial sends one event on a new
# item to node 1 and polls both nodes' GET /v1/items/{item} until it counts the event: on the
# node that owns the user it is the node's own freshness, on the other it is the time the change
# took through the change log as well. Background events (MARQUEE_BENCH_RATE per second, 500 by
# default) keep both nodes applying while it measures.
#
#   MARQUEE_FLUVIO_ENDPOINT=127.0.0.1:9003 scripts/bench/change_lag.sh [TRIALS]   (default 50)
#
# Polls every 2 ms with curl, so figures are rounded up by a few ms. Everything runs on loopback
# and stops by itself; the nodes' data directories are temporary.
set -euo pipefail
cd "$(dirname "$0")/../.."
endpoint=${MARQUEE_FLUVIO_ENDPOINT:?set MARQUEE_FLUVIO_ENDPOINT=HOST:PORT of a running Fluvio cluster}
trials=${1:-50}
rate=${MARQUEE_BENCH_RATE:-500}
ports=(18581 18582)
stamp=$(date +%s%N)
topic="marquee-lag-$stamp"
data=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

cargo build --profile dev --locked --bin marquee >&2
bin=target/debug/marquee
owned=("0-1" "2-3")
for node in 0 1; do
  other=$((1 - node))
  cat > "$data/node$node.toml" <<EOF
[cluster]
partitions = "${owned[$node]}"
changes_topic = "$topic-changes"
peers = [{ address = "http://127.0.0.1:${ports[$other]}", partitions = "${owned[$other]}" }]
EOF
  "$bin" serve --auth off --config "$data/node$node.toml" --data-dir "$data/node$node" \
    --listen "127.0.0.1:${ports[$node]}" --log fluvio --fluvio-endpoint "$endpoint" \
    --fluvio-topic "$topic" --partitions 4 > "$data/node$node.log" 2>&1 &
  pids+=($!)
done
for port in "${ports[@]}"; do
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/readyz" > /dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/readyz" > /dev/null || { echo "a node did not start" >&2; cat "$data"/node*.log >&2; exit 1; }
done

# Background load: `rate` events per second in batches of rate/10, to node 2.
(
  batch=$((rate / 10))
  i=0
  while true; do
    body=""
    for _ in $(seq "$batch"); do
      i=$((i + 1))
      body+="{\"user_id\":\"bg$((i % 5000))\",\"item_id\":\"bgm$((i % 2000))\",\"kind\":\"view\"}"$'\n'
    done
    curl -fs -X POST -H 'content-type: application/x-ndjson' --data-binary "$body" \
      "http://127.0.0.1:${ports[1]}/v1/events" > /dev/null || true
    sleep 0.1
  done
) &
pids+=($!)
sleep 2

now_ms() { echo $(($(date +%s%N) / 1000000)); }
own=()
other=()
for trial in $(seq "$trials"); do
  item="lag-$stamp-$trial"
  sent=$(now_ms)
  curl -fs -X POST -H 'content-type: application/json' \
    --data "{\"user_id\":\"lag-user-$trial\",\"item_id\":\"$item\",\"kind\":\"view\"}" \
    "http://127.0.0.1:${ports[0]}/v1/events" > /dev/null
  seen=("" "")
  deadline=$((sent + 30000))
  while [ -z "${seen[0]}" ] || [ -z "${seen[1]}" ]; do
    for node in 0 1; do
      if [ -z "${seen[$node]}" ] && curl -fs "http://127.0.0.1:${ports[$node]}/v1/items/$item" \
        | grep -q '"event_count":1'; then
        seen[$node]=$(($(now_ms) - sent))
      fi
    done
    [ "$(now_ms)" -lt "$deadline" ] || { echo "trial $trial: not seen in 30 s" >&2; exit 1; }
    sleep 0.002
  done
  # The user's partition decides which node owns it; the other saw it through the change log.
  owner=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ports[0]}/v1/users/lag-user-$trial")
  if [ "$owner" = 200 ]; then own+=("${seen[0]}"); other+=("${seen[1]}"); else own+=("${seen[1]}"); other+=("${seen[0]}"); fi
done

summary() {
  sort -n | awk '{ v[NR] = $1 } END {
    printf "p50 %d ms, p90 %d ms, max %d ms (%d trials)\n", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.9 + 0.5)], v[NR], NR }'
}
echo "the user's node:   $(printf '%s\n' "${own[@]}" | summary)"
echo "the other node:    $(printf '%s\n' "${other[@]}" | summary)"
for port in "${ports[@]}"; do
  curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^marquee_item_changes_(total|lag_records|outbox_records)' | sed "s/^/node :$port /"
done
