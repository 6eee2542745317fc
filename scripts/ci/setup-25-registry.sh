#!/usr/bin/env bash
# What the registry-pull tests need (idempotent, no stdin): Debian's docker-registry (the
# distribution registry 2.8; the tests run their own instances on 127.0.0.1, never its systemd
# service), skopeo (pushes the images the tests write), apache2-utils (htpasswd -B for the
# registry's basic auth) and zstd (the zstd-compressed layers of one test image).
set -euo pipefail
pkgs=(docker-registry skopeo apache2-utils zstd)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  # The package starts its own instance on :5000; the tests start theirs on free ports, and
  # one listening on a fixed port would only get in the way.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi
for tool in docker-registry skopeo htpasswd zstd; do
  command -v "$tool" >/dev/null || { echo "setup-25-registry: $tool is missing after install" >&2; exit 1; }
done
echo "registry test prerequisites: $(command -v docker-registry), $(command -v skopeo), $(command -v htpasswd)"
