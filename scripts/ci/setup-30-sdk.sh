#!/usr/bin/env bash
# The official Python SDK (pinned) for the SDK compatibility tests, in its own venv outside
# the checkout so it cannot disturb other Python tools. Idempotent.
set -euo pipefail
venv="${BULKHEAD_SDK_VENV:-/opt/bulkhead-sdk-venv}"
e2b_version="2.63.0"
if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('e2b') != '$e2b_version')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "e2b==$e2b_version"
