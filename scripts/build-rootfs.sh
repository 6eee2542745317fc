#!/usr/bin/env bash
# Builds the root filesystems Bulkhead's tests and the default `base` template use, from this
# machine's Debian mirror, and caches them outside the checkout:
#   $BULKHEAD_ROOTFS_DIR/busybox   tiny rootfs (busybox-static applets) for fast tests
#   $BULKHEAD_ROOTFS_DIR/debian    Debian bookworm minbase + python3 (+ pip, venv)
#   $BULKHEAD_ROOTFS_DIR/code-interpreter
#                                  debian + Jupyter kernels (ipykernel, bash_kernel) and
#                                  numpy, pandas, matplotlib, e2b-charts from the package index,
#                                  R's IRkernel (Debian) and Deno (JavaScript/TypeScript kernel)
# Idempotent: a rootfs is rebuilt only when its ".complete" stamp is missing.
set -euo pipefail
out="${BULKHEAD_ROOTFS_DIR:-/var/cache/bulkhead/rootfs}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "$0")" && pwd)"
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

# The root filesystem of the `code-interpreter` template: the Debian one plus the kernels and
# libraries the execution server (crates/interpreter) needs, and IPython settings under /etc.
build_code_interpreter() {
  local dir="$out/code-interpreter"
  [ -f "$dir/.complete" ] && return 0
  build_debian
  rm -rf "$dir" "$dir.tmp"
  cp -a "$out/debian" "$dir.tmp"
  rm -f "$dir.tmp/.complete"
  cp /etc/resolv.conf "$dir.tmp/etc/resolv.conf"
  mount --bind /dev "$dir.tmp/dev"
  mount -t proc proc "$dir.tmp/proc"
  trap "umount '$dir.tmp/proc' '$dir.tmp/dev' 2>/dev/null || true" EXIT
  # The host's CA bundle, for package indexes reached through an inspecting proxy.
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$dir.tmp/tmp/host-ca.crt"
  local pip=(chroot "$dir.tmp" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_CERT=/tmp/host-ca.crt
    python3 -m pip install --no-cache-dir --break-system-packages)
  "${pip[@]}" ipykernel numpy pandas matplotlib bash_kernel
  # E2B's chart extraction; the formatter below works without it (no `chart` field then).
  "${pip[@]}" e2b-charts || echo "warning: e2b-charts did not install; results carry no chart" >&2
  umount "$dir.tmp/proc" "$dir.tmp/dev"
  trap - EXIT
  rm -f "$dir.tmp/tmp/host-ca.crt"
  : > "$dir.tmp/etc/resolv.conf"
  install -d "$dir.tmp/etc/ipython"
  install -m 0644 "$here/../templates/code-interpreter/ipython_kernel_config.py" "$dir.tmp/etc/ipython/"
  install -m 0644 "$here/../templates/code-interpreter/bulkhead_formatters.py" "$dir.tmp/etc/ipython/"
  mv "$dir.tmp" "$dir"
  touch "$dir/.complete"
}

# The optional kernels of the code interpreter, added to a built code-interpreter rootfs (a
# copy is changed, then swapped in, so a cached rootfs gets them too): R's IRkernel from
# Debian, and Deno (JavaScript and TypeScript, its own Jupyter kernel) from the package index.
add_kernels() {
  local dir="$out/code-interpreter" k="$out/code-interpreter.k"
  [ -f "$dir/.kernels-r-deno" ] && return 0
  rm -rf "$k" && cp -a "$dir" "$k"
  rm -f "$k/.complete"
  cp /etc/resolv.conf "$k/etc/resolv.conf"
  mount --bind /dev "$k/dev"
  mount -t proc proc "$k/proc"
  trap "umount '$k/proc' '$k/dev' 2>/dev/null || true" EXIT
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$k/tmp/host-ca.crt"
  local run=(chroot "$k" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root
    DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180
    PIP_CERT=/tmp/host-ca.crt)
  "${run[@]}" apt-get update -qq
  "${run[@]}" apt-get install -y -qq --no-install-recommends r-cran-irkernel </dev/null
  "${run[@]}" apt-get clean
  rm -rf "$k/var/lib/apt/lists/"*
  "${run[@]}" python3 -m pip install --no-cache-dir --break-system-packages deno
  "${run[@]}" deno --version
  "${run[@]}" R --version | head -1
  umount "$k/proc" "$k/dev"
  trap - EXIT
  rm -f "$k/tmp/host-ca.crt"
  : > "$k/etc/resolv.conf"
  touch "$k/.kernels-r-deno" "$k/.complete"
  rm -rf "$dir.old" && mv "$dir" "$dir.old" && mv "$k" "$dir" && rm -rf "$dir.old"
}

case "${1:-all}" in
  busybox) build_busybox ;;
  debian) build_debian ;;
  code-interpreter) build_code_interpreter; add_kernels ;;
  all) build_busybox; build_debian; build_code_interpreter; add_kernels ;;
  *) echo "usage: $0 [busybox|debian|code-interpreter|all]" >&2; exit 64 ;;
esac
echo "rootfs ready in $out"
