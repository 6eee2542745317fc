"""A template directory in the seed's shape (e2b.toml + multi-stage e2b.Dockerfile + a
start-up script, built with --build-arg and --secret), built with `bulkhead template build`
and used from the unmodified SDK by name, as the seed's toolkit does."""

import os
import subprocess
import uuid

import pytest
from compat import CREATE
from e2b import Sandbox

NAME = "sdk-seed-template"

DOCKERFILE = """\
ARG PYTHON_BASE=bulkhead/debian
FROM ${PYTHON_BASE} AS tools
RUN mkdir -p /opt/tools && echo "tool v1" > /opt/tools/VERSION

FROM ${PYTHON_BASE}
ARG AWS_REGION=us-east-1
ARG S3_BUCKET_NAME
ENV AWS_REGION=${AWS_REGION} ROMA_S3_BUCKET=${S3_BUCKET_NAME} STORAGE_BASE_PATH=/opt/sentient
COPY --from=tools /opt/tools /opt/tools
RUN --mount=type=secret,id=aws_access_key_id \\
    --mount=type=secret,id=aws_secret_access_key \\
    test -s /run/secrets/aws_access_key_id && test -s /run/secrets/aws_secret_access_key \\
    && echo "credentials seen at build time"
COPY start-up.sh /usr/local/bin/start-up.sh
RUN chmod 755 /usr/local/bin/start-up.sh
WORKDIR /home/user
"""

START_UP = """\
#!/bin/sh
echo "[E2B-SETUP] starting"
mkdir -p /opt/setup && date +%s > /opt/setup/ran-at
echo "[E2B-SETUP] done"
"""


@pytest.fixture(scope="module")
def template(server, tmp_path_factory):
    d = tmp_path_factory.mktemp("seed-template")
    (d / "e2b.toml").write_text(
        f'team_id = "t-ignored"\ntemplate_name = "{NAME}"\n'
        'dockerfile = "e2b.Dockerfile"\nstart_cmd = "/usr/local/bin/start-up.sh"\n')
    (d / "e2b.Dockerfile").write_text(DOCKERFILE)
    (d / "start-up.sh").write_text(START_UP)
    secrets = tmp_path_factory.mktemp("secrets")
    key_id = secrets / "aws_access_key_id"
    key_id.write_text("AKIA" + uuid.uuid4().hex[:16].upper())
    secret = secrets / "aws_secret_access_key"
    secret.write_text(uuid.uuid4().hex)
    out = subprocess.run(
        [str(server.binary), "template", "build", str(d),
         "--server", server.api_url, "--data-dir", "/nonexistent",
         "--build-arg", "AWS_REGION=eu-west-1", "--build-arg", "S3_BUCKET_NAME=bucket-x",
         "--secret", f"id=aws_access_key_id,src={key_id}",
         "--secret", f"id=aws_secret_access_key,src={secret}"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "E2B_API_KEY": server.api_key})
    assert out.returncode == 0, f"build failed:\n{out.stdout}\n{out.stderr}"
    log = out.stderr
    assert "credentials seen at build time" in log
    assert "[start_cmd] [E2B-SETUP] done" in log
    for v in (key_id.read_text(), secret.read_text()):
        assert v not in log and v not in out.stdout
    return NAME


def test_a_built_template_is_created_by_name(server, template):
    sbx = Sandbox.create(template, envs={"PER_CREATE": "yes"}, **CREATE,
                         api_key=server.api_key)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        r = sbx.commands.run(
            'echo "$AWS_REGION $ROMA_S3_BUCKET $STORAGE_BASE_PATH $PER_CREATE"; '
            "cat /opt/tools/VERSION; cat /opt/setup/ran-at >/dev/null && echo setup-ran; "
            "test -d /opt/sentient && echo storage")
        assert r.exit_code == 0, r.stderr
        assert r.stdout.splitlines() == [
            "eu-west-1 bucket-x /opt/sentient yes", "tool v1", "setup-ran", "storage"]
        # The build's secrets are in no file and no environment of the sandbox.
        r = sbx.commands.run("ls /run/secrets 2>&1; env | grep -c AWS_SECRET; true")
        assert "No such file" in r.stdout
        assert r.stdout.strip().endswith("0")
    finally:
        sbx.kill()


def test_the_start_cmd_ran_once_at_build_not_per_sandbox(server, template):
    stamps = set()
    for _ in range(2):
        sbx = Sandbox.create(template, **CREATE, api_key=server.api_key)
        server.sandbox_ids.add(sbx.sandbox_id)
        try:
            stamps.add(sbx.files.read("/opt/setup/ran-at"))
        finally:
            sbx.kill()
    assert len(stamps) == 1


def test_a_built_template_is_its_teams_only(server, template):
    """As on E2B, a template a team builds is that team's: another team's key does not see it
    in the list, cannot create from it or delete it (told it does not exist), is told its
    alias is taken, and cannot build over the name; the server's own `base` stays everyone's."""
    import httpx
    from e2b.exceptions import SandboxException

    other = server.create_key("templates-other-team")
    get = lambda path, key: httpx.get(server.api_url + path, headers={"X-API-Key": key}, timeout=30)

    mine = [t for t in get("/templates", server.api_key).json() if t["templateID"] == NAME]
    assert len(mine) == 1 and mine[0]["public"] is False
    theirs = get("/templates", other).json()
    assert NAME not in [t["templateID"] for t in theirs]
    assert "base" in [t["templateID"] for t in theirs]
    assert next(t for t in theirs if t["templateID"] == "base")["public"] is True

    assert get(f"/templates/aliases/{NAME}", server.api_key).status_code == 200
    assert get(f"/templates/aliases/{NAME}", other).status_code == 403
    assert get(f"/bulkhead/v1/templates/{NAME}", other).status_code == 404
    assert httpx.delete(f"{server.api_url}/templates/{NAME}", headers={"X-API-Key": other},
                        timeout=30).status_code == 404
    with pytest.raises(SandboxException):
        Sandbox.create(NAME, **CREATE, api_key=other)
    # The other team's own base works.
    sbx = Sandbox.create("base", **CREATE, api_key=other)
    server.sandbox_ids.add(sbx.sandbox_id)
    sbx.kill()

    # A build over the name by the other team is refused before anything runs.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "e2b.Dockerfile"), "w").write("FROM bulkhead/debian\nRUN true\n")
        out = subprocess.run(
            [str(server.binary), "template", "build", d, "--name", NAME,
             "--server", server.api_url, "--data-dir", "/nonexistent"],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            env={**os.environ, "E2B_API_KEY": other})
    assert out.returncode != 0
    assert "taken" in out.stderr, out.stderr

    def other_build(dockerfile, name):
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "e2b.Dockerfile"), "w").write(dockerfile)
            return subprocess.run(
                [str(server.binary), "template", "build", d, "--name", name,
                 "--server", server.api_url, "--data-dir", "/nonexistent"],
                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                env={**os.environ, "E2B_API_KEY": other})

    # Nor build on it, nor read a host path as the base, nor replace the server's base.
    out = other_build(f"FROM bulkhead-template/{NAME}:latest\nRUN true\n", "sneaky")
    assert out.returncode != 0 and "no template" in (out.stdout + out.stderr), out.stderr
    out = other_build("FROM /var/lib\n", "hostpath")
    assert out.returncode != 0 and "path on the server" in (out.stdout + out.stderr), out.stderr
    out = other_build("FROM bulkhead/debian\nRUN true\n", "base")
    assert out.returncode != 0 and "server's" in out.stderr, out.stderr
    assert httpx.delete(f"{server.api_url}/templates/base", headers={"X-API-Key": other},
                        timeout=30).status_code in (403, 404)
    # The image store is the operator's.
    assert get("/bulkhead/v1/images", other).status_code == 403
    assert get("/bulkhead/v1/images", server.api_key).status_code == 200
    assert httpx.post(f"{server.api_url}/bulkhead/v1/images/import", headers={"X-API-Key": other},
                      json={"path": "/etc", "name": "etc:1"}, timeout=30).status_code == 403
    # Still the first team's, and still served.
    assert len([t for t in get("/templates", server.api_key).json() if t["templateID"] == NAME]) == 1
