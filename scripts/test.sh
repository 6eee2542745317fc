#!/usr/bin/env bash
# The whole test suite: formatting, lints, Rust tests (unit, integration, hostile-code), then
# the E2B SDK compatibility tests (tests/sdk) against a real `bulkhead serve`. Run
# scripts/ci/setup-*.sh once before (see README); a missing SDK venv is an error, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/bulkhead/target}"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo nextest run --locked --workspace --profile ci

# The SDK suite drives the debug binary built here (one `bulkhead serve` per session).
cargo build --locked -p bulkhead
# Listing gate (about 20 s): `ls -l` of 1,000 files on a mount within 3x a direct listing.
/opt/bulkhead-venv/bin/python bench/s3fs/gate.py --bulkhead "$CARGO_TARGET_DIR/debug/bulkhead"
sdk_venv="${BULKHEAD_SDK_VENV:-/opt/bulkhead-sdk-venv}"
if [ ! -x "$sdk_venv/bin/python" ]; then
  echo "test.sh: $sdk_venv is missing: run scripts/ci/setup-30-sdk.sh" >&2
  exit 1
fi
export BULKHEAD_BIN="$CARGO_TARGET_DIR/debug/bulkhead"
# The pinned release through the one-port URLs: the whole suite.
"$sdk_venv/bin/python" -m pytest tests/sdk
# The version matrix (docs/COMPATIBILITY.md): the `matrix` tests against every release, the
# domain pass (E2B_DOMAIN over TLS, in a network namespace of its own: tests/sdk/netns.sh)
# for each and the one-port pass for those that know E2B_API_URL.
domain=(tests/sdk/netns.sh env BULKHEAD_SDK_DOMAIN=sandboxes.bulkhead.test)
v245="${BULKHEAD_SDK_2_45_VENV:-/opt/bulkhead-sdk-2.45-venv}"
v22="${BULKHEAD_SDK_2_2_VENV:-/opt/bulkhead-sdk-2.2-venv}"
js_old="${BULKHEAD_SDK_JS_OLD:-/opt/bulkhead-sdk-js-2.2}"
for venv in "$v245" "$v22"; do
  if [ ! -x "$venv/bin/python" ]; then
    echo "test.sh: $venv is missing: run scripts/ci/setup-30-sdk.sh" >&2
    exit 1
  fi
done
"${domain[@]}" "$sdk_venv/bin/python" -m pytest tests/sdk -m matrix
"$v245/bin/python" -m pytest tests/sdk -m matrix
"${domain[@]}" "$v245/bin/python" -m pytest tests/sdk -m matrix
# e2b 2.2.0 (and JS 2.2.10) know no E2B_API_URL: the domain is their only way.
"${domain[@]}" "$v22/bin/python" -m pytest tests/sdk -m matrix
"${domain[@]}" env BULKHEAD_SDK_JS="$js_old" "$sdk_venv/bin/python" -m pytest \
  tests/sdk/test_js.py::test_js_sdk_create_run_files_kill
