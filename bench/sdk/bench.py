"""Python SDK round trip: `Sandbox.create()` + `commands.run("true")` + `kill()`.

One command (as root, with the SDK venv of scripts/ci/setup-30-sdk.sh):

    cargo build --release --locked -p bulkhead
    /opt/bulkhead-sdk-venv/bin/python bench/sdk/bench.py

Runs the loop sequentially and with 10 and 50 concurrent clients (threads) against a real
`bulkhead serve`, and the same loop against an in-process do-nothing fake answering the
same three endpoints with canned bodies (the floor: SDK and HTTP cost alone). Prints a table
and writes bench/results/sdk.json.
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
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORT = re.compile(r"^export (E2B_[A-Z_]+)=(\S+)$")


# ---------------------------------------------------------------------------- the fake

def _envelope(flags: int, msg: dict) -> bytes:
    data = json.dumps(msg).encode()
    return bytes([flags]) + len(data).to_bytes(4, "big") + data


SANDBOX = json.dumps({"templateID": "base", "sandboxID": "fake0000000000000000",
                      "clientID": "6532622b", "envdVersion": "0.6.13",
                      "envdAccessToken": "fake-token"}).encode()
START_STREAM = (_envelope(0, {"event": {"start": {"pid": 1}}})
                + _envelope(0, {"event": {"end": {"exitCode": 0, "exited": True,
                                                  "status": "exit status 0"}}})
                + _envelope(2, {}))


class FakeHandler(BaseHTTPRequestHandler):
    """Canned answers for create, Process/Start and kill; reads (and drops) any body."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else header and body writes meet delayed ACKs (40 ms)

    def log_message(self, *args):  # quiet
        pass

    def _drain(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                self.rfile.read(size + 2) if size else self.rfile.readline()
                if size == 0:
                    return
        else:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes = b"", ctype: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self._drain()
        if self.path.startswith("/v2/sandboxes"):
            self._reply(201, SANDBOX)
        elif self.path.startswith("/process.Process/Start"):
            self._reply(200, START_STREAM, "application/connect+json")
        else:
            self._reply(404, b'{"code":404,"message":"no"}')

    def do_DELETE(self):
        self._drain()
        self._reply(204)


def start_fake() -> tuple[ThreadingHTTPServer, dict[str, str]]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeHandler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    return srv, {"E2B_API_URL": url, "E2B_SANDBOX_URL": url, "E2B_API_KEY": "fake"}


# ---------------------------------------------------------------------- the real server

def start_bulkhead(binary: Path, pool_size: int) -> tuple[subprocess.Popen, dict[str, str], Path]:
    data = Path(tempfile.mkdtemp(prefix="bulkhead-bench-sdk-"))
    data.chmod(0o755)  # the sandboxes' mapped ids must traverse it
    proc = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--pool-size", str(pool_size)],
        stdout=subprocess.PIPE, stderr=open(data.parent / f"{data.name}.log", "wb"),
        stdin=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    exports: dict[str, str] = {}
    while len(exports) < 3:
        line = proc.stdout.readline().decode()
        if not line:
            sys.exit(f"bulkhead serve exited early; see {data.parent}/{data.name}.log")
        if m := EXPORT.match(line.strip()):
            exports[m.group(1)] = m.group(2)
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, exports, data


# --------------------------------------------------------------------------- the loop

def one_round_trip() -> tuple[float, float, float]:
    """Milliseconds spent in create, run and kill."""
    from e2b import Sandbox
    t0 = time.perf_counter()
    sbx = Sandbox.create("base")
    t1 = time.perf_counter()
    sbx.commands.run("true")
    t2 = time.perf_counter()
    sbx.kill()
    t3 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def measure(env: dict[str, str], clients: int, n: int, warmup: int) -> dict:
    os.environ.update(env)
    for _ in range(warmup):
        one_round_trip()
    t0 = time.perf_counter()
    if clients == 1:
        phases = [one_round_trip() for _ in range(n)]
    else:
        with ThreadPoolExecutor(clients) as ex:
            phases = list(ex.map(lambda _: one_round_trip(), range(n)))
    wall = time.perf_counter() - t0
    lat = [sum(p) for p in phases]
    return {"clients": clients, "n": n, "p50_ms": round(pct(lat, 50), 2),
            "p99_ms": round(pct(lat, 99), 2), "mean_ms": round(statistics.fmean(lat), 2),
            "ops_per_s": round(n / wall, 1),
            **{f"{name}_p50_ms": round(pct([p[i] for p in phases], 50), 2)
               for i, name in enumerate(["create", "run", "kill"])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    ap.add_argument("--bin", type=Path, default=Path(target) / "release" / "bulkhead")
    ap.add_argument("--n", type=int, default=100, help="round trips per scenario")
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 10, 50])
    ap.add_argument("--pool-size", type=int, default=2, help="bulkhead serve --pool-size")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sdk.json")
    args = ap.parse_args()
    if not args.bin.exists():
        sys.exit(f"{args.bin} is missing: cargo build --release --locked -p bulkhead")

    rows = []
    fake, fake_env = start_fake()
    for c in args.concurrency:
        rows.append({"server": "fake", **measure(fake_env, c, max(args.n, c * 4), 5)})
    fake.shutdown()
    proc, env, data = start_bulkhead(args.bin, args.pool_size)
    try:
        for c in args.concurrency:
            rows.append({"server": "bulkhead", **measure(env, c, max(args.n, c * 4), 5)})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
        Path(f"{data}.log").unlink(missing_ok=True)

    print(f"{'server':<9} {'clients':>7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>7}"
          f"   p50 of create / run / kill (ms)")
    for r in rows:
        print(f"{r['server']:<9} {r['clients']:>7} {r['n']:>5} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['ops_per_s']:>7.1f}   {r['create_p50_ms']:.2f} / "
              f"{r['run_p50_ms']:.2f} / {r['kill_p50_ms']:.2f}")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "python-sdk-round-trip",
        "loop": 'Sandbox.create("base") + commands.run("true") + kill()',
        "commit": commit, "machine": f"{platform.node()} {platform.machine()} "
        f"{os.cpu_count()} cpus, kernel {platform.release()}",
        "pool_size": args.pool_size, "binary": str(args.bin), "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
