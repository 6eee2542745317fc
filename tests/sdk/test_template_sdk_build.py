"""E2B's template build API driven by the unmodified SDK's `Template` builder, as its users
write it: steps (`run_cmd` as root and as a user, `copy` of a file and a directory,
`set_envs`, `set_workdir`, `set_user`, a start command with a ready check), files uploaded by
hash to the URL the server gives (a plain PUT, no key), logs polled from the status
endpoint, then `Sandbox.create(name)`. A second build with nothing changed uploads nothing
again and is cached; a failing step fails `Template.build` with the server's reason."""

import pytest
from compat import CREATE
from e2b import Sandbox, Template


def _template(ctx):
    return (
        Template(file_context_path=str(ctx))
        .from_template("base")
        .run_cmd("echo built-by-root > /opt/marker", user="root")
        .run_cmd("whoami > /tmp/step-user", user="user")
        .copy("app.py", "/home/user/app/")
        .copy("data", "/opt/data", mode=0o755)
        .set_envs({"GREETING": "hello \"world\"", "N": "1"})
        .set_workdir("/home/user/app")
        .set_user("user")
        .set_start_cmd("echo started > /home/user/started", "test -f /home/user/started")
    )


def test_template_build_of_the_sdk_builds_and_serves(server, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "app.py").write_text("print('hi from app')\n")
    (ctx / "data" / "x.txt").write_text("x\n")
    logs = []
    info = Template.build(_template(ctx), "sdk-built", on_build_logs=logs.append,
                          api_key=server.api_key)
    assert info.template_id == "sdk-built"
    messages = [e.message for e in logs]
    assert any("Uploaded 'app.py'" in m for m in messages), messages
    assert any("built" in m for m in messages), messages

    sbx = Sandbox.create("sdk-built", **CREATE, api_key=server.api_key)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        r = sbx.commands.run(
            "cat /opt/marker /tmp/step-user; python3 app.py; cat /opt/data/x.txt; "
            "stat -c %a /opt/data/x.txt; echo \"$GREETING $N\"; pwd; cat /home/user/started")
        assert r.exit_code == 0, r.stderr
        assert r.stdout.splitlines() == [
            "built-by-root", "user", "hi from app", "x", "755",
            'hello "world" 1', "/home/user/app", "started"]
    finally:
        sbx.kill()

    # Nothing changed: the files are not sent again and every step is cached.
    logs = []
    Template.build(_template(ctx), "sdk-built", on_build_logs=logs.append, api_key=server.api_key)
    messages = [e.message for e in logs]
    assert any("Skipping upload of 'app.py'" in m for m in messages), messages
    assert any("cached" in m for m in messages), messages


def test_a_failing_step_fails_the_sdk_build_with_the_reason(server, tmp_path):
    from e2b.exceptions import BuildException

    t = Template(file_context_path=str(tmp_path)).from_template("base").run_cmd("exit 3")
    with pytest.raises(BuildException) as e:
        Template.build(t, "sdk-fails", api_key=server.api_key)
    assert "exit" in str(e.value) or "status 3" in str(e.value), str(e.value)
