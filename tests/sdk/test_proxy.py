"""The edge proxy (spec 1.3): routing by headers and by host, the envd access token, the
paths only the host may call, and ports other than envd's."""

import time

import httpx
import pytest
from compat import CREATE
from e2b import Sandbox


def _headers(sbx, port=49983, **extra):
    return {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": str(port), **extra}


def _token(sbx) -> str:
    token = sbx._envd_access_token
    assert token, "the create response carried no envdAccessToken"
    return token


@pytest.fixture
def web_sandbox(sandbox, server):
    """A sandbox serving its home directory on port 8000."""
    sandbox.files.write("/home/user/www/index.html", "hello from 8000")
    sandbox.commands.run("cd /home/user/www && python3 -m http.server 8000 --bind 127.0.0.1",
                         background=True, timeout=0)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = httpx.get(server.sandbox_url + "/index.html",
                      headers=_headers(sandbox, 8000))
        if r.status_code == 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail("python3 -m http.server never answered on port 8000")
    return sandbox


def test_a_sandbox_port_is_reachable_by_routing_headers(web_sandbox, server):
    r = httpx.get(server.sandbox_url + "/index.html", headers=_headers(web_sandbox, 8000))
    assert r.status_code == 200 and r.text == "hello from 8000"


def test_a_sandbox_port_is_reachable_by_host_label(web_sandbox, server):
    r = httpx.get(server.api_url + "/index.html",
                  headers={"Host": f"8000-{web_sandbox.sandbox_id}.{server.domain}"})
    assert r.status_code == 200 and r.text == "hello from 8000"


def test_get_host_names_a_host_this_server_routes(web_sandbox, server):
    host = web_sandbox.get_host(8000)
    assert host == f"8000-{web_sandbox.sandbox_id}.{server.domain}", host
    r = httpx.get(server.api_url + "/index.html", headers={"Host": host})
    assert r.status_code == 200 and r.text == "hello from 8000"


def test_a_closed_port_is_the_reference_port_not_open_502(sandbox, server):
    r = httpx.get(server.sandbox_url + "/", headers=_headers(sandbox, 8001))
    assert r.status_code == 502
    body = r.json()
    assert "port is not open" in body["message"] and body["sandboxId"] == sandbox.sandbox_id


def test_envd_needs_this_sandboxs_access_token(sandbox, server):
    other = Sandbox.create("base", timeout=60, **CREATE)
    server.sandbox_ids.add(other.sandbox_id)
    try:
        url = server.sandbox_url + "/files?path=/etc/hostname"
        ok = httpx.get(url, headers=_headers(sandbox, **{"X-Access-Token": _token(sandbox)}))
        assert ok.status_code == 200 and ok.text.strip() == sandbox.sandbox_id
        for token in [None, "wrong", _token(other)]:
            h = _headers(sandbox) if token is None else _headers(sandbox, **{"X-Access-Token": token})
            r = httpx.get(url, headers=h)
            assert r.status_code == 401, (token, r.status_code, r.text)
            r = httpx.post(server.sandbox_url + "/process.Process/List", json={},
                           headers={**h, "Content-Type": "application/json"})
            assert r.status_code == 401 or r.json().get("code") == "unauthenticated", \
                (token, r.status_code, r.text)
    finally:
        other.kill()


@pytest.mark.parametrize("path", ["/init", "/init?x=1", "/freeze", "/unfreeze", "/upgrade",
                                  "/fsfreeze", "/fsthaw", "/collapse"])
def test_host_only_envd_paths_are_refused(sandbox, server, path):
    r = httpx.post(server.sandbox_url + path, headers=_headers(sandbox), json={
        "accessToken": "taken-over", "envVars": {"INJECTED": "1"}})
    assert r.status_code == 403, (r.status_code, r.text)
    # The sandbox's own token still works, and nothing was injected.
    assert sandbox.commands.run('echo "[$INJECTED]"').stdout == "[]\n"


@pytest.mark.parametrize("path", ["//init", "/init/", "/./init", "/%69nit", "/INIT"])
def test_host_only_path_spellings_do_not_reach_init(sandbox, server, path):
    r = httpx.post(server.sandbox_url + path, headers=_headers(sandbox), json={
        "accessToken": "taken-over", "envVars": {"INJECTED": "1"}})
    assert not r.is_success, (path, r.status_code, r.text)
    assert sandbox.commands.run('echo "[$INJECTED]"').stdout == "[]\n"
    assert sandbox.files.exists("/home/user")


def test_large_file_round_trip_through_the_proxy(sandbox):
    data = bytes(range(256)) * (24 * 4096)  # 24 MiB
    sandbox.files.write("/home/user/big.bin", data)
    assert sandbox.commands.run("stat -c %s /home/user/big.bin").stdout == f"{len(data)}\n"
    assert sandbox.files.read("/home/user/big.bin", format="bytes") == data
