"""Refusals: what the SDKs raise, and the error bodies on the wire (spec 2.1, 1.3)."""

import subprocess

import httpx
import pytest
from e2b import AuthenticationException, Sandbox, SandboxException

from compat import CREATE, SandboxNotFoundException


def _api(server, method, path, key=None, **kw):
    headers = {"X-API-KEY": server.api_key if key is None else key, **kw.pop("headers", {})}
    return httpx.request(method, server.api_url + path, headers=headers, timeout=30, **kw)


def _assert_error_body(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]


def test_bad_api_key_raises_authentication_exception(server):
    with pytest.raises(AuthenticationException):
        Sandbox.create("base", api_key="not-a-key")
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key="not-a-key").next_items()
    _assert_error_body(_api(server, "GET", "/v2/sandboxes", key="not-a-key"), 401)
    _assert_error_body(httpx.get(server.api_url + "/v2/sandboxes"), 401)


def test_unknown_template_raises_the_sdk_not_found_error(server):
    with pytest.raises(SandboxException) as ei:
        Sandbox.create("no-such-template", **CREATE)
    assert "404" in str(ei.value) and "no-such-template" in str(ei.value), str(ei.value)
    r = _api(server, "POST", "/v2/sandboxes", json={"templateID": "no-such-template"})
    _assert_error_body(r, 404)


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'{"templateID": 5}', b'"base"', b"\xff\xfe", b'{"templateID":"base","timeout":"x"}',
])
def test_malformed_json_gets_400_with_an_error_body(server, body):
    r = _api(server, "POST", "/v2/sandboxes", content=body,
             headers={"Content-Type": "application/json"})
    _assert_error_body(r, 400)


def test_unknown_sandbox_is_404_with_an_error_body(server):
    for method, path in [("GET", "/sandboxes/nosuchsandbox"),
                         ("DELETE", "/sandboxes/nosuchsandbox"),
                         ("POST", "/sandboxes/nosuchsandbox/timeout"),
                         ("POST", "/sandboxes/nosuchsandbox/pause"),
                         ("POST", "/v2/sandboxes/nosuchsandbox/connect"),
                         ("GET", "/sandboxes/nosuchsandbox/metrics")]:
        kw = {"json": {"timeout": 10}} if path.endswith("timeout") else {}
        _assert_error_body(_api(server, method, path, **kw), 404)


def test_proxy_answers_the_reference_502_for_a_gone_sandbox(server):
    r = httpx.get(server.sandbox_url + "/health",
                  headers={"E2b-Sandbox-Id": "gonesandbox", "E2b-Sandbox-Port": "49983"})
    assert r.status_code == 502
    body = r.json()
    assert body["code"] == 502 and "was not found" in body["message"]
    assert body["sandboxId"] == "gonesandbox"


def test_another_teams_sandbox_is_not_found(server, sandbox):
    other = server.create_key("sdk-other-team")
    assert other != server.api_key
    # The other team's key works, but sees none of this team's sandboxes.
    r = _api(server, "GET", "/v2/sandboxes", key=other)
    assert r.status_code == 200 and sandbox.sandbox_id not in {s["sandboxID"] for s in r.json()}
    for method, path in [("GET", f"/sandboxes/{sandbox.sandbox_id}"),
                         ("DELETE", f"/sandboxes/{sandbox.sandbox_id}"),
                         ("POST", f"/sandboxes/{sandbox.sandbox_id}/pause"),
                         ("POST", f"/v2/sandboxes/{sandbox.sandbox_id}/connect"),
                         ("GET", f"/sandboxes/{sandbox.sandbox_id}/metrics")]:
        _assert_error_body(_api(server, method, path, key=other), 404)
    r = _api(server, "POST", f"/sandboxes/{sandbox.sandbox_id}/timeout", key=other,
             json={"timeout": 1})
    _assert_error_body(r, 404)
    # Through the SDK: the not-found answers, and the sandbox is untouched.
    assert Sandbox.kill(sandbox.sandbox_id, api_key=other) is False
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sandbox.sandbox_id, api_key=other)
    assert sandbox.is_running()
    assert sandbox.get_info().state.value == "running"
    assert sandbox.commands.run("echo still").stdout == "still\n"


def test_a_revoked_key_is_refused(server):
    key = server.create_key("sdk-revoked-team")
    assert _api(server, "GET", "/v2/sandboxes", key=key).status_code == 200
    prefix = key[:12]  # the display prefix: "e2b_" and the next 8
    out = subprocess.run([str(server.binary), "key", "revoke", prefix, "--data-dir",
                          str(server.data_dir)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    _assert_error_body(_api(server, "GET", "/v2/sandboxes", key=key), 401)
    with pytest.raises(AuthenticationException):
        Sandbox.create("base", api_key=key, **CREATE)
