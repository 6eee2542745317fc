"""Sandbox lifecycle through the control plane (spec 2.3): info, timeout, list, pause and
resume, metrics, kill."""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from e2b import Sandbox, SandboxException, SandboxQuery, SandboxState

from compat import CREATE, SandboxNotFoundException, SandboxNotRunningException


def _create(server, **kw) -> Sandbox:
    sbx = Sandbox.create("base", **{"timeout": 120, **CREATE, **kw})
    server.sandbox_ids.add(sbx.sandbox_id)
    return sbx


def test_is_running_and_get_info(server):
    tag = uuid.uuid4().hex
    before = datetime.now(timezone.utc).replace(microsecond=0)
    sbx = _create(server, metadata={"suite": tag}, timeout=90)
    try:
        assert sbx.is_running() is True
        info = sbx.get_info()
        assert info.sandbox_id == sbx.sandbox_id
        assert info.template_id == "base"
        assert info.metadata == {"suite": tag}
        assert info.state == SandboxState.RUNNING
        assert info.started_at >= before
        assert 80 <= (info.end_at - info.started_at).total_seconds() <= 100
        assert info.cpu_count >= 1 and info.memory_mb > 0
        assert Sandbox.get_info(sbx.sandbox_id).sandbox_id == sbx.sandbox_id
    finally:
        sbx.kill()


def test_kill_twice_returns_true_then_false(server):
    sbx = _create(server)
    assert sbx.kill() is True
    assert sbx.kill() is False
    assert Sandbox.kill(sbx.sandbox_id) is False
    assert sbx.is_running() is False
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sbx.sandbox_id)


def test_operations_on_a_killed_sandbox_raise_not_running(server):
    sbx = _create(server)
    sbx.kill()
    with pytest.raises(SandboxNotRunningException):
        sbx.commands.run("true")
    with pytest.raises(SandboxNotRunningException):
        sbx.files.read("/home/user/.profile")


def test_set_timeout_extends_and_a_short_timeout_ends_the_sandbox(server):
    sbx = _create(server)
    sbx.set_timeout(600)
    info = sbx.get_info()
    assert 590 <= (info.end_at - datetime.now(timezone.utc)).total_seconds() <= 610
    sbx.set_timeout(2)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sbx.is_running():
        time.sleep(0.25)
    assert sbx.is_running() is False, "the sandbox outlived its 2 s timeout by 20 s"
    with pytest.raises(SandboxNotFoundException):
        sbx.get_info()
    assert sbx.kill() is False


def test_create_timeout_ends_the_sandbox(server):
    sbx = _create(server, timeout=2)
    assert sbx.commands.run("echo alive").stdout == "alive\n"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sbx.is_running():
        time.sleep(0.25)
    assert sbx.is_running() is False


def test_get_metrics(server):
    sbx = _create(server)
    try:
        sbx.commands.run("python3 -c 'x = bytearray(32 << 20); print(len(x))'")
        metrics = sbx.get_metrics()
        assert metrics, "no metric sample"
        m = metrics[-1]
        assert m.cpu_count >= 1
        assert m.mem_total > 0 and 0 < m.mem_used <= m.mem_total
        assert 0.0 <= m.cpu_used_pct <= 100.0
        assert m.disk_total > 0
    finally:
        sbx.kill()


def test_metrics_are_sampled_over_time_and_answer_for_a_window(server):
    sbx = _create(server)
    try:
        sbx.commands.run("head -c 10485760 /dev/urandom > /home/user/ten-mib")
        time.sleep(11)  # two sampling steps of 5 s
        ms = sbx.get_metrics()
        assert len(ms) >= 3, ms
        stamps = [m.timestamp for m in ms]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps
        last = ms[-1]
        assert last.disk_used >= 10 << 20, "the file is on the writable layer"
        assert last.disk_used <= last.disk_total
        if hasattr(last, "mem_cache"):  # e2b 2.2 has no mem_cache
            assert last.mem_cache > 0, "the writable layer's tmpfs is page cache"
        # A window (e2b 2.2 sends its ends in milliseconds, later releases in seconds) of one past sample answers that sample only.
        mid = ms[1].timestamp
        assert [m.timestamp for m in sbx.get_metrics(start=mid, end=mid)] == [mid]
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        assert sbx.get_metrics(start=later) == []
        with pytest.raises(SandboxException):
            sbx.get_metrics(start=later, end=mid)
    finally:
        sbx.kill()


def test_list_filters_by_metadata_and_state_and_paginates(server):
    tag = uuid.uuid4().hex
    sbxs = [_create(server, metadata={"suite": tag, "n": str(i), "odd": "a b/c&d=e"})
            for i in range(3)]
    ids = {s.sandbox_id for s in sbxs}
    try:
        q = SandboxQuery(metadata={"suite": tag})
        listed = Sandbox.list(query=q).next_items()
        assert {s.sandbox_id for s in listed} == ids
        assert all(s.metadata["odd"] == "a b/c&d=e" for s in listed)
        one = Sandbox.list(query=SandboxQuery(metadata={"suite": tag, "n": "1"})).next_items()
        assert [s.sandbox_id for s in one] == [sbxs[1].sandbox_id]
        assert Sandbox.list(query=SandboxQuery(metadata={"suite": "no-" + tag})).next_items() == []
        # Keys and values are percent-encoded twice on the wire (spec 2.4).
        odd = Sandbox.list(query=SandboxQuery(metadata={"suite": tag, "odd": "a b/c&d=e"}))
        assert {s.sandbox_id for s in odd.next_items()} == ids
        not_odd = Sandbox.list(query=SandboxQuery(metadata={"suite": tag, "odd": "a b/c"}))
        assert not_odd.next_items() == []

        pager = Sandbox.list(query=q, limit=2)
        first = pager.next_items()
        assert len(first) == 2 and pager.has_next and pager.next_token
        second = pager.next_items()
        assert len(second) == 1 and not pager.has_next
        assert {s.sandbox_id for s in first + second} == ids

        sbxs[0].pause()
        paused = Sandbox.list(query=SandboxQuery(metadata={"suite": tag},
                                                 state=[SandboxState.PAUSED])).next_items()
        assert [s.sandbox_id for s in paused] == [sbxs[0].sandbox_id]
        assert paused[0].state == SandboxState.PAUSED
        running = Sandbox.list(query=SandboxQuery(metadata={"suite": tag},
                                                  state=[SandboxState.RUNNING])).next_items()
        assert {s.sandbox_id for s in running} == ids - {sbxs[0].sandbox_id}
    finally:
        for s in sbxs:
            s.kill()


def test_pause_and_resume_via_connect_keep_files_and_processes(server):
    sbx = _create(server)
    try:
        sbx.files.write("/home/user/kept.txt", "still here")
        counter = sbx.commands.run(
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done",
            background=True)
        time.sleep(0.5)
        assert sbx.pause() is True
        assert sbx.pause() is False  # already paused
        assert sbx.get_info().state == SandboxState.PAUSED
        resumed = Sandbox.connect(sbx.sandbox_id, timeout=120)
        assert resumed.sandbox_id == sbx.sandbox_id
        assert resumed.get_info().state == SandboxState.RUNNING
        assert resumed.files.read("/home/user/kept.txt") == "still here"
        assert counter.pid in [p.pid for p in resumed.commands.list()]
        frozen_at = int(resumed.files.read("/tmp/count"))
        time.sleep(0.5)
        assert int(resumed.files.read("/tmp/count")) > frozen_at, "the loop did not resume"
    finally:
        sbx.kill()


def test_paused_sandbox_does_not_run(server):
    sbx = _create(server)
    try:
        sbx.commands.run(
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
            background=True)
        time.sleep(0.3)
        sbx.pause()
        time.sleep(0.2)
        Sandbox.connect(sbx.sandbox_id)
        a = int(sbx.files.read("/tmp/count"))
        sbx.pause()
        time.sleep(1.0)
        Sandbox.connect(sbx.sandbox_id)
        b = int(sbx.files.read("/tmp/count"))
        # 1 s paused at 20 increments/s: a running loop would have added about 20.
        assert b - a < 10, f"the counter moved {b - a} while paused"
    finally:
        sbx.kill()


def test_kill_removes_the_cgroup_and_state_dir(server):
    """Also proves the session's leak check can see a sandbox: it looks at the same places."""
    from conftest import _sandbox_cgroups

    sbx = _create(server)
    state = server.data_dir / "sandboxes" / sbx.sandbox_id
    assert _sandbox_cgroups({sbx.sandbox_id}), "no cgroup found for a live sandbox"
    assert state.exists(), f"no state dir {state} for a live sandbox"
    assert sbx.kill() is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_sandbox_cgroups({sbx.sandbox_id}) or state.exists()):
        time.sleep(0.1)
    assert _sandbox_cgroups({sbx.sandbox_id}) == []
    assert not state.exists()


def test_idempotency_key_returns_the_same_sandbox(server):
    """Spec 1.6: the SDK resends a create on 502/503/504 with the same Idempotency-Key."""
    key = "suite-" + uuid.uuid4().hex
    a = _create(server, idempotency_key=key)
    try:
        b = _create(server, idempotency_key=key)
        assert b.sandbox_id == a.sandbox_id
        c = _create(server, idempotency_key=key + "-other")
        assert c.sandbox_id != a.sandbox_id
        c.kill()
    finally:
        a.kill()
    # Once the sandbox is gone the key may start a new one.
    d = _create(server, idempotency_key=key)
    assert d.sandbox_id != a.sandbox_id
    d.kill()


def test_timeout_of_zero_is_refused(server):
    with pytest.raises(SandboxException) as ei:
        Sandbox.create("base", timeout=0, **CREATE)
    assert "400" in str(ei.value), str(ei.value)


def test_on_timeout_pause_pauses_instead_of_killing(server):
    sbx = _create(server, timeout=2, lifecycle={"on_timeout": "pause"})
    try:
        sbx.files.write("/home/user/survives.txt", "yes")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sbx.get_info().state != SandboxState.PAUSED:
            time.sleep(0.25)
        assert sbx.get_info().state == SandboxState.PAUSED
        resumed = Sandbox.connect(sbx.sandbox_id, timeout=60)
        assert resumed.files.read("/home/user/survives.txt") == "yes"
    finally:
        sbx.kill()


def test_filesystem_pause_ends_processes_and_keeps_files(server):
    """E2B's filesystem-only pause (`mode="filesystem"`): the processes end, the files stay,
    and a resume starts envd anew with the sandbox's token and envs, as at a create."""
    sbx = _create(server, envs={"KEPT_ENV": "kept"})
    try:
        sbx.files.write("/home/user/kept.txt", "still here")
        loop = sbx.commands.run("while true; do sleep 0.1; done", background=True)
        assert sbx.pause(mode="filesystem") is True
        assert sbx.pause(mode="filesystem") is False  # already paused
        assert sbx.get_info().state == SandboxState.PAUSED
        resumed = Sandbox.connect(sbx.sandbox_id, timeout=120)
        assert resumed.get_info().state == SandboxState.RUNNING
        assert resumed.files.read("/home/user/kept.txt") == "still here"
        assert loop.pid not in [p.pid for p in resumed.commands.list()]
        out = resumed.commands.run("echo $KEPT_ENV; ps -eo comm= | grep -c 'sleep' || true")
        assert out.stdout.split() == ["kept", "0"], out.stdout
        # The memory pause is still the default, and both kinds can follow each other.
        resumed.commands.run("sleep 600", background=True)
        assert resumed.pause() is True
        again = Sandbox.connect(sbx.sandbox_id, timeout=120)
        assert any("sleep 600" in " ".join([p.cmd, *p.args]) for p in again.commands.list())
    finally:
        sbx.kill()


def test_on_timeout_filesystem_pause(server):
    sbx = _create(server, timeout=2,
                  lifecycle={"on_timeout": {"action": "pause", "mode": "filesystem"}})
    try:
        sbx.files.write("/home/user/survives.txt", "yes")
        sbx.commands.run("sleep 600", background=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sbx.get_info().state != SandboxState.PAUSED:
            time.sleep(0.25)
        assert sbx.get_info().state == SandboxState.PAUSED
        resumed = Sandbox.connect(sbx.sandbox_id, timeout=60)
        assert resumed.files.read("/home/user/survives.txt") == "yes"
        assert not any("sleep 600" in " ".join([p.cmd, *p.args])
                       for p in resumed.commands.list())
    finally:
        sbx.kill()


def test_concurrent_creates_with_one_idempotency_key_start_one_sandbox(server):
    distinct = []
    for _ in range(8):
        key = "race-" + uuid.uuid4().hex
        with ThreadPoolExecutor(6) as ex:
            sbxs = list(ex.map(lambda _: _create(server, timeout=60, idempotency_key=key),
                               range(6)))
        ids = {s.sandbox_id: s for s in sbxs}
        distinct.append(len(ids))
        for s in ids.values():
            s.kill()
    assert distinct == [1] * 8, f"distinct sandboxes per round of 6 creates: {distinct}"


def test_list_orders_and_filters_by_start_time_and_template(server):
    tag = uuid.uuid4().hex
    first = _create(server, metadata={"suite": tag})
    time.sleep(1.1)  # startedAt has second resolution on the wire
    cut = datetime.now(timezone.utc)
    second = _create(server, metadata={"suite": tag})
    try:
        q = SandboxQuery(metadata={"suite": tag})
        asc = [s.sandbox_id for s in Sandbox.list(query=q, order="asc").next_items()]
        desc = [s.sandbox_id for s in Sandbox.list(query=q, order="desc").next_items()]
        assert asc == [first.sandbox_id, second.sandbox_id]
        assert desc == [second.sandbox_id, first.sandbox_id]
        after = Sandbox.list(query=SandboxQuery(metadata={"suite": tag}, started_after=cut))
        assert [s.sandbox_id for s in after.next_items()] == [second.sandbox_id]
        by_template = Sandbox.list(query=SandboxQuery(metadata={"suite": tag}, template="base"))
        assert len(by_template.next_items()) == 2
        other = Sandbox.list(query=SandboxQuery(metadata={"suite": tag}, template="nope"))
        assert other.next_items() == []
    finally:
        first.kill()
        second.kill()


def test_connect_never_shortens_a_running_sandboxs_timeout(server):
    sbx = _create(server, timeout=300)
    try:
        end = sbx.get_info().end_at
        Sandbox.connect(sbx.sandbox_id, timeout=10)
        assert sbx.get_info().end_at >= end
        Sandbox.connect(sbx.sandbox_id, timeout=900)
        assert (sbx.get_info().end_at - end).total_seconds() >= 500
    finally:
        sbx.kill()


def test_killing_a_sandbox_ends_its_open_command_streams(server):
    sbx = _create(server)
    handle = sbx.commands.run("sleep 300", background=True, timeout=0)
    started = time.monotonic()
    sbx.kill()
    with pytest.raises(SandboxNotRunningException):
        handle.wait()
    assert time.monotonic() - started < 15, "the stream outlived its sandbox"


async def test_ten_async_sandboxes_at_once(server):
    from e2b import AsyncSandbox

    sbxs = await asyncio.gather(*[AsyncSandbox.create("base", timeout=60, **CREATE) for _ in range(10)])
    server.sandbox_ids.update(s.sandbox_id for s in sbxs)
    try:
        assert len({s.sandbox_id for s in sbxs}) == 10
        outs = await asyncio.gather(*[s.commands.run("hostname") for s in sbxs])
        assert [o.stdout.strip() for o in outs] == [s.sandbox_id for s in sbxs]
    finally:
        assert await asyncio.gather(*[s.kill() for s in sbxs]) == [True] * 10


def test_mountinfo_shows_no_host_path_of_the_binary(server):
    """envd's binary comes in as the sandbox's top layer, not a bind: `/proc/self/mountinfo`
    inside names the overlay's layers relatively and never the binary's host path (a bind
    showed it)."""
    sbx = Sandbox.create("base", timeout=60, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        info = sbx.commands.run("cat /proc/self/mountinfo").stdout
        exe = str(server.binary.resolve())
        assert exe not in info and os.path.dirname(exe) not in info, info
        assert "/.bulkhead" not in info, info
        assert sbx.commands.run("test -x /.bulkhead/bulkhead && echo ok").stdout == "ok\n"
    finally:
        sbx.kill()
