"""The agent toolkit's flow (seed-system.md): `e2b_code_interpreter.AsyncSandbox` of the
code-interpreter template created with envs and a timeout, reused across calls (commands,
files, `run_code`), health-checked before each, killed at the end."""

import asyncio

import pytest
from compat import CREATE
from e2b import CommandExitException, TimeoutException
from e2b_code_interpreter import AsyncSandbox

ENVS = {"STORAGE_BASE_PATH": "/opt/sentient", "ROMA_S3_BUCKET": "bucket-x",
        "AWS_REGION": "eu-west-1"}


@pytest.fixture
async def toolkit_sandbox(server):
    sbx = await AsyncSandbox.create(template="code-interpreter", timeout=300, envs=ENVS, **CREATE,
                                    api_key=server.api_key)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        yield sbx
    finally:
        await sbx.kill()


async def test_envs_at_create_are_visible_and_the_sandbox_is_reused(toolkit_sandbox):
    sbx = toolkit_sandbox
    for i in range(3):
        assert await sbx.is_running() is True
        r = await sbx.commands.run(
            'echo "$STORAGE_BASE_PATH $ROMA_S3_BUCKET $AWS_REGION"', timeout=30)
        assert r.stdout == "/opt/sentient bucket-x eu-west-1\n"
        await sbx.files.write(f"/home/user/step{i}.bin", bytes([i]) * 10)
    for i in range(3):
        assert await sbx.files.read(f"/home/user/step{i}.bin", format="bytes") == bytes([i]) * 10
    # Per-command envs override the sandbox's.
    r = await sbx.commands.run('echo "$AWS_REGION"', envs={"AWS_REGION": "us-east-1"})
    assert r.stdout == "us-east-1\n"
    with pytest.raises(CommandExitException) as ei:
        await sbx.commands.run("exit 7", timeout=30)
    assert ei.value.exit_code == 7


async def test_five_concurrent_commands_on_one_sandbox_all_succeed(toolkit_sandbox):
    sbx = toolkit_sandbox
    results = await asyncio.gather(*[
        sbx.commands.run(f"sleep 0.3; echo {i}; python3 -c 'print({i} * {i})'", timeout=60)
        for i in range(5)
    ])
    assert [r.stdout for r in results] == [f"{i}\n{i * i}\n" for i in range(5)]
    assert all(r.exit_code == 0 for r in results)


async def test_five_concurrent_file_round_trips(toolkit_sandbox):
    sbx = toolkit_sandbox
    payloads = {f"/home/user/c/{i}.txt": f"payload {i}" * 1000 for i in range(5)}
    await asyncio.gather(*[sbx.files.write(p, d) for p, d in payloads.items()])
    read = await asyncio.gather(*[sbx.files.read(p) for p in payloads])
    assert read == list(payloads.values())


async def test_write_temp_then_rename_async(toolkit_sandbox):
    sbx = toolkit_sandbox
    base = "/home/user/executions/e1/results"
    await sbx.files.write(f"{base}/.plot.png.tmp", b"\x89PNG fake")
    await sbx.files.rename(f"{base}/.plot.png.tmp", f"{base}/plot.png")
    assert await sbx.files.read(f"{base}/plot.png", format="bytes") == b"\x89PNG fake"
    assert not await sbx.files.exists(f"{base}/.plot.png.tmp")


async def test_dead_sandbox_is_detected_before_a_call(server):
    sbx = await AsyncSandbox.create(template="base", timeout=300, envs=ENVS, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    assert await sbx.kill() is True
    assert await sbx.is_running() is False
    assert await sbx.kill() is False


async def test_run_code_in_the_default_context(toolkit_sandbox):
    execution = await toolkit_sandbox.run_code("x = 21\nprint(x * 2)\nx")
    assert execution.logs.stdout == ["42\n"]
    assert execution.text == "21"
    # The sandbox's envs reach the kernel on its first use, and stay.
    execution = await toolkit_sandbox.run_code("import os\nos.environ['ROMA_S3_BUCKET']")
    assert execution.text == "bucket-x"
    execution = await toolkit_sandbox.run_code("x + 1")
    assert execution.text == "22"
