#!/usr/bin/env bash
# Installs the build and test prerequisites on a Debian machine: RocksDB's bindings need
# libclang, its C++ sources need a C++ compiler, the observability test needs Prometheus, the
# TypeScript SDK's browser test needs Chromium (and Node.js 20+, checked), the image test
# podman and runc, the Python SDK's tests Python 3 with venv.
# Idempotent; does nothing when everything is present.
set -euo pipefail
missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# Prometheus and promtool: the observability test runs the shipped configuration, alert rules
# and dashboard queries against a real Prometheus.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Chromium: the TypeScript SDK's browser test drives it headless (through playwright-core).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Podman and Debian's runc: the image test builds the container image and runs it.
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/sbin/runc ] || missing+=(runc)
# Python 3 with venv: the Python SDK's tests run in a virtual environment of their own.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Node.js 20 or later and npm: the TypeScript SDK is built and tested with them (Debian's own
# nodejs is older; https://nodejs.org or NodeSource give a current one).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js 20+ with npm not found (have: $(node --version 2>/dev/null || echo none)): install it and run this again" >&2
  exit 1
fi
command -v cargo >/dev/null 2>&1 || {
  echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
}
