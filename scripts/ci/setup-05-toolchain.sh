#!/usr/bin/env bash
# The toolchain is pinned to 1.95.0 (rust-toolchain.toml). No toolchain can be downloaded on
# these machines: when rustup lacks a toolchain named 1.95.0 but its stable one is 1.95.0,
# register that one under the pinned name.
set -euo pipefail
if ! rustup toolchain list | grep -q '^1\.95\.0'; then
  if rustup run stable rustc --version | grep -q '^rustc 1\.95\.0 '; then
    rustup toolchain link 1.95.0 "$(rustup run stable rustc --print sysroot)"
  else
    echo "Rust 1.95.0 is required and not installed (rustup toolchain install 1.95.0)" >&2
    exit 1
  fi
fi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
