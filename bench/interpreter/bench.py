"""run_code("1+1") round trip on a warm code-interpreter sandbox, through the pinned SDK and
the whole path (SDK -> bulkhead serve's edge proxy -> execution server -> ZMQ -> ipykernel),
beside a direct ZMQ round trip to a kernel of the same root filesystem in the same run (the
limit: what the kernel itself costs).

Usage (a running `bulkhead serve` with the code-interpreter template; its export lines in the
environment):
    /opt/bulkhead-sdk-venv/bin/python bench/interpreter/bench.py [-n 200] [--json out.json]
Prints a table (p50/p99/n, ms) and writes JSON. Never run inside tests.
"""

import argparse
import json
import os
import statistics
import subprocess
import time

from e2b_code_interpreter import Sandbox

ROOTFS = os.environ.get("BULKHEAD_CODE_INTERPRETER_ROOTFS", "/var/cache/bulkhead/rootfs/code-interpreter")

# Runs in a chroot of the template's root filesystem: a kernel started like the execution
# server starts it, and jupyter_client's blocking client timing execute -> idle.
DIRECT = r"""
import json, sys, time
from jupyter_client import KernelManager
km = KernelManager(kernel_cmd=None)
km.start_kernel()
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
def once():
    t = time.perf_counter()
    msg_id = kc.execute("1+1")
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status" \
                and m["content"]["execution_state"] == "idle":
            break
    kc.get_shell_msg(timeout=10)
    return (time.perf_counter() - t) * 1000
for _ in range(10): once()
print(json.dumps([once() for _ in range(int(sys.argv[1]))]))
kc.stop_channels(); km.shutdown_kernel(now=True)
"""


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--json", default="bench-interpreter.json")
    args = ap.parse_args()

    t = time.perf_counter()
    sbx = Sandbox.create(timeout=600)
    create_ms = (time.perf_counter() - t) * 1000
    try:
        t = time.perf_counter()
        first = sbx.run_code("1+1")
        first_ms = (time.perf_counter() - t) * 1000
        assert first.text == "2", first
        for _ in range(10):
            sbx.run_code("1+1")
        sdk = []
        for _ in range(args.n):
            t = time.perf_counter()
            e = sbx.run_code("1+1")
            sdk.append((time.perf_counter() - t) * 1000)
            assert e.text == "2"
    finally:
        sbx.kill()

    out = subprocess.run(
        ["chroot", ROOTFS, "/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
         "python3", "-c", DIRECT, str(args.n)],
        capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"direct kernel round trip failed: {out.stderr[-2000:]}")
    direct = json.loads(out.stdout.strip().splitlines()[-1])

    rows = {
        "sdk run_code('1+1'), warm sandbox": sdk,
        "direct ZMQ execute('1+1'), same kernel build": direct,
    }
    print(f"{'path':48} {'p50 ms':>8} {'p99 ms':>8} {'n':>5}")
    for name, xs in rows.items():
        print(f"{name:48} {statistics.median(xs):8.2f} {pct(xs, 99):8.2f} {len(xs):5}")
    print(f"create (warm pool) {create_ms:.1f} ms; first run_code {first_ms:.1f} ms")
    with open(args.json, "w") as f:
        json.dump({"create_ms": create_ms, "first_run_code_ms": first_ms,
                   "series": rows}, f)


if __name__ == "__main__":
    main()
