#!/usr/bin/env python3
"""Appends and fsyncs through `bulkhead mount`, against the same mount's plain write.

Two probes of the issue's defects list, each on a fresh bucket of one moto_server (or
s3s-fs with --server s3s-fs), for every --bulkhead binary given (to compare two builds in
one run):

- append one line to an existing object of --size-mib (default 256) MiB, timed until
  close() returns;
- write 128 MiB in 8 MiB writes with an fsync after each, against the same without fsync.

    /opt/bulkhead-venv/bin/python bench/s3fs/append.py --bulkhead OLD NEW
"""
import argparse
import io
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the benchmark's server and mount helpers)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bulkhead", nargs="+", required=True)
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--server", choices=["moto", "s3s-fs"], default="moto")
    p.add_argument("--moto-server", default=os.path.join(os.path.dirname(sys.executable),
                                                          "moto_server"))
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="s3append-s3s-", dir="/var/tmp")
    workdir = tempfile.mkdtemp(prefix="s3append-")
    srv, endpoint, s3 = run.start_moto(args.moto_server, args.server, root)
    try:
        chunk = os.urandom(8 << 20)
        for i, bh in enumerate(args.bulkhead):
            bucket = f"append-{i}"
            s3.create_bucket(Bucket=bucket)
            s3.upload_fileobj(io.BytesIO(os.urandom(args.size_mib << 20)), bucket, "big.log")
            mnt = os.path.join(workdir, f"mnt-{i}")
            os.makedirs(mnt)
            m = run.Mount("bulkhead-uniform", endpoint, bucket, mnt, bh, workdir)
            m.start()
            try:
                t = time.perf_counter()
                with open(os.path.join(mnt, "big.log"), "ab") as f:
                    f.write(b"one more line\n")
                appended = time.perf_counter() - t
                t = time.perf_counter()
                with open(os.path.join(mnt, "synced.bin"), "wb") as f:
                    for _ in range(16):
                        f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
                synced = time.perf_counter() - t
                t = time.perf_counter()
                with open(os.path.join(mnt, "plain.bin"), "wb") as f:
                    for _ in range(16):
                        f.write(chunk)
                plain = time.perf_counter() - t
            finally:
                m.stop()
            print(f"{bh}: append one line to {args.size_mib} MiB: {appended:.2f} s; "
                  f"128 MiB with an fsync every 8 MiB: {synced:.2f} s, without: {plain:.2f} s "
                  f"({synced / plain:.1f}x)", flush=True)
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
