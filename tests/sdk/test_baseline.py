"""The SDK's `commands.run` gives a command the same environment baseline, signal state and
user resolution as `bulkhead run` and `bulkhead sandbox exec`: the one written down in
tests/process-baseline.json (crates/bulkhead/tests/process_baseline.rs checks the other two)."""

import json
from pathlib import Path

import pytest

BASELINE = json.loads((Path(__file__).resolve().parents[1] / "process-baseline.json").read_text())


@pytest.mark.parametrize("user", ["root", "user"])
def test_commands_run_gives_the_process_baseline(sandbox, user):
    r = sandbox.commands.run(BASELINE["script"], user=user)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == BASELINE["expected"][user]


def test_supplementary_groups_come_from_the_sandboxs_group_file(sandbox):
    sandbox.commands.run(f"echo '{BASELINE['extra_group']}' >> /etc/group", user="root")
    r = sandbox.commands.run(BASELINE["script"], user="user")
    assert r.stdout.splitlines() == BASELINE["expected"]["user_in_extra_group"]
