"""The pinned JS SDKs (npm `e2b`, `@e2b/code-interpreter`) against the same server:
tests/sdk/js/smoke.cjs and tests/sdk/js/code_interpreter.cjs."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(os.environ.get("BULKHEAD_SDK_JS", "/opt/bulkhead-sdk-js"))


def _run_js(server, script: str, package: str, timeout: int) -> dict:
    """Runs tests/sdk/js/<script> with node against `server`; returns its JSON report."""
    node = shutil.which("node")
    pkg = JS_DIR / "node_modules" / package
    if node is None or not pkg.is_dir():
        pytest.fail(f"node or {pkg} is missing: run scripts/ci/setup-30-sdk.sh")
    out = subprocess.run(
        [node, str(Path(__file__).parent / "js" / script)],
        env={**os.environ, "BULKHEAD_SDK_JS": str(JS_DIR)},
        capture_output=True, text=True, timeout=timeout,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    server.sandbox_ids.add(report["sandboxId"])
    return report


def test_js_sdk_create_run_files_kill(server):
    report = _run_js(server, "smoke.cjs", "e2b", 120)
    assert report == {"sandboxId": report["sandboxId"], "killed": True, "killedAgain": False}


def test_js_code_interpreter_run_code_contexts_env_and_timeout(server):
    report = _run_js(server, "code_interpreter.cjs", "@e2b/code-interpreter", 300)
    assert report == {"sandboxId": report["sandboxId"], "ran": True, "killed": True}
