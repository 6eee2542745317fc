"""Commands: the `process.Process` rows of the SDK-to-wire table (spec 3.6), through the
control plane and the edge proxy of a real server."""

import time

import pytest
from e2b import CommandExitException, TimeoutException


def test_run_foreground_returns_stdout_stderr_and_exit_code(sandbox):
    r = sandbox.commands.run("echo out; echo err >&2; whoami; pwd")
    assert r.exit_code == 0
    assert r.stdout == "out\nuser\n/home/user\n"
    assert r.stderr == "err\n"


def test_run_passes_envs_and_cwd(sandbox):
    r = sandbox.commands.run('echo "$GREETING"; pwd', envs={"GREETING": "hi there"}, cwd="/tmp")
    assert r.stdout == "hi there\n/tmp\n"


def test_nonzero_exit_raises_command_exit_exception(sandbox):
    with pytest.raises(CommandExitException) as ei:
        sandbox.commands.run("echo partial; echo bad >&2; exit 3")
    assert ei.value.exit_code == 3
    assert ei.value.stdout == "partial\n"
    assert ei.value.stderr == "bad\n"


def test_background_command_then_wait(sandbox):
    handle = sandbox.commands.run("sleep 0.5; echo done", background=True)
    assert handle.pid > 0
    pids = [p.pid for p in sandbox.commands.list()]
    assert handle.pid in pids
    result = handle.wait()
    assert result.exit_code == 0
    assert result.stdout == "done\n"


def test_connect_to_a_running_command_sees_its_later_output(sandbox):
    handle = sandbox.commands.run(
        "sleep 1; echo late; sleep 0.2", background=True
    )
    handle.disconnect()
    attached = sandbox.commands.connect(handle.pid)
    result = attached.wait()
    assert "late\n" in result.stdout
    assert result.exit_code == 0


def test_send_stdin_reaches_the_process(sandbox):
    handle = sandbox.commands.run("head -n 2", background=True, stdin=True)
    sandbox.commands.send_stdin(handle.pid, "first\n")
    handle.send_stdin("second\n")
    result = handle.wait()
    assert result.stdout == "first\nsecond\n"


def test_kill_stops_a_running_command(sandbox):
    handle = sandbox.commands.run("sleep 300", background=True)
    assert sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as ei:
        handle.wait()
    assert ei.value.exit_code != 0
    assert handle.pid not in [p.pid for p in sandbox.commands.list()]
    assert sandbox.commands.kill(handle.pid) is False


def test_timeout_ends_the_command(sandbox):
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        sandbox.commands.run("sleep 60", timeout=2)
    assert time.monotonic() - started < 20
    # envd uses the deadline as the process lifetime: the sleep is gone, not orphaned.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        procs = [p for p in sandbox.commands.list() if "sleep 60" in " ".join(p.args)]
        if not procs:
            break
        time.sleep(0.2)
    assert not procs, f"the timed-out command is still running: {procs}"


def test_stream_input_then_close_stdin_gives_eof(sandbox):
    handle = sandbox.commands.run("wc -l", background=True, stdin=True)
    sandbox.commands.stream_input(handle.pid, (f"line {i}\n" for i in range(100)))
    sandbox.commands.close_stdin(handle.pid)
    assert handle.wait().stdout.strip() == "100"


def test_run_as_root_and_as_the_default_user(sandbox):
    assert sandbox.commands.run("id -u; echo $HOME", user="root").stdout == "0\n/root\n"
    assert sandbox.commands.run("id -u; echo $HOME").stdout == "1000\n/home/user\n"


def test_list_shows_command_config(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True, envs={"MARK": "m1"},
                                  cwd="/tmp")
    try:
        [info] = [p for p in sandbox.commands.list() if p.pid == handle.pid]
        assert info.cmd == "/bin/bash" and info.args[-1] == "sleep 30"
        assert info.envs.get("MARK") == "m1" and info.cwd == "/tmp"
    finally:
        handle.kill()
