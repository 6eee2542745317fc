"""Filesystem snapshots and fork (spec 2.3) through the pinned SDK: `create_snapshot`,
`Sandbox.create(snapshot)`, `list_snapshots`, `delete_snapshot`, `fork`, and the bad input
E2B answers with 4xx."""

import uuid

import httpx
import pytest
from e2b import Sandbox, SandboxException

from compat import CREATE


def _create(server, template="base", **kw) -> Sandbox:
    sbx = Sandbox.create(template, **{"timeout": 120, **CREATE, **kw})
    server.sandbox_ids.add(sbx.sandbox_id)
    return sbx


def test_a_snapshot_keeps_files_and_removals_but_no_process(server):
    src = _create(server)
    src.files.write("/home/user/kept.txt", "from the source")
    src.commands.run("mkdir -p /home/user/deep/er && echo y > /home/user/deep/er/file")
    src.commands.run("rm /etc/debian_version", user="root")
    src.commands.run("sleep 600", background=True)
    name = f"snap-{uuid.uuid4().hex[:12]}"
    snap = src.create_snapshot(name=name)
    assert snap.snapshot_id and snap.names == [name]
    # The source was thawed and goes on.
    assert src.is_running()
    src.files.write("/home/user/after.txt", "after the snapshot")

    for ref in (snap.snapshot_id, name):
        new = _create(server, ref)
        assert new.files.read("/home/user/kept.txt") == "from the source"
        assert new.files.read("/home/user/deep/er/file") == "y\n"
        assert not new.files.exists("/etc/debian_version"), "a removal is part of the snapshot"
        assert not new.files.exists("/home/user/after.txt")
        ps = new.commands.run("ps -eo args").stdout
        assert "sleep 600" not in ps, "a filesystem snapshot holds no process"
        # Owners come back as they were (user's files stay user's).
        assert new.commands.run("stat -c %U /home/user/kept.txt").stdout.strip() == "user"
        new.kill()

    listed = [s.snapshot_id for s in src.list_snapshots().next_items()]
    assert snap.snapshot_id in listed
    by_name = [s.snapshot_id for s in Sandbox.list_snapshots(name=name).next_items()]
    assert by_name == [snap.snapshot_id]
    # Another team neither lists nor deletes it.
    other = server.create_key(f"other-{uuid.uuid4().hex[:8]}")
    assert Sandbox.list_snapshots(api_key=other).next_items() == []
    assert Sandbox.delete_snapshot(snap.snapshot_id, api_key=other) is False
    with pytest.raises(SandboxException, match="404"):
        Sandbox.create(snap.snapshot_id, api_key=other, timeout=60, **CREATE)
    r = httpx.get(f"{server.api_url}/bulkhead/v1/templates/{snap.snapshot_id}",
                  headers={"X-API-KEY": other}, timeout=30)
    assert r.status_code == 404, r.text
    assert Sandbox.delete_snapshot(snap.snapshot_id) is True
    assert Sandbox.delete_snapshot(snap.snapshot_id) is False
    with pytest.raises(SandboxException, match="404"):
        _create(server, snap.snapshot_id)
    src.kill()


def test_fork_starts_sandboxes_from_the_sources_files(server):
    src = _create(server)
    src.files.write("/home/user/state.txt", "forked")
    forks = src.fork(count=3, timeout=60)
    assert len(forks) == 3
    try:
        for f in forks:
            assert isinstance(f, Sandbox), f
            server.sandbox_ids.add(f.sandbox_id)
            assert f.sandbox_id != src.sandbox_id
            assert f.files.read("/home/user/state.txt") == "forked"
        assert len({f.sandbox_id for f in forks}) == 3
    finally:
        for f in forks:
            if isinstance(f, Sandbox):
                f.kill()
        src.kill()


def test_bad_snapshot_and_fork_requests_are_4xx(server):
    src = _create(server)
    try:
        with pytest.raises(SandboxException):
            src.create_snapshot(name="Not A Valid Name!")
        for count in (0, 21):
            with pytest.raises(SandboxException):
                src.fork(count=count)
        headers = {"X-API-KEY": server.api_key}
        for path, body, status in [
            ("/sandboxes/nosuchsandbox/snapshots", {}, 404),
            ("/sandboxes/nosuchsandbox/fork", {"count": 1}, 404),
            (f"/sandboxes/{src.sandbox_id}/snapshots", {"memory": True}, 400),
            (f"/sandboxes/{src.sandbox_id}/fork", {"count": 2, "timeout": -1}, 400),
        ]:
            r = httpx.post(server.api_url + path, json=body, headers=headers, timeout=60)
            assert r.status_code == status, (path, body, r.text)
            assert r.json()["code"] == status
        r = httpx.get(server.api_url + "/snapshots?limit=0", headers=headers, timeout=30)
        assert r.status_code == 400, r.text
        # A paused sandbox is resumed first (E2B's 409 for a state that forbids it).
        src.pause()
        r = httpx.post(server.api_url + f"/sandboxes/{src.sandbox_id}/snapshots", json={},
                       headers=headers, timeout=60)
        assert r.status_code == 409, r.text
        src = Sandbox.connect(src.sandbox_id)
    finally:
        src.kill()


def test_a_snapshot_of_a_code_interpreter_sandbox_serves_run_code(server):
    from e2b_code_interpreter import Sandbox as CodeSandbox

    src = CodeSandbox.create(timeout=300)
    server.sandbox_ids.add(src.sandbox_id)
    try:
        src.run_code("open('/home/user/made.txt', 'w').write('by a cell')")
        snap = src.create_snapshot()
        new = CodeSandbox.create(snap.snapshot_id, timeout=300)
        server.sandbox_ids.add(new.sandbox_id)
        try:
            e = new.run_code("open('/home/user/made.txt').read()")
            assert e.error is None, e.error
            assert e.text == "by a cell"
        finally:
            new.kill()
        assert Sandbox.delete_snapshot(snap.snapshot_id) is True
    finally:
        src.kill()
