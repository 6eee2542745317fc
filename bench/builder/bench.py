"""Template builds, through the CLI against a real `bulkhead serve` (started here with a data
dir of its own, or reused with --data-dir so apt's cache mount is warm):

- rebuild of templates/base with nothing changed (wall time of `bulkhead template build`);
- overhead of a RUN step that installs a few packages: the step's time as the build reports
  it against the command's own time measured inside the build sandbox, in the same run;
- disk use of two templates sharing a base (the base layer is stored once);
- create p50 of `bulkhead sandbox create` from a built template beside the built-in `base`.

Usage: python3 bench/builder/bench.py [--bulkhead PATH] [--data-dir DIR] [-n 5] [--json out.json]
Never run inside tests.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STEP = """FROM bulkhead/debian
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\
    rm -f /etc/apt/apt.conf.d/docker-clean \\
    && echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep-cache \\
    && s=$(date +%s%N) \\
    && apt-get update -qq && apt-get install -y -qq --no-install-recommends jq tree file >/dev/null \\
    && e=$(date +%s%N) && echo "inner-ms $(( (e - s) / 1000000 ))"
"""


def start(binary, data):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--pool-size", "1", "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = None
    for line in proc.stdout:
        m = re.match(rb"export E2B_API_URL=(\S+)", line)
        if m:
            url = m.group(1).decode()
            break
    key = Path(data, "api-key").read_text().strip()
    return proc, url, key


def cli(binary, url, key, *args):
    t = time.perf_counter()
    out = subprocess.run([binary, *args[:1], "--server", url, "--data-dir", "/nonexistent",
                          *args[1:]], capture_output=True, text=True,
                         env={**os.environ, "E2B_API_KEY": key}, timeout=1800)
    return out, (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bulkhead", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/cache/bulkhead/target"), "release", "bulkhead"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    data = a.data_dir or tempfile.mkdtemp(prefix="bench-builder-")
    proc, url, key = start(a.bulkhead, data)
    res = {}
    try:
        out, ms = cli(a.bulkhead, url, key, "template", "build", str(REPO / "templates/base"))
        assert out.returncode == 0, out.stderr
        res["base_first_build_s"] = round(ms / 1000, 1)
        times = []
        for _ in range(a.n):
            out, ms = cli(a.bulkhead, url, key, "template", "build", str(REPO / "templates/base"))
            assert "0 steps run" in out.stdout, out.stdout
            times.append(ms)
        res["rebuild_unchanged_ms_p50"] = round(statistics.median(times), 1)

        d = Path(tempfile.mkdtemp(prefix="bench-step-"))
        (d / "e2b.Dockerfile").write_text(STEP)
        overheads = []
        for _ in range(a.n):
            out, _ = cli(a.bulkhead, url, key, "template", "build", str(d), "--name", "steptpl",
                         "--no-cache")
            assert out.returncode == 0, out.stderr
            inner = int(re.search(r"inner-ms (\d+)", out.stderr).group(1))
            step_s = float(re.findall(r"done in ([\d.]+) s, layer", out.stderr)[-1])
            overheads.append((step_s * 1000 - inner, inner))
        over = statistics.median(o for o, _ in overheads)
        inner = statistics.median(i for _, i in overheads)
        res["run_step_inner_ms_p50"] = inner
        res["run_step_overhead_ms_p50"] = round(over, 1)
        res["run_step_overhead_ratio"] = round(over / inner, 3)

        layers = Path(data, "images", "layers")
        du = lambda p: int(subprocess.run(["du", "-sb", str(p)], capture_output=True,
                                          text=True).stdout.split()[0])
        res["layers_bytes_two_templates"] = du(layers)
        res["layer_dirs"] = len(list(layers.iterdir()))

        for tpl in ("base", "steptpl"):
            ts = []
            for _ in range(a.n * 4):
                out, ms = cli(a.bulkhead, url, key, "sandbox", "create", "-t", tpl)
                assert out.returncode == 0, out.stderr
                ts.append(ms)
                cli(a.bulkhead, url, key, "sandbox", "kill", out.stdout.strip())
            res[f"create_ms_p50_{tpl}"] = round(statistics.median(ts), 1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
