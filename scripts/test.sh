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
BULKHEAD_BIN="$CARGO_TARGET_DIR/debug/bulkhead" "$sdk_venv/bin/python" -m pytest tests/sdk
