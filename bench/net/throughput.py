#!/usr/bin/env python3
"""TCP throughput from a sandbox to a test host, against the host's own in the same run.

One command (as root, with the SDK venv of scripts/ci/setup-30-sdk.sh):

    cargo build --release --locked -p bulkhead
    /opt/bulkhead-sdk-venv/bin/python bench/net/throughput.py   # writes bench/results/net-throughput.json
    /opt/bulkhead-sdk-venv/bin/python bench/net/throughput.py --pin   # ...-pinned.json

The test host is tests/sdk/testnet.py's network namespace (198.51.100.x, routed from the
host; a slot in /run/bulkhead-testnet). A sink there reads and discards on two ports: 5201
(plain TCP, reached by address through NAT) and 80 (an HTTP POST with a `Host` header and a
large body, answered once the body is read). Against it, the same sender script (python3,
timed inside itself, from before `connect` to the sink's answer after the last byte) runs:

  host          from the host's own network namespace
  sandbox NAT   in a sandbox with the default policy (5201 and 80 go by address, NAT)
  sandbox proxy in a sandbox with a domain rule (`allow_out: [bench.invalid, <host>/32]`,
                `deny_out: [0.0.0.0/0]`): its port 80 is redirected to the egress proxy,
                which reads the Host, passes the connection by address and relays it

Every path runs once per round, --repeats rounds (after one dropped warm-up round); the
median MB/s (10^6 bytes per second) is reported, and per port the median over the rounds of
the sandbox/host ratio within a round (issue target: >= 80 %). With --pin, every sender
runs on CPU 0 and the sink on CPU 1 (sched_setaffinity; the server and the kernel's softirqs
stay where the scheduler puts them). The server is a real
`bulkhead serve --pool-size 0` and the sandboxes come from the e2b SDK. Everything (sandboxes,
server, sink, namespace) is removed at the end, on failure too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True  # no __pycache__ left in tests/sdk
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
from testnet import FakeInternet  # noqa: E402

EXPORT = re.compile(r"^export (E2B_[A-Z_]+)=(\S+)$")
RAW_PORT = 5201
HTTP_PORT = 80
DOMAIN = "bench.invalid"  # a domain rule that makes the sandbox proxied; never resolved

# Runs in the test host's namespace: counts what each connection sends until EOF, then
# answers the count and its own first-byte-to-EOF time (as an HTTP response on port 80).
SINK = r"""
import os, socket, sys, threading, time
args = sys.argv[1:]
if args[0] != "-":
    os.sched_setaffinity(0, {int(args[0])})
def serve(conn, http):
    buf = bytearray(4 << 20); view = memoryview(buf); n = 0; t0 = None
    with conn:
        while True:
            k = conn.recv_into(view)
            if not k:
                break
            if t0 is None:
                t0 = time.perf_counter()
            n += k
        body = b"%d %.6f" % (n, time.perf_counter() - (t0 or time.perf_counter()))
        if http:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            body = head % len(body) + body
        conn.sendall(body)
def accept(s, http):
    while True:
        threading.Thread(target=serve, args=(s.accept()[0], http), daemon=True).start()
for port in map(int, args[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    threading.Thread(target=accept, args=(s, port == 80), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Runs on the host and in the sandboxes (their python3): sends N zero bytes, one JSON line.
SENDER = r"""
import json, os, socket, sys, time
host, port, n, http = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
if sys.argv[5] != "-":
    os.sched_setaffinity(0, {int(sys.argv[5])})
chunk = memoryview(bytes(1 << 20))
t0 = time.perf_counter()
s = socket.create_connection((host, port), timeout=60)
if http:
    s.sendall(("POST /sink HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n" % (host, n)).encode())
left = n
while left:
    k = min(left, len(chunk)); s.sendall(chunk[:k]); left -= k
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    reply += d
secs = time.perf_counter() - t0
got, sink_secs = reply.rsplit(b"\r\n\r\n", 1)[-1].split()
print(json.dumps({"bytes": n, "seconds": secs, "sink_bytes": int(got), "sink_seconds": float(sink_secs)}))
"""


def start_bulkhead(binary: Path, data: Path, log: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--pool-size", "0"],
        stdout=subprocess.PIPE, stderr=open(log, "wb"), stdin=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "info"})
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(exports) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if m := EXPORT.match(line.strip()):
            exports[m.group(1)] = m.group(2)
    if len(exports) < 3:
        raise RuntimeError(f"bulkhead serve printed no export lines; see {log}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, exports


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proxy_connections(pid: int, host: str) -> int:
    """Connections to host:80 that process `pid` (the server, i.e. its egress proxy) holds."""
    out = subprocess.run(["ss", "-Htnp", "dst", f"{host}:{HTTP_PORT}"],
                         capture_output=True, text=True).stdout
    return sum(f"pid={pid}," in line for line in out.splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    ap.add_argument("--bin", type=Path, default=Path(target) / "release" / "bulkhead")
    ap.add_argument("--bytes", type=int, default=1 << 30, help="bytes per transfer")
    ap.add_argument("--repeats", type=int, default=15, help="rounds after the warm-up")
    ap.add_argument("--pin", action="store_true",
                    help="senders on CPU 0, the sink on CPU 1 (the proxy and softirqs unpinned)")
    ap.add_argument("--out", type=Path, help="default bench/results/net-throughput[-pinned].json")
    args = ap.parse_args()
    if args.out is None:
        args.out = ROOT / "bench" / "results" / (
            "net-throughput-pinned.json" if args.pin else "net-throughput.json")
    sender_cpu, sink_cpu = ("0", "1") if args.pin else ("-", "-")
    if not args.bin.exists():
        sys.exit(f"{args.bin} is missing: cargo build --release --locked -p bulkhead")
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, bulkhead serve)")
    # SIGTERM/SIGHUP unwind through the finally blocks below, like Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bulkhead-bench-net-"))
    tmp.chmod(0o755)  # the sandboxes' mapped ids must traverse it
    data, log = tmp / "data", tmp / "server.log"
    net = sink = proc = None
    sandboxes = []
    left_behind: list[str] = []
    try:
        net = FakeInternet.create()
        sink = subprocess.Popen(
            ["ip", "netns", "exec", net.ns, "python3", "-c", SINK, sink_cpu, str(RAW_PORT),
             str(HTTP_PORT)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the sink did not start")
        proc, env = start_bulkhead(args.bin, data, log)
        os.environ.update(env)
        from e2b import Sandbox

        nat = Sandbox.create("base", timeout=1800)
        sandboxes.append(nat)
        proxied = Sandbox.create("base", timeout=1800, network={
            "allow_out": [DOMAIN, f"{net.host}/32"], "deny_out": ["0.0.0.0/0"]})
        sandboxes.append(proxied)
        for sb in sandboxes:
            sb.files.write("/tmp/send.py", SENDER)
        host_sender = tmp / "send.py"
        host_sender.write_text(SENDER)

        def run_host(port: int, http: bool) -> dict:
            out = subprocess.run(["python3", str(host_sender), net.host, str(port),
                                  str(args.bytes), "1" if http else "0", sender_cpu],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"host sender failed: {out.stderr}")
            return json.loads(out.stdout)

        def run_sandbox(sb, port: int, http: bool) -> dict:
            r = sb.commands.run(f"python3 /tmp/send.py {net.host} {port} {args.bytes} "
                                f"{1 if http else 0} {sender_cpu}", timeout=600)
            return json.loads(r.stdout)

        paths = [
            ("host", RAW_PORT, lambda: run_host(RAW_PORT, False)),
            ("sandbox NAT", RAW_PORT, lambda: run_sandbox(nat, RAW_PORT, False)),
            ("host", HTTP_PORT, lambda: run_host(HTTP_PORT, True)),
            ("sandbox NAT", HTTP_PORT, lambda: run_sandbox(nat, HTTP_PORT, True)),
            ("sandbox proxy", HTTP_PORT, lambda: run_sandbox(proxied, HTTP_PORT, True)),
        ]
        samples: dict[tuple[str, int], list[dict]] = {(p, port): [] for p, port, _ in paths}
        proxy_seen = 0
        for rep in range(args.repeats + 1):  # the first round warms up and is dropped
            for name, port, run in paths:
                seen, stop = [0], threading.Event()
                if name == "sandbox proxy":
                    def watch():
                        while not stop.is_set():
                            seen[0] = max(seen[0], proxy_connections(proc.pid, net.host))
                            stop.wait(0.05)
                    watcher = threading.Thread(target=watch, daemon=True)
                    watcher.start()
                cpu0 = cpu_seconds(proc.pid)
                r = run()
                r["server_cpu_seconds"] = cpu_seconds(proc.pid) - cpu0
                stop.set()
                if name == "sandbox proxy":
                    watcher.join()
                    proxy_seen = max(proxy_seen, seen[0])
                if r["sink_bytes"] < r["bytes"]:
                    raise RuntimeError(f"{name} -> {port}: the sink got {r['sink_bytes']} bytes")
                r["mb_per_s"] = r["bytes"] / r["seconds"] / 1e6
                print(f"{'warm-up' if rep == 0 else f'run {rep}':<8} {name:<14} :{port:<5} "
                      f"{r['mb_per_s']:8.1f} MB/s  (server CPU {r['server_cpu_seconds']:.2f} s)",
                      flush=True)
                if rep:
                    samples[(name, port)].append(r)
        if not proxy_seen:
            raise RuntimeError("no connection of the server's egress proxy to the test host's "
                               "port 80 was seen: the proxied path did not go through the proxy")
    finally:
        for sb in sandboxes:
            try:
                sb.kill()
            except Exception as e:  # keep cleaning up
                print(f"kill {sb.sandbox_id}: {e}", file=sys.stderr)
        if proc is not None:
            ids = set(sb.sandbox_id for sb in sandboxes)
            if (data / "sandboxes").is_dir():
                ids |= {p.name for p in (data / "sandboxes").iterdir()}
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if (data / "sandboxes").is_dir():
                left_behind += [f"state {p.name}" for p in (data / "sandboxes").iterdir()]
            for h in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]:
                left_behind += [f"cgroup {h}/bulkhead/{i}" for i in ids
                                if (h / "bulkhead" / i).exists()]
        if sink is not None:
            sink.kill()
            sink.wait()
        if net is not None:
            net.close()
        if left_behind:
            print(f"left behind: {left_behind}; server log kept in {log}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    def med(name: str, port: int, key: str = "mb_per_s") -> float:
        return statistics.median(r[key] for r in samples[(name, port)])

    rows = []
    for name, port, _ in paths:
        host = med("host", port)
        rows.append({
            "path": name, "port": port,
            "via": {"host": "direct", "sandbox NAT": "NAT", "sandbox proxy": "egress proxy"}[name],
            "mb_per_s_median": round(med(name, port), 1),
            "mb_per_s_all": [round(r["mb_per_s"], 1) for r in samples[(name, port)]],
            "sink_mb_per_s_median": round(statistics.median(
                r["sink_bytes"] / r["sink_seconds"] / 1e6 for r in samples[(name, port)]), 1),
            "server_cpu_seconds_median": round(med(name, port, "server_cpu_seconds"), 2),
            # Each round runs every path once; a round's ratio compares neighbours in time, so
            # the median of them is less moved by the machine's drift than a ratio of medians.
            "ratio_to_host_per_round": None if name == "host" else [
                round(r["mb_per_s"] / h["mb_per_s"], 3)
                for r, h in zip(samples[(name, port)], samples[("host", port)])],
            "ratio_to_host": None if name == "host" else round(statistics.median(
                r["mb_per_s"] / h["mb_per_s"]
                for r, h in zip(samples[(name, port)], samples[("host", port)])), 3),
            "ratio_of_medians": None if name == "host" else round(med(name, port) / host, 3),
        })
    print(f"\n{'path':<14} {'port':>5} {'MB/s median':>12} {'min-max':>14} {'vs host':>8}"
          "  (median of the rounds' sandbox/host ratios)")
    for r in rows:
        ratio = "" if r["ratio_to_host"] is None else f"{r['ratio_to_host'] * 100:.0f} %"
        span = f"{min(r['mb_per_s_all']):.0f}-{max(r['mb_per_s_all']):.0f}"
        print(f"{r['path']:<14} {r['port']:>5} {r['mb_per_s_median']:>12.1f} {span:>14} "
              f"{ratio:>8}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "sandbox-egress-tcp-throughput",
        "commit": commit,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
                   f"kernel {platform.release()}",
        "binary": str(args.bin),
        "bytes_per_transfer": args.bytes,
        "repeats": args.repeats,
        "pinned": "senders on CPU 0, sink on CPU 1" if args.pin else None,
        "test_host": net.host,
        "target": "sandbox >= 80 % of host",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "proxy_connections_seen": proxy_seen,
        "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
