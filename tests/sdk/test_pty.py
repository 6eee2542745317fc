"""PTY: create, input, resize, kill (spec 3.6, `pty.*` rows)."""

import time

import pytest
from e2b import CommandExitException, PtySize


def _collect(handle, until: bytes, seconds: float = 20) -> bytes:
    """Reads PTY output of a background handle until `until` appears (or time runs out)."""
    out = bytearray()
    deadline = time.monotonic() + seconds
    for _stdout, _stderr, pty in handle:
        if pty:
            out += pty
        if until in out or time.monotonic() > deadline:
            break
    return bytes(out)


def test_pty_runs_an_interactive_shell_and_resizes(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80))
    sandbox.pty.send_stdin(handle.pid, b"stty size; echo mark-$((40+2))\n")
    first = _collect(handle, b"mark-42")
    assert b"24 80" in first, first
    sandbox.pty.resize(handle.pid, PtySize(rows=30, cols=100))
    sandbox.pty.send_stdin(handle.pid, b"stty size; echo mark-$((40+3))\n")
    second = _collect(handle, b"mark-43")
    assert b"30 100" in second, second
    sandbox.pty.send_stdin(handle.pid, b"exit 0\n")
    result = handle.wait()
    assert result.exit_code == 0


def test_pty_kill_ends_the_shell(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80))
    assert sandbox.pty.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()
    assert handle.pid not in [p.pid for p in sandbox.commands.list()]
