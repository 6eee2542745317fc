#!/usr/bin/env bash
# The whole test suite: formatting, lints, Rust tests (unit, integration, hostile-code), then
# the SDK tests when their venv exists. Run scripts/ci/setup-*.sh once before (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/bulkhead/target}"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo nextest run --locked --workspace --profile ci
