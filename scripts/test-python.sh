#!/usr/bin/env bash
# The Python SDK's tests (pytest) against the real `marquee` binary, in a virtual environment
# this script creates and keeps in target/python-venv. MARQUEE_BIN names the binary (the
# debug build of the workspace by default).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="target/python-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "sdks/python[test]"
# Format, lints and types (mypy --strict: the package ships py.typed).
(
  cd sdks/python
  "../../$venv/bin/ruff" format --check .
  "../../$venv/bin/ruff" check .
  "../../$venv/bin/mypy"
)
export MARQUEE_BIN="${MARQUEE_BIN:-$(realpath "${CARGO_TARGET_DIR:-target}")/debug/marquee}"
status=0
"$venv/bin/python" -m pytest sdks/python -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test-python.sh: pytest collected no tests" >&2
fi
exit "$status"
