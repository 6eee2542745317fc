"""Filesystem snapshots and fork through the pinned SDK: `create_snapshot` of a sandbox that
wrote 10 MiB and 500 MiB, a create from the snapshot beside a create from its template in
the same run (p50 of n, both with their warm pool), and the wall time of `fork(count=10)`.

Usage (a running `bulkhead serve`; its export lines in the environment):
    /opt/bulkhead-sdk-venv/bin/python bench/snapshots/bench.py [-n 30] [--json out.json]
Prints a table and writes JSON. Never run inside tests.
"""

import argparse
import json
import statistics
import time

from e2b import Sandbox

NO_NET = {"allow_internet_access": False}


def timed(f):
    t = time.perf_counter()
    v = f()
    return v, (time.perf_counter() - t) * 1000


def create_p50(template, n):
    xs = []
    for _ in range(n):
        sbx, ms = timed(lambda: Sandbox.create(template, timeout=120, **NO_NET))
        xs.append(ms)
        sbx.kill()
        time.sleep(0.2)  # let the pool refill, as between a user's creates
    return statistics.median(xs), xs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--json", default="bench-snapshots.json")
    args = ap.parse_args()
    out = {}

    for mib in (10, 500):
        src = Sandbox.create("base", timeout=600, **NO_NET)
        try:
            src.commands.run(f"head -c {mib << 20} /dev/urandom > /home/user/data", timeout=300)
            snap, ms = timed(lambda: src.create_snapshot())
            out[f"create_snapshot_{mib}mib_ms"] = ms
            print(f"create_snapshot after writing {mib} MiB: {ms:.1f} ms")
            if mib == 10:
                time.sleep(1)
                from_snap, snap_xs = create_p50(snap.snapshot_id, args.n)
                from_tpl, tpl_xs = create_p50("base", args.n)
                out["create_from_snapshot_p50_ms"] = from_snap
                out["create_from_template_p50_ms"] = from_tpl
                out["series"] = {"snapshot": snap_xs, "template": tpl_xs}
                print(f"create p50 (n={args.n}): from the snapshot {from_snap:.2f} ms, "
                      f"from its template {from_tpl:.2f} ms")
                forks, ms = timed(lambda: src.fork(count=10, timeout=120))
                ok = [f for f in forks if isinstance(f, Sandbox)]
                out["fork_10_wall_ms"] = ms
                out["fork_10_ok"] = len(ok)
                print(f"fork(count=10): {ms:.1f} ms wall, {len(ok)} of 10 started")
                for f in ok:
                    f.kill()
            Sandbox.delete_snapshot(snap.snapshot_id)
        finally:
            src.kill()

    with open(args.json, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
