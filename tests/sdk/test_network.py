"""Sandbox egress through the unmodified SDK: E2B's `allow_internet_access` and
`network={allow_out, deny_out}`, `update_network`, and what no policy can open
(docs/SECURITY.md, "Sandbox network"). Destinations are a namespace this test makes
(testnet.py), the host's own addresses, other sandboxes, and in one test the package index.

"refused" below is a connect that failed at once with a reset or an ICMP error; a silently
dropped packet would show as "timeout" (10 s), an accept-then-close as "garbage".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from e2b import Sandbox

from testnet import HTTP_PORT, PROBE, UDP_PORT, FakeInternet


@pytest.fixture(scope="module")
def net():
    n = FakeInternet.create()
    yield n
    n.close()


def probe(sb: Sandbox, kind: str, host: str, port: int) -> str:
    sb.files.write("/tmp/probe.py", PROBE)
    r = sb.commands.run(f"python3 /tmp/probe.py {kind} {host} {port}", timeout=60)
    return r.stdout.strip()


@pytest.fixture
def sandboxes():
    made: list[Sandbox] = []

    def make(**kw) -> Sandbox:
        sb = Sandbox.create(**kw)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.kill()


def test_default_reaches_the_test_host(server, net, sandboxes):
    """SECURITY.md "egress by default": a sandbox created with no network field reaches the
    test host over TCP and UDP, through NAT."""
    sb = sandboxes()
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "ok"
    assert probe(sb, "udp", net.host, UDP_PORT) == "ok:ping"
    assert sb.get_info().allow_internet_access is True


def test_allow_internet_access_true_is_accepted(server, net, sandboxes):
    """SDK 2.45 sends `allow_internet_access: true` on every create."""
    sb = sandboxes(allow_internet_access=True)
    assert probe(sb, "tcp", net.other, HTTP_PORT) == "ok"


def test_internet_off_refuses_everything(server, net, sandboxes):
    """SECURITY.md "allow_internet_access=false": nothing leaves, and a connect is refused
    at once (TCP reset, ICMP admin-prohibited for UDP), never left hanging."""
    sb = sandboxes(allow_internet_access=False)
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "refused"
    assert probe(sb, "udp", net.host, UDP_PORT).startswith("error:")
    assert sb.get_info().allow_internet_access is False


def test_deny_out_by_cidr(server, net, sandboxes):
    """SECURITY.md "deny_out": a denied CIDR is refused; other destinations still pass."""
    sb = sandboxes(network={"deny_out": ["198.51.100.0/24"]})
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "refused"
    assert probe(sb, "tcp", net.other, HTTP_PORT) == "ok"
    assert sb.get_info().network["deny_out"] == ["198.51.100.0/24"]


def test_allow_out_inside_deny_all(server, net, sandboxes):
    """SECURITY.md "allow_out": with everything denied, an allowed address still passes."""
    sb = sandboxes(network={"deny_out": ["0.0.0.0/0"], "allow_out": [net.other]})
    assert probe(sb, "tcp", net.other, HTTP_PORT) == "ok"
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "refused"


def test_update_network_tightens_and_resets_open_flows(server, net, sandboxes):
    """SECURITY.md "update_network": `PUT /sandboxes/{id}/network` replaces the rules on a
    running sandbox, and a connection opened before is reset at its next packet."""
    sb = sandboxes()
    script = (
        "import socket, os, time\n"
        f"s = socket.create_connection(('{net.host}', {HTTP_PORT}), timeout=10)\n"
        "open('/tmp/connected', 'w').close()\n"
        "while not os.path.exists('/tmp/go'): time.sleep(0.05)\n"
        "try:\n"
        "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); d = s.recv(5)\n"
        "    print('ok' if d == b'HTTP/' else 'closed')\n"
        "except ConnectionResetError: print('reset')\n"
        "except socket.timeout: print('timeout')\n"
    )
    sb.files.write("/tmp/flow.py", script)
    handle = sb.commands.run("python3 /tmp/flow.py", background=True)
    for _ in range(200):
        if sb.files.exists("/tmp/connected"):
            break
        time.sleep(0.05)
    sb.update_network({"deny_out": ["198.51.100.0/24"]})
    sb.files.write("/tmp/go", "")
    assert handle.wait().stdout.strip() == "reset"
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "refused"
    # Omitted fields are cleared: an empty update opens it again.
    sb.update_network({})
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "ok"


def test_always_denied_destinations(server, net, sandboxes):
    """SECURITY.md "always denied": the metadata stand-in (169.254/16), the host's own
    addresses and the host's loopback are refused over TCP and UDP even when `allow_out`
    names them; the host itself reaches the stand-in, so it is really there."""
    assert net.host_can_reach(net.metadata)
    listener = socket.create_server(("0.0.0.0", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: [listener.accept() for _ in range(20)], daemon=True).start()
    sb = sandboxes(network={"allow_out": [net.metadata, net.host_end]})
    assert probe(sb, "tcp", net.metadata, HTTP_PORT) == "refused"
    assert probe(sb, "udp", net.metadata, UDP_PORT).startswith("error:")
    assert probe(sb, "tcp", net.host_end, port) == "refused"
    assert probe(sb, "tcp", "127.0.0.1", port) == "refused"
    gateway = sb.commands.run("awk '/^nameserver/{print $2}' /etc/resolv.conf").stdout.strip()
    assert probe(sb, "tcp", gateway, port) == "refused"
    listener.close()


def test_refusals_are_logged_and_counted_per_sandbox(server, net, sandboxes):
    """SECURITY.md "observable": a connection the firewall refuses is logged with the
    sandbox id, destination, port, protocol and the rule, and counted for the sandbox in
    /metrics."""
    import re

    import httpx
    sb = sandboxes()
    assert probe(sb, "tcp", net.metadata, HTTP_PORT) == "refused"
    line = re.compile(
        r"egress connection refused.*sandbox_id=\"?" + re.escape(sb.sandbox_id)
        + r"\"?.*destination=" + re.escape(net.metadata) + rf".*port={HTTP_PORT}"
        + r".*protocol=\"?tcp\"?.*rule=\"?always-denied")
    deadline = time.monotonic() + 5
    while not any(line.search(ln) for ln in server.log_tail(400).splitlines()):
        assert time.monotonic() < deadline, server.log_tail(60)
        time.sleep(0.2)
    r = httpx.get(server.api_url + "/metrics", headers={"X-API-Key": server.api_key}, timeout=30)
    counted = re.search(
        r'^bulkhead_sandbox_egress_refused\{sandbox_id="' + re.escape(sb.sandbox_id)
        + r'"\} (\d+)', r.text, re.M)
    assert counted and int(counted.group(1)) >= 1, r.text


def test_other_sandboxes_unreachable(server, sandboxes):
    """SECURITY.md "other sandboxes": a service on 0.0.0.0 in one sandbox is refused to
    another, while the first reaches it at its own address."""
    a, b = sandboxes(), sandboxes()
    b.commands.run("python3 -m http.server 8000 --bind 0.0.0.0", background=True)
    addr = b.commands.run(
        "python3 -c \"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        "s.connect(('198.51.100.1',9));print(s.getsockname()[0])\"").stdout.strip()
    for _ in range(100):
        if probe(b, "tcp", addr, 8000) == "ok":
            break
        time.sleep(0.1)
    assert probe(b, "tcp", addr, 8000) == "ok"
    assert probe(a, "tcp", addr, 8000) == "refused"


def test_dns_only_through_bulkhead(server, net, sandboxes):
    """SECURITY.md "DNS": names resolve through the host's resolvers, and a query sent to any
    other resolver is answered by Bulkhead's forwarder, never by that resolver."""
    sb = sandboxes()
    assert probe(sb, "dns", net.host, 53) == "dns"
    r = sb.commands.run("python3 -c \"import socket;print(socket.getaddrinfo('pypi.org',443)[0][4][0])\"")
    assert r.stdout.strip()


def test_pip_install_as_default_user(server, sandboxes):
    """The base template installs a pure-Python package from the package index as the
    default user (Debian's externally-managed guard does not stop it)."""
    sb = sandboxes()
    # This machine reaches the index through a TLS-inspecting proxy with its own CA.
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    cert = ""
    if ca.exists():
        sb.files.write("/tmp/host-ca.crt", ca.read_text())
        cert = "--cert /tmp/host-ca.crt"
    r = sb.commands.run(f"pip install --no-cache-dir {cert} six", timeout=180)
    assert r.exit_code == 0, r.stderr
    r = sb.commands.run("python3 -c 'import six; print(six.__file__)'")
    assert r.stdout.strip().startswith("/home/user/.local/"), r.stdout


@pytest.mark.parametrize("network,bad", [
    ({"denyOut": ["198.51.100.0/33"]}, "198.51.100.0/33"),
    ({"allowOut": ["not an address"]}, "not an address"),
    ({"denyOut": ["example.com"]}, "example.com"),
    ({"allowOut": ["pypi.org"]}, "pypi.org"),
    ({"allowOut": ["bad..name"], "denyOut": ["0.0.0.0/0"]}, "bad..name"),
])
def test_bad_rules_are_400_naming_the_value(server, network, bad):
    """An invalid CIDR or name, a domain in deny_out, and a domain in allow_out without
    deny-all (E2B's rule): 400 naming the entry."""
    req = urllib.request.Request(
        f"{server.api_url}/v2/sandboxes", method="POST",
        data=json.dumps({"templateID": "base", "network": network}).encode(),
        headers={"X-API-KEY": server.api_key, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400
    assert bad in json.loads(e.value.read())["message"]


DOMAIN_CASES = r"""
import json, socket, ssl, sys
ca, host = sys.argv[1], sys.argv[2]
def https(name, sni=True):
    ctx = ssl.create_default_context(cafile=ca)
    if not sni:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((name if sni else socket.gethostbyname("pypi.org"), 443), timeout=20)
        s = ctx.wrap_socket(raw, server_hostname=name if sni else None)
        s.sendall(b"HEAD /simple/six/ HTTP/1.1\r\nHost: " + name.encode() + b"\r\nConnection: close\r\n\r\n")
        return "ok" if s.recv(12).startswith(b"HTTP/1.1 200") else "other"
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return "reset"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
def http(addr, name):
    try:
        s = socket.create_connection((addr, 80), timeout=20)
        s.sendall(b"GET / HTTP/1.1\r\nHost: " + name.encode() + b"\r\n\r\n")
        return "answered" if s.recv(5) else "closed"
    except ConnectionResetError:
        return "reset"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
print(json.dumps({
    "allowed": https("pypi.org"),
    "other_name": https("files.pythonhosted.org"),
    "no_sni": https("pypi.org", sni=False),
    "ip_only": http(host, host),
}))
"""


def test_domain_rules_by_sni_and_host(server, net, sandboxes):
    """SECURITY.md "domain rules": with `deny_out: [0.0.0.0/0]`, a name in `allow_out` is
    reached on 443 (TLS SNI checked by the egress proxy, which resolves the name itself);
    another name, TLS without SNI and a bare-address HTTP request are reset, and other ports
    stay refused. Traffic goes only to the package index (and never for refused names)."""
    sb = sandboxes(network={"allow_out": ["pypi.org"], "deny_out": ["0.0.0.0/0"]})
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    sb.files.write("/tmp/host-ca.crt", ca.read_text() if ca.exists() else "")
    sb.files.write("/tmp/domains.py", DOMAIN_CASES)
    out = sb.commands.run(f"python3 /tmp/domains.py /tmp/host-ca.crt {net.host}", timeout=120)
    got = json.loads(out.stdout)
    assert got["allowed"] == "ok", got
    assert got["other_name"] == "reset", got
    assert got["no_sni"] == "reset", got
    assert got["ip_only"] == "reset", got
    assert probe(sb, "tcp", net.host, HTTP_PORT) == "refused"
    assert probe(sb, "udp", net.host, 443).startswith("error:"), "QUIC-style UDP 443 refused"
    assert "pypi.org" in sb.get_info().network["allow_out"]


def test_update_network_resets_proxied_flows(server, sandboxes):
    """SECURITY.md "update_network": a connection the egress proxy relays for a name that the
    new policy drops is ended (reset) when the policy changes."""
    sb = sandboxes(network={"allow_out": ["pypi.org"], "deny_out": ["0.0.0.0/0"]})
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    sb.files.write("/tmp/host-ca.crt", ca.read_text() if ca.exists() else "")
    script = (
        "import os, socket, ssl, time\n"
        "ctx = ssl.create_default_context(cafile='/tmp/host-ca.crt')\n"
        "s = ctx.wrap_socket(socket.create_connection(('pypi.org', 443), timeout=20),"
        " server_hostname='pypi.org')\n"
        "open('/tmp/connected', 'w').close()\n"
        "while not os.path.exists('/tmp/go'): time.sleep(0.05)\n"
        # Nothing is sent, so the server says nothing: only a reset ends this read.
        "try:\n"
        "    d = s.recv(5); print('answered' if d else 'closed')\n"
        "except (ConnectionResetError, ssl.SSLError, BrokenPipeError): print('reset')\n"
        "except socket.timeout: print('timeout')\n"
    )
    sb.files.write("/tmp/flow.py", script)
    handle = sb.commands.run("python3 /tmp/flow.py", background=True)
    for _ in range(400):
        if sb.files.exists("/tmp/connected"):
            break
        time.sleep(0.05)
    assert sb.files.exists("/tmp/connected")
    sb.update_network({"deny_out": ["0.0.0.0/0"]})
    sb.files.write("/tmp/go", "")
    # The proxy resets the connection; Python's TLS layer may report that as an EOF (it
    # suppresses "ragged" EOFs). Either way the idle connection ended, where it would
    # otherwise have waited for its 20 s timeout.
    assert handle.wait().stdout.strip() in ("reset", "closed")


def _serve(binary: Path, *extra: str) -> tuple[subprocess.Popen, dict[str, str], Path]:
    tmp = Path(tempfile.mkdtemp(prefix="bulkhead-net-"))
    tmp.chmod(0o755)
    proc = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / "data"),
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    return proc, {}, tmp


def test_serve_refuses_a_pool_overlapping_a_host_route(server, net):
    """`--sandbox-cidr` overlapping a host route: exit 64 and the route named."""
    proc, _, tmp = _serve(server.binary, "--sandbox-cidr", f"198.51.100.{4 * net.slot}/30")
    _, err = proc.communicate(timeout=60)
    subprocess.run(["rm", "-rf", str(tmp)])
    assert proc.returncode == 64
    assert f"198.51.100.{4 * net.slot}/30" in err.decode() and net.link in err.decode()


def test_pool_exhausted_is_503_and_leaves_nothing(server):
    """An exhausted address pool: 503 with a clear message, and the next create works once
    an address is free again."""
    proc, _, tmp = _serve(server.binary, "--sandbox-cidr", "10.214.255.252/30",
                          "--pool-size", "0")
    exports = {}
    assert proc.stdout is not None
    while len(exports) < 3:
        line = proc.stdout.readline().decode()
        assert line, proc.stderr.read().decode() if proc.stderr else ""
        if line.startswith("export "):
            k, v = line.strip()[7:].split("=", 1)
            exports[k] = v
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    url, key = exports["E2B_API_URL"], exports["E2B_API_KEY"]

    def create():
        req = urllib.request.Request(
            f"{url}/v2/sandboxes", method="POST", data=b'{"templateID":"base"}',
            headers={"X-API-KEY": key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        first, second = create(), create()
        assert first[0] == 201 and second[0] == 201
        code, body = create()
        assert code == 503
        assert "exhausted" in body["message"]
        req = urllib.request.Request(f"{url}/sandboxes/{first[1]['sandboxID']}",
                                     method="DELETE", headers={"X-API-KEY": key})
        urllib.request.urlopen(req, timeout=60)
        assert create()[0] == 201
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(tmp)])
