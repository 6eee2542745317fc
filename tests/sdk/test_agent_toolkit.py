"""`examples/agent_toolkit.py` against a server whose storage is a bucket (moto_server, auth
on) that the host mounts too, at the same absolute path: the seed's way of sharing files.
The host writes temp-then-rename and the sandbox reads it; the sandbox saves a matplotlib plot
and the host reads it; a dead sandbox is recreated; five concurrent `run_code` calls on one
sandbox all succeed."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import EXPORT, _binary

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))
from agent_toolkit import SandboxToolkit  # noqa: E402

MOTO = Path(os.environ.get("BULKHEAD_MOTO_SERVER", "/opt/bulkhead-venv/bin/moto_server"))
S3_PY = REPO / "crates/s3fs/tests/common/s3.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_mount(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


@pytest.fixture(scope="module")
def shared_bucket():
    """moto with auth; the bucket mounted on the host at P; a server giving sandboxes the
    bucket at the same P. Yields (P, the server's export lines)."""
    if not MOTO.is_file():
        pytest.fail(f"{MOTO} missing: run scripts/ci/setup-20-s3.sh", pytrace=False)
    tmp = Path(tempfile.mkdtemp(prefix="bulkhead-toolkit-", dir="/var/tmp"))
    tmp.chmod(0o755)
    port = _free_port()
    moto = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    procs: list[subprocess.Popen] = [moto]
    shared = tmp / "sentient"
    shared.mkdir()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        out = subprocess.run([str(MOTO.with_name("python")), str(S3_PY), endpoint, "auth-setup",
                              "toolkit-bucket"], capture_output=True, text=True,
                             env={**os.environ, "AWS_ACCESS_KEY_ID": "testing",
                                  "AWS_SECRET_ACCESS_KEY": "testing"})
        assert out.returncode == 0, out.stderr
        key_id, secret = out.stdout.split()
        keys = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
                "HOME": "/nonexistent"}
        binary = str(_binary())
        subprocess.run([binary, "mount", "toolkit-bucket", str(shared), "--endpoint", endpoint,
                        "-o", "allow_other"], env={**os.environ, **keys}, check=True,
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        assert _is_mount(shared)
        log = open(tmp / "server.log", "wb")
        srv = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / "data"),
             "--pool-size", "1", "--storage-bucket", "toolkit-bucket",
             "--storage-endpoint", endpoint, "--storage-path", str(shared)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, **keys})
        procs.append(srv)
        exports: dict[str, str] = {}
        assert srv.stdout is not None
        while len(exports) < 3:
            line = srv.stdout.readline().decode(errors="replace")
            assert line, (tmp / "server.log").read_text(errors="replace")[-3000:]
            m = EXPORT.match(line.strip())
            if m:
                exports[m.group(1)] = m.group(2)
        threading.Thread(target=lambda: srv.stdout.read(), daemon=True).start()
        yield shared, exports
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        if _is_mount(shared):
            subprocess.run(["umount", "-l", str(shared)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def toolkit(shared_bucket, monkeypatch):
    shared, exports = shared_bucket
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    for k, v in exports.items():
        monkeypatch.setenv(k, v)
    return SandboxToolkit(template="code-interpreter", storage_base=str(shared),
                          envs={"ROMA_S3_BUCKET": "toolkit-bucket", "AWS_REGION": "us-east-1"})


def _wait_for(path: Path, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def test_host_and_sandbox_share_files_at_the_same_path(toolkit):
    exe = "exec-" + os.urandom(4).hex()
    try:
        root = Path(toolkit.execution_dir(exe))
        # Host -> sandbox: temp-then-rename on the host, read at the same path inside.
        data = os.urandom(200_000)
        toolkit.host_write(str(root / "artifacts" / "input.bin"), data)
        r = await toolkit.run_command(exe, f"sha256sum {root}/artifacts/input.bin")
        import hashlib
        assert r.exit_code == 0, r.stderr
        assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest()
        assert "input.bin" in await toolkit.list_files(exe, str(root / "artifacts"))
        assert not any(n.endswith(".tmp") for n in os.listdir(root / "artifacts"))

        # Sandbox -> host: a plot saved under results/plots, read by the host.
        plot = root / "results" / "plots" / "sine.png"
        out = await toolkit.run_python(exe, f"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, numpy as np
x = np.linspace(0, 6.3, 100)
plt.plot(x, np.sin(x))
plt.savefig({str(plot)!r})
"saved"
""")
        assert out.error is None, out
        assert out.text == ["saved"], out
        png = _wait_for(plot)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        # The SDK's own file API sees the same bytes.
        assert await toolkit.download(exe, str(plot)) == png

        # Python state persists in the execution's sandbox.
        await toolkit.run_python(exe, "counter = 41")
        assert (await toolkit.run_python(exe, "counter + 1")).text == ["42"]
    finally:
        await toolkit.close_all()


async def test_a_dead_sandbox_is_recreated_and_concurrent_cells_all_succeed(toolkit):
    exe = "exec-" + os.urandom(4).hex()
    try:
        first = await toolkit.sandbox(exe)
        results = await asyncio.gather(
            *(toolkit.run_python(exe, f"import time; time.sleep(0.2); {i} * 10") for i in range(5)))
        assert sorted(r.text[0] for r in results) == [str(i * 10) for i in range(5)]
        await first.kill()
        r = await toolkit.run_command(exe, "echo $ROMA_S3_BUCKET $STORAGE_BASE_PATH")
        assert r.exit_code == 0
        assert r.stdout.split() == ["toolkit-bucket", toolkit.storage_base]
        assert toolkit.recreated == 1
        assert (await toolkit.sandbox(exe)).sandbox_id != first.sandbox_id
        bad = await toolkit.run_command(exe, "exit 3")
        assert bad.exit_code == 3
    finally:
        await toolkit.close_all()
