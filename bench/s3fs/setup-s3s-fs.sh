#!/usr/bin/env bash
# Installs s3s-fs (an S3 server over a directory, whose ranged GETs read only their range)
# for `bench/s3fs/run.py --server s3s-fs`, built from crates.io into a cache outside the
# checkout, once per machine (about 4 minutes on 2 cores).
set -euo pipefail
root=/var/cache/bulkhead/tools/s3s-fs
if [ -x "$root/bin/s3s-fs" ]; then
    exit 0
fi
# 0.14.1 is the newest release that builds with the project's Rust 1.95.
cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$root"
