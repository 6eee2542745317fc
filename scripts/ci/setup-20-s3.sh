#!/usr/bin/env bash
# What the S3 filesystem tests and benchmark need, outside the checkout (idempotent, no stdin):
# - a Python venv with moto_server (the S3 server the tests run against) and boto3;
# - pjdfstest (POSIX conformance suite), installed once into a cache dir;
# - s3fs and rclone (benchmark peers) come from setup-00-apt.sh.
set -euo pipefail
VENV="${BULKHEAD_VENV:-/opt/bulkhead-venv}"
TOOLS="${BULKHEAD_TOOLS_DIR:-/opt/bulkhead-tools}"
MOTO_VERSION=5.2.1
BOTO3_VERSION=1.43.11
PJDFSTEST_VERSION=0.2.2

if ! dpkg -s python3-venv >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip </dev/null
fi

if ! "$VENV/bin/python" -c "import moto, boto3; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "boto3==$BOTO3_VERSION" </dev/null
fi
test -x "$VENV/bin/moto_server"

if [ ! -x "$TOOLS/bin/pjdfstest" ]; then
  mkdir -p "$TOOLS"
  # Its own target dir so it never fights the workspace build for the lock.
  CARGO_TARGET_DIR="$TOOLS/build" cargo install --locked --root "$TOOLS" \
    pjdfstest --version "$PJDFSTEST_VERSION" </dev/null
  rm -rf "$TOOLS/build"
fi
test -x "$TOOLS/bin/pjdfstest"
echo "s3 test prerequisites: $VENV/bin/moto_server, $TOOLS/bin/pjdfstest"
