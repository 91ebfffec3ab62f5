#!/usr/bin/env bash
# The container image, built and run for real (docs/DEPLOY.md): the runtime stage of
# deploy/image/Containerfile (`Containerfile.local`) over the `marquee` binary built here and the
# libraries it links, FROM scratch (base images cannot be pulled here), built with podman, then
# run with Debian's runc: ready and healthy, a catalogue item and events in, a recommendation
# out, a clean stop on SIGTERM (exit code 0), and the state kept in the volume across a restart.
#
#   scripts/test-image.sh [MARQUEE_BINARY]     (default: $CARGO_TARGET_DIR/debug/marquee)
#
# Skips with a message when podman is absent, unless MARQUEE_REQUIRE_PODMAN=1 (CI: setup.sh
# installs it). The container shares the host's network namespace and listens on 127.0.0.1 only;
# everything it makes (image, containers, volume) is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-${CARGO_TARGET_DIR:-target}/debug/marquee}
if ! command -v podman >/dev/null 2>&1 || [ ! -x /usr/sbin/runc ]; then
  if [ "${MARQUEE_REQUIRE_PODMAN:-0}" = 1 ]; then
    echo "test-image: podman and /usr/sbin/runc are required (MARQUEE_REQUIRE_PODMAN=1)" >&2
    exit 1
  fi
  echo "test-image: skipped: podman or Debian's runc is absent (apt-get install podman runc)" >&2
  exit 0
fi
[ -x "$binary" ] || { echo "test-image: no binary at $binary (build it first)" >&2; exit 1; }

work=$(mktemp -d)
tag="localhost/marquee-test:$$"
volume="marquee-test-$$"
port=$((20000 + $$ % 10000))
base="http://127.0.0.1:$port"
# runc, cgroupfs and no default ulimits or pids limit: what running a container takes here.
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = []
pids_limit = 0
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"
podman=(podman --runtime /usr/sbin/runc)
cleanup() {
  "${podman[@]}" rm -f -t 0 marquee-test-$$ marquee-test-$$-again >/dev/null 2>&1 || true
  "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
  "${podman[@]}" rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The root filesystem: the binary without its debug info, what it links, a user, /data, /tmp.
rootfs="$work/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp" "$work/owned/data"
objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/marquee"
ldd "$binary" | grep -o '/[^ ]*' | while read -r library; do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done
echo "marquee:x:10001:10001:marquee:/data:/usr/sbin/nologin" >"$rootfs/etc/passwd"
echo "marquee:x:10001:" >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
# The runtime stage tested here is the published one: from USER on, the two files say the same.
runtime() { sed -n '/^USER/,$p' "$1" | grep -v '^#'; }
if ! diff <(runtime deploy/image/Containerfile) <(runtime deploy/image/Containerfile.local) >&2; then
  echo "test-image: Containerfile.local's runtime settings differ from Containerfile's (above)" >&2
  exit 1
fi
cp deploy/image/Containerfile.local "$work/Containerfile"
# Docker's format keeps HEALTHCHECK (the OCI format has no field for it).
"${podman[@]}" build --quiet --format docker -t "$tag" "$work" >/dev/null
echo "test-image: built $tag ($(du -sh "$rootfs" | cut -f1) root filesystem)"
[ "$("${podman[@]}" image inspect --format '{{.Config.User}} {{.Config.StopSignal}}' "$tag")" = "10001 SIGTERM" ]

# A new volume takes the owner of the image's /data (uid 10001). Podman reports, on standard
# error, that without systemd it cannot schedule the health check's timer: the check itself is
# run below by hand.
run() {
  "${podman[@]}" run -d --name "$1" --network host -v "$volume:/data" \
    -e MARQUEE_LISTEN="127.0.0.1:$port" -e MARQUEE_URL="$base" "$tag" >/dev/null 2>"$work/run.err"
  for _ in $(seq 1 300); do
    curl -sf "$base/readyz" >/dev/null && return 0
    [ "$("${podman[@]}" inspect --format '{{.State.Running}}' "$1")" = true ] || break
    sleep 0.2
  done
  echo "test-image: the container did not become ready" >&2
  cat "$work/run.err" >&2
  "${podman[@]}" logs "$1" >&2 || true
  return 1
}
fail() {
  echo "test-image: $*" >&2
  exit 1
}

# Auth is on by default: an admin key, made by the image itself in the volume.
key=$("${podman[@]}" run --rm -v "$volume:/data" "$tag" keys create --scope admin --name image-test \
  2>>"$work/run.err") || fail "marquee keys create failed: $(cat "$work/run.err")"
auth=(-H "authorization: Bearer $key")
run "marquee-test-$$"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/trending")" = 401 ] ||
  fail "a request without a key was not refused"
# The image's own health check (its HEALTHCHECK command, run inside the container).
"${podman[@]}" healthcheck run "marquee-test-$$" 2>>"$work/run.err" || fail "the health check failed on a ready node"
# A catalogue, then events.
curl -sf -XPOST "$base/v1/items" "${auth[@]}" -H 'content-type: application/json' -d '[
  {"item_id": "m1", "title": "One", "genres": ["Drama"]},
  {"item_id": "m2", "title": "Two", "genres": ["Drama"]},
  {"item_id": "m3", "title": "Three", "genres": ["Drama"]}]' >/dev/null ||
  fail "the catalogue was refused"
events='['
for user in $(seq 1 20); do
  events+="{\"user_id\": \"v$user\", \"item_id\": \"m1\", \"kind\": \"like\", \"timestamp\": $((1700000000000 + user * 10))},"
  events+="{\"user_id\": \"v$user\", \"item_id\": \"m2\", \"kind\": \"like\", \"timestamp\": $((1700000000001 + user * 10))},"
done
events+='{"user_id": "viewer", "item_id": "m1", "kind": "rating", "value": 5.0, "timestamp": 1700000001000}]'
[ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$base/v1/events" "${auth[@]}" \
  -H 'content-type: application/json' -d "$events")" = 202 ] || fail "the events were not accepted"
listed=""
for _ in $(seq 1 50); do
  listed=$(curl -sf "${auth[@]}" "$base/v1/users/viewer/recommendations?count=5" | grep -o '"item_id":"[^"]*"' | head -1 || true)
  [ "$listed" = '"item_id":"m2"' ] && break
  sleep 0.1
done
[ "$listed" = '"item_id":"m2"' ] || fail "viewer's first recommendation is $listed, not m2"
echo "test-image: an event in, a recommendation out (m2 after m1)"

# SIGTERM: a clean stop, exit code 0.
"${podman[@]}" stop -t 30 "marquee-test-$$" >/dev/null 2>>"$work/run.err"
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "marquee-test-$$")
[ "$code" = 0 ] || fail "the node exited with $code on SIGTERM"
echo "test-image: stopped on SIGTERM with exit code 0"

# A new container on the same volume has the state.
run "marquee-test-$$-again"
export_body=$(curl -sf "${auth[@]}" "$base/v1/users/viewer") || fail "viewer unknown after the restart"
echo "$export_body" | grep -q '"event_count":1' || fail "viewer's state after the restart: $export_body"
"${podman[@]}" stop -t 30 "marquee-test-$$-again" >/dev/null 2>>"$work/run.err"
echo "test-image: the state kept in the volume across containers"
