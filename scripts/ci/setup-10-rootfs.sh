#!/usr/bin/env bash
# Root filesystems for the runtime tests and the default template (cached outside the checkout).
set -euo pipefail
exec bash "$(dirname "$0")/../build-rootfs.sh" all
