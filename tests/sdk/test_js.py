"""The pinned JS SDKs (npm `e2b`, `@e2b/code-interpreter`) against the same server:
tests/sdk/js/smoke.cjs and tests/sdk/js/code_interpreter.cjs."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(os.environ.get("BULKHEAD_SDK_JS", "/opt/bulkhead-sdk-js"))


def test_js_sdk_create_run_files_kill(server):
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "e2b").is_dir():
        pytest.fail(f"node or {JS_DIR}/node_modules/e2b is missing: run scripts/ci/setup-30-sdk.sh")
    out = subprocess.run(
        [node, str(Path(__file__).parent / "js" / "smoke.cjs")],
        env={**os.environ, "BULKHEAD_SDK_JS": str(JS_DIR)},
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    server.sandbox_ids.add(report["sandboxId"])
    assert report == {"sandboxId": report["sandboxId"], "killed": True, "killedAgain": False}


def test_js_code_interpreter_run_code_contexts_env_and_timeout(server):
    node = shutil.which("node")
    pkg = JS_DIR / "node_modules" / "@e2b" / "code-interpreter"
    if node is None or not pkg.is_dir():
        pytest.fail(f"node or {pkg} is missing: run scripts/ci/setup-30-sdk.sh")
    out = subprocess.run(
        [node, str(Path(__file__).parent / "js" / "code_interpreter.cjs")],
        env={**os.environ, "BULKHEAD_SDK_JS": str(JS_DIR)},
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    server.sandbox_ids.add(report["sandboxId"])
    assert report == {"sandboxId": report["sandboxId"], "ran": True, "killed": True}
