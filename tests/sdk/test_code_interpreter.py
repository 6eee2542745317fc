"""The code interpreter (spec 4): the pinned `e2b_code_interpreter` SDK's `run_code` and
contexts against the `code-interpreter` template of a real server (execution server on port
49999, Jupyter kernels inside the sandbox)."""

import base64
import json
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest
from e2b import NotFoundException, SandboxException, TimeoutException
from e2b_code_interpreter import Sandbox


@pytest.fixture
def ci(server):
    """A fresh sandbox of E2B's default code-interpreter template (no template named)."""
    sbx = Sandbox.create(timeout=300)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        yield sbx
    finally:
        sbx.kill()


def png_size(b64: str) -> tuple[int, int]:
    data = base64.b64decode(b64)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_stdout_stderr_and_the_main_result(ci):
    e = ci.run_code("import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7")
    assert e.logs.stdout == ["out\n"]
    assert e.logs.stderr == ["err\n"]
    assert e.text == "42"
    assert e.error is None
    assert isinstance(e.execution_count, int)
    [main] = [r for r in e.results if r.is_main_result]
    assert main.text == "42"


def test_state_is_kept_between_calls(ci):
    ci.run_code("x = 21")
    assert ci.run_code("x * 2").text == "42"


def test_an_exception_fills_execution_error_and_raises_nothing(ci):
    e = ci.run_code("def f():\n    raise ValueError('boom')\nf()")
    assert e.error is not None
    assert e.error.name == "ValueError"
    assert e.error.value == "boom"
    assert "ValueError" in e.error.traceback
    assert "\x1b[" not in e.error.traceback, "tracebacks come without terminal colours"
    assert e.text is None


def test_a_matplotlib_figure_comes_back_as_a_png_of_the_right_size(ci):
    e = ci.run_code(
        "%config InlineBackend.print_figure_kwargs = {'bbox_inches': None}\n"
        "import matplotlib.pyplot as plt\n"
        "fig = plt.figure(figsize=(4, 3), dpi=100)\n"
        "plt.plot([1, 2, 3], [4, 1, 9], label='series')\n"
        "plt.title('a line')\n"
        "plt.show()\n"
    )
    assert e.error is None, e.error
    pngs = [r for r in e.results if r.png]
    assert len(pngs) == 1
    assert pngs[0].is_main_result is False
    assert png_size(pngs[0].png) == (400, 300)
    chart = pngs[0].chart
    assert chart is not None, "e2b-charts extracts the figure's data"
    assert chart.title == "a line"


def test_a_dataframe_comes_back_as_html_and_data(ci):
    e = ci.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    assert e.error is None, e.error
    [main] = [r for r in e.results if r.is_main_result]
    assert "<table" in main.html
    assert main.data == {"a": [1, 2], "b": ["x", "y"]}


def test_display_outputs_are_results_beside_the_main_one(ci):
    e = ci.run_code("from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))\n1")
    assert [(r.is_main_result, r.html, r.text) for r in e.results] == [
        (False, "<b>hi</b>", "<IPython.core.display.HTML object>"),
        (True, None, "1"),
    ]


def test_callbacks_see_stdout_and_results_as_they_come(ci):
    seen_out, seen_results, seen_err = [], [], []
    ci.run_code(
        "print('a')\nprint('b')\n3",
        on_stdout=lambda m: seen_out.append(m.line),
        on_result=lambda r: seen_results.append(r.text),
        on_error=seen_err.append,
    )
    assert "".join(seen_out) == "a\nb\n"
    assert seen_results == ["3"]
    assert seen_err == []


def test_five_concurrent_calls_on_one_sandbox_are_queued_and_all_succeed(ci):
    ci.run_code("counter = []")

    def call(i):
        return ci.run_code(f"import time\ntime.sleep(0.1)\ncounter.append({i})\nprint({i})\n{i} * {i}")

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(call, range(5)))
    assert [r.logs.stdout for r in results] == [[f"{i}\n"] for i in range(5)]
    assert [r.text for r in results] == [str(i * i) for i in range(5)]
    counts = sorted(r.execution_count for r in results)
    assert counts == list(range(counts[0], counts[0] + 5)), "one after the other, none lost"
    assert ci.run_code("sorted(counter)").text == "[0, 1, 2, 3, 4]"


def test_contexts_create_list_restart_remove_with_their_own_cwd_and_state(ci):
    ci.run_code("shared = 'default'")
    ctx = ci.create_code_context(cwd="/tmp")
    assert ctx.cwd == "/tmp"
    assert ctx.language == "python"
    assert ci.run_code("import os\nos.getcwd()", context=ctx).text == "/tmp"
    assert ci.run_code("'shared' in dir()", context=ctx).text == "False"
    assert ci.run_code("import os\nos.getcwd()").text == "/home/user"
    ids = [c.id for c in ci.list_code_contexts()]
    assert ctx.id in ids
    assert len(ids) >= 2, "the default context is listed too"

    ci.run_code("y = 1", context=ctx)
    ci.restart_code_context(ctx)
    e = ci.run_code("y", context=ctx)
    assert e.error is not None and e.error.name == "NameError"
    assert ci.run_code("shared").text == "default", "other contexts keep their state"

    ci.remove_code_context(ctx)
    assert ctx.id not in [c.id for c in ci.list_code_contexts()]
    with pytest.raises(NotFoundException):
        ci.run_code("1", context=ctx)


def test_context_and_language_together_are_refused(ci):
    ctx = ci.create_code_context()
    with pytest.raises(SandboxException):
        ci.run_code("1", context=ctx, language="python")


HOSTILE = {
    "QUOTES": "it's \"quoted\" '''",
    "NEWLINES": "line1\nline2\r\n",
    "SUBST": "$(touch /tmp/pwned) `id` ${HOME}",
    "CODE": "'); import os; os.system('touch /tmp/pwned'); ('",
    "BACKSLASH": "C:\\new\\table\\",
    "UNICODE": "é ü 漢字 \u2028",
}


def test_env_vars_with_hostile_values_hold_for_one_execution_only(ci):
    probe = "import os, json\nprint(json.dumps({k: os.environ.get(k) for k in %r}))" % (
        sorted(HOSTILE) + ["HOME"],)
    before = json.loads(ci.run_code(probe).logs.stdout[0])
    e = ci.run_code(probe, envs={**HOSTILE, "HOME": "/elsewhere"})
    assert e.error is None, e.error
    assert json.loads("".join(e.logs.stdout)) == {**HOSTILE, "HOME": "/elsewhere"}
    after = json.loads(ci.run_code(probe).logs.stdout[0])
    assert after == before
    assert all(after[k] is None for k in HOSTILE)
    assert after["HOME"] == "/home/user"
    assert ci.run_code("import os\nos.path.exists('/tmp/pwned')").text == "False"
    # A subprocess sees them too.
    e = ci.run_code("import subprocess\nprint(subprocess.run(['sh', '-c', 'printf %s \"$SUBST\"'],"
                    " capture_output=True, text=True).stdout)", envs={"SUBST": HOSTILE["SUBST"]})
    assert e.logs.stdout == [HOSTILE["SUBST"] + "\n"]


def test_a_timeout_interrupts_the_cell_and_the_next_call_works(ci):
    ci.run_code("kept = 5")
    with pytest.raises(TimeoutException):
        ci.run_code("while True:\n    pass", timeout=2)
    e = ci.run_code("kept + 1", timeout=30)
    assert e.error is None, e.error
    assert e.text == "6", "an interrupted cell leaves the context's state alone"


def test_a_cell_that_ignores_interrupts_gets_a_fresh_kernel(ci):
    """The SDK gives up after 2 s and disconnects; the server interrupts the cell, which
    ignores it, so 5 s later its kernel is killed and restarted and the next cell runs.
    (Until the edge proxy closed the sandbox's connection when its client left, the
    disconnect did not always reach the execution server and this was an expected failure.)"""
    with pytest.raises(TimeoutException):
        ci.run_code(
            "while True:\n"
            "    try:\n"
            "        while True:\n"
            "            pass\n"
            "    except KeyboardInterrupt:\n"
            "        pass\n",
            timeout=2,
        )
    # 5 s until the kernel is killed, then its restart.
    e = ci.run_code("1 + 1", timeout=30)
    assert e.error is None, e.error
    assert e.text == "2"


def test_a_memory_bomb_is_a_typed_error_and_other_contexts_keep_their_state(ci):
    ci.run_code("kept = 'default'")
    bomb = ci.create_code_context()
    ci.run_code("mine = 1", context=bomb)
    e = ci.run_code("hog = []\nwhile True:\n    hog.append(b'x' * (64 << 20))",
                    context=bomb, timeout=120)
    assert e.error is not None, "the bomb ended without an error"
    assert e.error.name == "KernelDied", e.error
    assert "out-of-memory" in e.error.value, e.error.value
    # Its context has a fresh kernel; the default context never noticed.
    after = ci.run_code("'mine' in dir()", context=bomb, timeout=60)
    assert after.error is None and after.text == "False", after
    assert ci.run_code("kept").text == "default"


def test_bash_cells(ci):
    e = ci.run_code("X=6; echo $((X * 7))", language="bash")
    assert e.error is None, e.error
    assert e.logs.stdout == ["42\n"]
    ctx = ci.create_code_context(language="bash", cwd="/tmp")
    assert ci.run_code("pwd", context=ctx).logs.stdout == ["/tmp\n"]
    e = ci.run_code('printf "%s" "$V"', context=ctx, envs={"V": HOSTILE["SUBST"]})
    assert "".join(e.logs.stdout).rstrip("\n") == HOSTILE["SUBST"]
    assert ci.run_code('echo "[${V-unset}]"', context=ctx).logs.stdout == ["[unset]\n"]


def test_a_language_without_a_kernel_is_refused(ci):
    with pytest.raises(SandboxException):
        ci.run_code("1", language="cobol")


def test_a_filesystem_pause_restarts_the_interpreter_with_files_kept(ci):
    """After `pause(mode="filesystem")` the kernel is gone (a cold start, as on E2B) but the
    interpreter serves again on resume, and files written before the pause are there."""
    assert ci.run_code("x = 41\nopen('/home/user/note.txt', 'w').write('kept')").error is None
    assert ci.pause(mode="filesystem") is True
    again = Sandbox.connect(ci.sandbox_id, timeout=120)
    e = again.run_code("print(open('/home/user/note.txt').read())\n'x' in globals()")
    assert e.error is None, e.error
    assert e.logs.stdout == ["kept\n"]
    assert e.text == "False"


def test_r_cells_through_irkernel(ci):
    """R (Debian's IRkernel): output, values (IRkernel shows a value as display data, so it
    is a result but not the main one), state in a context of its own, errors."""
    e = ci.run_code("x <- c(1, 2, 3)\nprint(sum(x))\nmean(x)", language="r")
    assert e.error is None, e.error
    assert e.logs.stdout == ["[1] 6\n"]
    assert [r.text for r in e.results] == ["[1] 2"]
    ctx = ci.create_code_context(language="r")
    assert ctx.language == "r"
    ci.run_code("y <- 21", context=ctx)
    assert [r.text for r in ci.run_code("y * 2", context=ctx).results] == ["[1] 42"]
    err = ci.run_code("stop('boom')", language="r")
    assert err.error is not None and "boom" in err.error.value


def test_javascript_and_typescript_cells_through_deno(ci):
    """JavaScript and TypeScript (Deno's Jupyter kernel): the main result of every first cell
    of a fresh kernel (Deno publishes it after going idle at times), console output, types,
    errors."""
    for _ in range(3):
        ctx = ci.create_code_context(language="javascript")
        e = ci.run_code("const a = [1, 2, 3]; console.log('hi'); a.reduce((x, y) => x + y)",
                        context=ctx)
        assert e.error is None, e.error
        assert e.logs.stdout == ["hi\n"]
        assert e.text == "6"
    t = ci.run_code("const n: number = 6 * 7; n", language="typescript")
    assert t.error is None, t.error
    assert t.text == "42"
    err = ci.run_code("throw new Error('boom')", language="js")
    assert err.error is not None and (err.error.name, err.error.value) == ("Error", "boom")


def test_a_language_without_a_kernel_is_refused(ci):
    with pytest.raises(SandboxException) as ei:
        ci.run_code("1", language="cobol")
    assert "400" in str(ei.value) and "cobol" in str(ei.value)
