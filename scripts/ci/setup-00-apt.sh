#!/usr/bin/env bash
# System packages for building Bulkhead and for its tests (root filesystems, runc as a
# benchmark peer, FUSE peers). Idempotent.
set -euo pipefail
pkgs=(debootstrap busybox-static runc iproute2 fuse3 s3fs rclone hyperfine procps psmisc util-linux curl)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
