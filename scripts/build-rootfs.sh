#!/usr/bin/env bash
# Builds the root filesystems Bulkhead's tests and the default `base` template use, from this
# machine's Debian mirror, and caches them outside the checkout:
#   $BULKHEAD_ROOTFS_DIR/busybox   tiny rootfs (busybox-static applets) for fast tests
#   $BULKHEAD_ROOTFS_DIR/debian    Debian bookworm minbase + python3 (+ pip, venv)
# Idempotent: a rootfs is rebuilt only when its ".complete" stamp is missing.
set -euo pipefail
out="${BULKHEAD_ROOTFS_DIR:-/var/cache/bulkhead/rootfs}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$out"

build_busybox() {
  local dir="$out/busybox"
  [ -f "$dir/.complete" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/user,proc,sys,dev}
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $("$dir/bin/busybox" --list); do
    [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
  done
  cat > "$dir/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
  cat > "$dir/etc/group" <<'GR'
root:x:0:
user:x:1000:
nogroup:x:65534:
GR
  chown 1000:1000 "$dir/home/user"
  chmod 1777 "$dir/tmp"
  touch "$dir/.complete"
}

# Settings of the debian rootfs that a cached copy gets too (cheap, idempotent): pip installs
# for the default user as on E2B's base image, which Debian's externally-managed-environment
# guard would otherwise refuse (pip falls back to the user's site when site-packages is not
# writable).
configure_debian() {
  local dir="$1"
  if ! grep -qs '^break-system-packages' "$dir/etc/pip.conf"; then
    printf '[global]\nbreak-system-packages = true\n' > "$dir/etc/pip.conf"
    chmod 0644 "$dir/etc/pip.conf"
  fi
}

build_debian() {
  local dir="$out/debian"
  if [ -f "$dir/.complete" ]; then configure_debian "$dir"; return 0; fi
  rm -rf "$dir" "$dir.tmp"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,procps \
    bookworm "$dir.tmp" "$mirror"
  chroot "$dir.tmp" /bin/sh -c 'id user >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash user'
  rm -rf "$dir.tmp"/var/cache/apt/archives/*.deb "$dir.tmp"/var/lib/apt/lists/*
  configure_debian "$dir.tmp"
  mv "$dir.tmp" "$dir"
  touch "$dir/.complete"
}

case "${1:-all}" in
  busybox) build_busybox ;;
  debian) build_debian ;;
  all) build_busybox; build_debian ;;
  *) echo "usage: $0 [busybox|debian|all]" >&2; exit 64 ;;
esac
echo "rootfs ready in $out"
