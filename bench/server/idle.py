#!/usr/bin/env python3
"""How many idle sandboxes one `bulkhead serve` holds, and what they cost.

Starts `bulkhead serve` (pool size 0, the default sandbox limits), creates sandboxes through
the API until --count is reached or a create fails, then reports: sandboxes running, the
server's own RSS, the total memory charged to the sandboxes' cgroups, the host's available
memory before and after, and the create latency percentiles. Kills everything at the end.
Writes bench/results/server-idle.json.

    python3 bench/server/idle.py --bulkhead target/release/bulkhead --count 300
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cgroup_memory(ids):
    total = 0
    for i in ids:
        for path in (f"/sys/fs/cgroup/memory/bulkhead/{i}/memory.usage_in_bytes", f"/sys/fs/cgroup/bulkhead/{i}/memory.current"):
            try:
                with open(path) as f:
                    total += int(f.read())
                break
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulkhead", default="target/release/bulkhead")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--json", default="bench/results/server-idle.json")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="bulkhead-idle-", dir="/var/tmp")
    avail_before = meminfo("MemAvailable")
    srv = subprocess.Popen([args.bulkhead, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--pool-size", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in srv.stdout:
        if line.startswith("export E2B_API_URL="):
            url = line.split("=", 1)[1].strip()
            break
    key = open(os.path.join(data, "api-key")).read().strip()
    rss_empty = rss(srv.pid)
    ids, lat, error = [], [], None
    for _ in range(args.count):
        req = urllib.request.Request(url + "/v2/sandboxes", data=b'{"templateID":"base","timeout":3600}',
                                     headers={"X-API-KEY": key, "Content-Type": "application/json"}, method="POST")
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                ids.append(json.load(r)["sandboxID"])
        except Exception as e:  # a failed create ends the run; it is the figure we want
            error = str(e)
            break
        lat.append((time.perf_counter() - t) * 1000)
    time.sleep(2)
    result = {
        "requested": args.count,
        "running": len(ids),
        "first_error": error,
        "server_rss_mib_empty": rss_empty / 2**20,
        "server_rss_mib_loaded": rss(srv.pid) / 2**20,
        "cgroup_mib_per_sandbox": cgroup_memory(ids) / max(len(ids), 1) / 2**20,
        "host_available_mib_drop_per_sandbox": (avail_before - meminfo("MemAvailable")) / max(len(ids), 1) / 2**20,
        "create_p50_ms": statistics.median(lat) if lat else None,
        "create_p99_ms": sorted(lat)[int(len(lat) * 0.99) - 1] if lat else None,
    }
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=300)
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
