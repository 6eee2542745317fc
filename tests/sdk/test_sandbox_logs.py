"""envd's supervision and the sandbox's logs: envd killed in a running sandbox (as an upload
too large for its memory once got it OOM-killed) is started again, the unmodified SDK keeps
working on the same sandbox, and `GET /sandboxes/{id}/logs` (the E2B CLI's `e2b sandbox
logs`) and its v2 form show what envd logged and that it was restarted."""

import time

import httpx
from e2b import Sandbox

# Kills envd from inside, as root, the way a hostile or careless command could. The pattern
# `liste[n]` keeps the shell from matching (and killing) itself.
KILL_ENVD = (
    "sleep 0.3; for p in /proc/[0-9]*; do "
    "if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'envd --liste[n]'; then kill -9 ${p#/proc/}; fi; "
    "done"
)


def logs(server, sandbox_id, path="/sandboxes/{id}/logs", **params):
    r = httpx.get(server.api_url + path.format(id=sandbox_id), params=params,
                  headers={"X-API-Key": server.api_key}, timeout=30)
    return r


def test_a_killed_envd_is_started_again_and_the_logs_say_so(sandbox, server):
    first = sandbox.commands.run("echo before")
    assert first.stdout == "before\n"
    sandbox.commands.run(KILL_ENVD, user="root", background=True)
    time.sleep(1)
    deadline = time.time() + 20
    while True:
        try:
            after = sandbox.commands.run("echo after", timeout=5)
            break
        except Exception:
            assert time.time() < deadline, "envd did not come back within 20 s"
            time.sleep(0.2)
    assert after.stdout == "after\n"
    # Files and the environment given at create are still served.
    sandbox.files.write("/home/user/still.txt", "here")
    assert sandbox.files.read("/home/user/still.txt") == "here"

    r = logs(server, sandbox.sandbox_id)
    assert r.status_code == 200, r.text
    body = r.json()
    messages = [e["message"] for e in body["logEntries"]]
    assert any("envd died and was started again" in m for m in messages), messages
    assert any(m == "process started" for m in messages), messages
    restart = next(e for e in body["logEntries"] if "started again" in e["message"])
    assert restart["level"] == "warn"
    assert len(body["logs"]) == len(body["logEntries"])
    assert all(set(line) == {"timestamp", "line"} for line in body["logs"])

    # v2: newest first, by level, by text.
    r = logs(server, sandbox.sandbox_id, "/v2/sandboxes/{id}/logs",
             direction="backward", level="warn", limit=5)
    assert r.status_code == 200, r.text
    v2 = r.json()["logs"]
    assert v2 and all(e["level"] in ("warn", "error") for e in v2), v2
    stamps = [e["timestamp"] for e in v2]
    assert stamps == sorted(stamps, reverse=True)
    r = logs(server, sandbox.sandbox_id, "/v2/sandboxes/{id}/logs", search="started again")
    assert [e["message"] for e in r.json()["logs"]] == [restart["message"]]
    # `start` in milliseconds: nothing from the future.
    future = int(time.time() * 1000) + 60_000
    assert logs(server, sandbox.sandbox_id, start=future).json()["logEntries"] == []


def test_sandbox_logs_refuse_bad_queries_and_other_teams(sandbox, server):
    assert logs(server, sandbox.sandbox_id, limit="lots").status_code == 400
    assert logs(server, sandbox.sandbox_id, "/v2/sandboxes/{id}/logs", direction="up").status_code == 400
    assert logs(server, "no-such-sandbox").status_code == 404
    other = server.create_key("logs-other-team")
    r = httpx.get(f"{server.api_url}/sandboxes/{sandbox.sandbox_id}/logs",
                  headers={"X-API-Key": other}, timeout=30)
    assert r.status_code == 404
    assert httpx.get(f"{server.api_url}/sandboxes/{sandbox.sandbox_id}/logs", timeout=30).status_code == 401


# Sandbox root kills envd and answers on its port with an endless stream, as hostile code
# could: the server's next exchange with "envd" (its restart's /init) must read a bounded
# amount and go on serving.
FLOOD_ENVD = r"""
import os, socket, threading, time
time.sleep(0.3)
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            if b'envd\x00--listen' in open(f'/proc/{p}/cmdline', 'rb').read() and int(p) != os.getpid():
                os.kill(int(p), 9)
        except OSError:
            pass
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(50):
    try:
        s.bind(('0.0.0.0', 49983)); break
    except OSError:
        time.sleep(0.05)
s.listen(16)
def flood(c):
    try:
        c.recv(65536)
        chunk = b'HTTP/1.1 200 OK\r\n' + b'x' * (1 << 20)
        while True:
            c.sendall(chunk)
    except OSError:
        pass
end = time.time() + 8
s.settimeout(0.5)
while time.time() < end:
    try:
        c, _ = s.accept()
    except OSError:
        continue
    threading.Thread(target=flood, args=(c,), daemon=True).start()
"""


def _rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_flood_on_envds_port_does_not_exhaust_the_server(sandbox, server):
    sandbox.files.write("/tmp/flood.py", FLOOD_ENVD)
    before = _rss_kib(server.proc.pid)
    sandbox.commands.run("python3 /tmp/flood.py", user="root", background=True)
    time.sleep(6)
    after = _rss_kib(server.proc.pid)
    assert after - before < 100 * 1024, f"server RSS grew from {before} to {after} KiB"
    assert httpx.get(server.api_url + "/health", timeout=10).status_code == 204
    # Once the flood ends, the real envd is started again.
    deadline = time.time() + 30
    while True:
        try:
            if sandbox.commands.run("echo back", timeout=5).stdout == "back\n":
                break
        except Exception:
            pass
        assert time.time() < deadline, "envd did not come back after the flood"
        time.sleep(0.5)
