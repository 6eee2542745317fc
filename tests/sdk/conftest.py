"""One real `bulkhead serve` per test session, and sandboxes from it.

The server is the debug (or `$BULKHEAD_BIN`) binary on port 0 with a temporary data dir; the
SDKs find it through the `export` lines it prints, exactly as a user would. At the end the
server gets SIGTERM and the session fails if any sandbox it ran is left behind (a cgroup
named for it, or an entry under the data dir's sandboxes/).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2b import AsyncSandbox, Sandbox

from compat import CREATE

ROOT = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")
EXPORT = re.compile(r"^export (E2B_[A-Z_]+|SSL_CERT_FILE|NODE_EXTRA_CA_CERTS)=(\S+)$")
# The domain pass (netns.sh): the server answers https://api.<domain> and
# https://<port>-<id>.<domain> on 127.0.0.1:443, and the SDKs get only E2B_DOMAIN,
# SSL_CERT_FILE (NODE_EXTRA_CA_CERTS for JS) and E2B_API_KEY, as releases that know no
# E2B_API_URL need.
DOMAIN = os.environ.get("BULKHEAD_SDK_DOMAIN")
ONE_PORT_EXPORTS = ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY")
DOMAIN_EXPORTS = ("E2B_API_KEY", "E2B_DOMAIN", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")


# Tests of SDK features that the oldest release in the matrix (e2b 2.2.0) lacks or words
# differently; every other test is marked `matrix` and runs against every release
# (scripts/test.sh, docs/COMPATIBILITY.md). Name -> what the test needs.
NEWER_SDK_ONLY = {
    "test_send_stdin_reaches_the_process": "CommandHandle.send_stdin",
    "test_stream_input_then_close_stdin_gives_eof": "commands.stream_input",
    "test_octet_stream_gzip_and_metadata_uploads": "files.write(gzip=, metadata=)",
    "test_another_teams_sandbox_is_not_found": "Sandbox.kill answering False on a 404",
    "test_kill_twice_returns_true_then_false": "Sandbox.kill answering False on a 404",
    "test_set_timeout_extends_and_a_short_timeout_ends_the_sandbox":
        "SandboxNotFoundException for an ended sandbox",
    "test_list_filters_by_metadata_and_state_and_paginates": "SandboxQuery(state=) paging",
    "test_list_orders_and_filters_by_start_time_and_template": "Sandbox.list(order=)",
    "test_pause_and_resume_via_connect_keep_files_and_processes": "Sandbox.pause",
    "test_paused_sandbox_does_not_run": "Sandbox.pause",
    "test_on_timeout_pause_pauses_instead_of_killing": "Sandbox.create(lifecycle=)",
    "test_filesystem_pause_ends_processes_and_keeps_files": "Sandbox.pause(mode=)",
    "test_on_timeout_filesystem_pause": "lifecycle on_timeout mode",
    "test_idempotency_key_returns_the_same_sandbox": "Sandbox.create(idempotency_key=)",
    "test_concurrent_creates_with_one_idempotency_key_start_one_sandbox":
        "Sandbox.create(idempotency_key=)",
    "test_timeout_of_zero_is_refused": "sending timeout=0 (2.2 sends its default instead)",
    "test_connect_never_shortens_a_running_sandboxs_timeout": "connect calling the API",
    # Network options and fields that e2b 2.2.0 lacks (it only sends allow_internet_access).
    "test_default_reaches_the_test_host": "SandboxInfo network fields",
    "test_internet_off_refuses_everything": "SandboxInfo network fields",
    "test_deny_out_by_cidr": "Sandbox.create(network=)",
    "test_allow_out_inside_deny_all": "Sandbox.create(network=)",
    "test_update_network_tightens_and_resets_open_flows": "Sandbox.update_network",
    "test_always_denied_destinations": "Sandbox.create(network=)",
    # e2b-code-interpreter 2.0.0 on e2b 2.45.1 fails client-side (no AsyncSandbox._transport).
    "test_run_code_in_the_default_context": "a matching e2b-code-interpreter",
}


# Tests that need the host's own network: its resolvers behind the sandbox's DNS forwarder, or
# the package index. The domain pass runs the server in a network namespace of its own
# (tests/sdk/netns.sh) that has neither, so these run in the pinned release's one-port pass
# only; what they check is server-side and the same for every SDK release.
HOST_NETWORK_ONLY = {
    "test_dns_only_through_bulkhead": "the host's resolvers",
    "test_pip_install_as_default_user": "the package index",
    "test_domain_rules_by_sni_and_host": "names resolved through the host's resolvers",
    "test_update_network_resets_proxied_flows": "names resolved through the host's resolvers",
}


# The code interpreter's own suite needs the pinned e2b-code-interpreter: 2.0.0, the release the
# older venvs carry, fails on e2b 2.45.1 before sending anything (no `Sandbox._transport`). The
# seed's toolkit flow (test_toolkit.py) stays in the matrix.
PINNED_INTERPRETER_ONLY = {"test_code_interpreter"}

# Snapshots and fork arrived in later SDK releases (e2b 2.2.0 and 2.45.1 have no
# create_snapshot or fork), and the template build API these releases drive differs: the
# pinned release only.
PINNED_SDK_ONLY = {"test_snapshots", "test_metrics", "test_agent_toolkit", "test_template_sdk_build"}


def pytest_collection_modifyitems(items):
    for item in items:
        if (
            item.originalname not in NEWER_SDK_ONLY
            and item.originalname not in HOST_NETWORK_ONLY
            and item.module.__name__ not in PINNED_INTERPRETER_ONLY
            and item.module.__name__ not in PINNED_SDK_ONLY
        ):
            item.add_marker(pytest.mark.matrix)


def _binary() -> Path:
    explicit = os.environ.get("BULKHEAD_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR", "/var/cache/bulkhead/target")
    return Path(target) / "debug" / "bulkhead"


@dataclass
class Server:
    """A running `bulkhead serve` and what the SDKs need to reach it."""

    proc: subprocess.Popen
    data_dir: Path
    api_url: str
    sandbox_url: str
    api_key: str
    log: Path
    binary: Path
    # The domain sandboxes are reported under (`get_host`, `<port>-<id>.<domain>` routing).
    domain: str
    sandbox_ids: set[str] = field(default_factory=set)

    def create_key(self, team: str) -> str:
        """A new API key of `team` (created if missing), made with `bulkhead key create`."""
        out = subprocess.run(
            [str(self.binary), "key", "create", "--team", team, "--name", "sdk-tests",
             "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, f"bulkhead key create failed: {out.stderr}"
        return out.stdout.strip().splitlines()[-1]

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def _sandbox_cgroups(ids: set[str]) -> list[str]:
    """Cgroup directories still present for any of `ids`, in any v1 or v2 hierarchy."""
    left = []
    for hierarchy in [CGROUP_ROOT, *CGROUP_ROOT.iterdir()] if CGROUP_ROOT.is_dir() else []:
        parent = hierarchy / "bulkhead"
        for sid in ids:
            if (parent / sid).exists():
                left.append(str(parent / sid))
    return left


@pytest.fixture(scope="session")
def server() -> Server:
    binary = _binary()
    if not binary.exists():
        pytest.fail(
            f"{binary} is missing: build it with `cargo build --locked -p bulkhead` "
            "(same CARGO_TARGET_DIR) or set BULKHEAD_BIN",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail("bulkhead serve needs root (namespaces, cgroups): run as root", pytrace=False)
    tmp = Path(tempfile.mkdtemp(prefix="bulkhead-sdk-"))
    # mkdtemp makes 0700, which the sandboxes' mapped ids cannot traverse to their root.
    tmp.chmod(0o755)
    data_dir = tmp / "data"
    log = tmp / "server.log"
    # stderr (tracing) goes to the log file; stdout is read for the export lines.
    listen = ["--listen", "127.0.0.1:0"]
    wanted = ONE_PORT_EXPORTS
    dns = None
    if DOMAIN:
        listen = ["--listen", "127.0.0.1:443", "--domain", DOMAIN]
        wanted = ONE_PORT_EXPORTS + DOMAIN_EXPORTS
        from dns_responder import serve as serve_dns
        dns = serve_dns(DOMAIN, "127.0.0.1")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(binary), "serve", *listen, "--data-dir", str(data_dir),
             "--pool-size", "2"],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
        )
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while not all(k in exports for k in wanted) and time.monotonic() < deadline:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        m = EXPORT.match(line.strip())
        if m:
            exports[m.group(1)] = m.group(2)
    if not all(k in exports for k in wanted):
        proc.kill()
        proc.wait()
        pytest.fail(
            f"bulkhead serve printed not all of the {wanted} export lines "
            f"(got {exports}); log:\n{log.read_text(errors='replace')[-4000:]}",
            pytrace=False,
        )
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    srv = Server(proc, data_dir, exports["E2B_API_URL"], exports["E2B_SANDBOX_URL"],
                 exports["E2B_API_KEY"], log, binary, DOMAIN or "localhost")
    sdk_env = {k: exports[k] for k in (DOMAIN_EXPORTS if DOMAIN else ONE_PORT_EXPORTS)}
    saved = {k: os.environ.get(k) for k in (*ONE_PORT_EXPORTS, *DOMAIN_EXPORTS)}
    for k in saved:
        os.environ.pop(k, None)
    os.environ.update(sdk_env)
    try:
        yield srv
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            _stop_and_check(srv)
        except BaseException:
            print(f"\nbulkhead serve's data dir and log are kept in {tmp}")
            raise
        if dns is not None:
            dns.close()
        if not os.environ.get("BULKHEAD_SDK_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def _server_alive(request):
    """Fails a test at once, with the server's exit code and log, when the server is gone."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    if srv.proc.poll() is not None:
        pytest.fail(f"bulkhead serve is gone (exit code {srv.proc.returncode}); log:\n"
                    f"{srv.log_tail()}", pytrace=False)
    yield


def _stop_and_check(srv: Server) -> None:
    if srv.proc.poll() is not None:
        pytest.fail(f"bulkhead serve exited by itself during the session with code "
                    f"{srv.proc.returncode}; log:\n{srv.log_tail()}")
    sandboxes_dir = srv.data_dir / "sandboxes"
    # Pooled sandboxes never reach a test, so learn their ids from the data dir too.
    if sandboxes_dir.is_dir():
        srv.sandbox_ids.update(p.name for p in sandboxes_dir.iterdir())
    srv.proc.send_signal(signal.SIGTERM)
    try:
        code = srv.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()
        pytest.fail(f"bulkhead serve ignored SIGTERM for 60 s; log:\n{srv.log_tail()}")
    problems = []
    if code != 0:
        problems.append(f"bulkhead serve exited with {code} after SIGTERM")
    left_dirs = sorted(p.name for p in sandboxes_dir.iterdir()) if sandboxes_dir.is_dir() else []
    if left_dirs:
        problems.append(f"sandbox state left in {sandboxes_dir}: {left_dirs}")
    left_cgroups = _sandbox_cgroups(srv.sandbox_ids)
    if left_cgroups:
        problems.append(f"sandbox cgroups left: {left_cgroups}")
    if not srv.sandbox_ids:
        problems.append("no sandbox id was recorded: the leak check checked nothing")
    if problems:
        pytest.fail("; ".join(problems) + f"\nserver log:\n{srv.log_tail()}")


@pytest.fixture
def sandbox(server: Server):
    """A fresh `base` sandbox, killed afterwards."""
    sbx = Sandbox.create("base", timeout=120, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        yield sbx
    finally:
        sbx.kill()


@pytest.fixture
async def async_sandbox(server: Server):
    """A fresh `base` AsyncSandbox, killed afterwards."""
    sbx = await AsyncSandbox.create("base", timeout=120, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        yield sbx
    finally:
        await sbx.kill()
