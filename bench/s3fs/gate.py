#!/usr/bin/env python3
"""Listing gate: `ls -l` of N files through a fresh `bulkhead mount` must take at most
RATIO times a direct ListObjectsV2 (boto3) of the same prefix, measured in the same run
against one moto_server. Exits 1 when it does not. Cheap enough for CI (about 20 s):

    /opt/bulkhead-venv/bin/python bench/s3fs/gate.py --bulkhead "$CARGO_TARGET_DIR/debug/bulkhead"

The gate holds for --attributes uniform (what sandbox storage mounts with). Stored
attributes cost one HEAD per entry, which moto_server answers at a few hundred per second
whatever the concurrency, so that mode is measured and printed (--report) but not gated.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the benchmark's moto and mount helpers)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bulkhead", required=True)
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--ratio", type=float, default=3.0)
    p.add_argument("--modes", default="uniform", help="attribute modes that must pass")
    p.add_argument("--report", default="stored", help="attribute modes only measured")
    p.add_argument("--moto-server", default=os.path.join(os.path.dirname(sys.executable),
                                                          "moto_server"))
    args = p.parse_args()
    moto, endpoint, s3 = run.start_moto(args.moto_server)
    workdir = tempfile.mkdtemp(prefix="s3gate-")
    failed = False
    try:
        bucket = "gate"
        s3.create_bucket(Bucket=bucket)
        payload = b"x" * 4096
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda i: s3.put_object(Bucket=bucket, Key=f"small/f{i:05}",
                                                Body=payload), range(args.files)))

        def direct():
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="small/", Delimiter="/")
            n = sum(len(pg.get("Contents", [])) for pg in pages)
            if n != args.files:
                raise RuntimeError(f"listed {n}")
        # The direct client's best of three: the gate compares against its fastest.
        direct_s = min(run.timed(direct) for _ in range(3))
        gated = [m for m in args.modes.split(",") if m]
        for mode in gated + [m for m in args.report.split(",") if m and m not in gated]:
            mnt = os.path.join(workdir, f"mnt-{mode}")
            os.makedirs(mnt)
            m = run.Mount("bulkhead", endpoint, bucket, mnt, args.bulkhead, workdir,
                          extra=["--attributes", mode])
            try:
                m.start()
                ls_s = run.fs_ls(os.path.join(mnt, "small"), args.files)
            finally:
                m.stop()
            ratio = ls_s / direct_s
            ok = ratio <= args.ratio
            verdict = ("ok" if ok else "FAILED") if mode in gated else "(not gated)"
            failed |= mode in gated and not ok
            print(f"gate [{mode}]: ls -l of {args.files} files {ls_s:.2f} s, direct "
                  f"ListObjectsV2 {direct_s:.2f} s: {ratio:.1f}x (limit {args.ratio}x) "
                  f"{verdict}")
    finally:
        moto.terminate()
        moto.wait()
        subprocess.run(["rm", "-rf", workdir], check=False)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
