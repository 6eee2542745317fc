"""Bad input never yields a 5xx, a panic or a non-JSON error: bounded, deterministic fuzzing
of the control plane's JSON bodies, query strings and path segments (spec 2.1: every error
is `{code: int, message: str}`)."""

import string
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from compat import CREATE
from e2b import Sandbox

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
KEYS = ["templateID", "timeout", "metadata", "envVars", "autoPause", "allow_internet_access",
        "autoResume", "memory", "duration", "secure", "network", "volumeMounts"]
near_valid = st.fixed_dictionaries({}, optional={k: json_values for k in KEYS})
bodies = st.one_of(
    near_valid.map(lambda d: ("json", d)),
    json_values.map(lambda v: ("json", v)),
    st.binary(max_size=64).map(lambda b: ("raw", b)),
)
query_text = st.text(alphabet=string.printable + "éß%&=+\u00ff\u2603", max_size=24)
QUERY_KEYS = ["metadata", "state", "order", "limit", "nextToken", "startedAfter", "template",
              "start", "end"]


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server.api_url, headers={"X-API-KEY": server.api_key},
                      timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def live_id(server):
    sbx = Sandbox.create("base", timeout=300, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    yield sbx.sandbox_id
    sbx.kill()


def check(server, r: httpx.Response) -> None:
    req = f"{r.request.method} {r.request.url} body={r.request.content[:200]!r}"
    assert r.status_code < 500, f"{req} -> {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        assert r.headers.get("content-type", "").startswith("application/json"), \
            f"{req} -> {r.status_code} non-JSON error {r.headers.get('content-type')!r}: {r.text[:300]}"
        body = r.json()
        assert type(body.get("code")) is int and body["code"] == r.status_code, f"{req} -> {body}"
        assert isinstance(body.get("message"), str), f"{req} -> {body}"
    elif r.status_code == 201 and r.request.url.path in ("/v2/sandboxes", "/sandboxes"):
        # A body that happened to be a valid create: don't leak the sandbox.
        sid = r.json()["sandboxID"]
        server.sandbox_ids.add(sid)
        Sandbox.kill(sid)


def _request(client, method, path, **kw) -> httpx.Response:
    """One request; a dropped connection is retried once on a new connection, because an
    idle keep-alive connection may close just as it is reused. Dropped twice is the server
    failing on this input (a panic in a handler, say), and the assertion names the input."""
    try:
        return client.request(method, path, **kw)
    except httpx.RemoteProtocolError:
        pass
    try:
        return httpx.request(method, str(client.base_url.join(path)),
                             headers={**client.headers, **kw.pop("headers", {})}, timeout=30,
                             **kw)
    except httpx.TransportError as e:
        raise AssertionError(f"{method} {path} {kw!r}: no response, twice ({e!r})") from e


def _send(api, method, path, body):
    kind, value = body
    if kind == "json":
        return _request(api, method, path, json=value)
    return _request(api, method, path, content=value,
                    headers={"Content-Type": "application/json"})


@FUZZ
@given(body=bodies, which=st.sampled_from([
    "/v2/sandboxes", "/sandboxes", "/sandboxes/{id}/timeout", "/v2/sandboxes/{id}/connect",
    "/sandboxes/{id}/connect", "/sandboxes/{id}/resume", "/sandboxes/{id}/pause",
    "/sandboxes/{id}/refreshes"]), real=st.booleans())
def test_json_bodies_never_5xx(server, api, live_id, body, which, real):
    path = which.format(id=live_id if real else "nosuchsandbox")
    check(server, _send(api, "POST", path, body))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(QUERY_KEYS), query_text, max_size=4),
       path=st.sampled_from(["/v2/sandboxes", "/sandboxes", "/sandboxes/{id}/metrics"]))
def test_query_strings_never_5xx(server, api, live_id, params, path):
    check(server, _request(api, "GET", path.format(id=live_id), params=params))


@FUZZ
@given(segment=st.text(min_size=1, max_size=30),
       suffix=st.sampled_from(["", "/timeout", "/metrics", "/pause", "/connect"]),
       method=st.sampled_from(["GET", "POST", "DELETE"]))
def test_path_segments_never_5xx(server, api, segment, suffix, method):
    check(server, _request(api, method, "/sandboxes/" + quote(segment, safe="") + suffix))


@pytest.mark.parametrize("path,body", [
    ("/sandboxes/{id}/timeout", {"timeout": 2**63 - 1}),
    ("/v2/sandboxes/{id}/connect", {"timeout": 2**63 - 1}),
    ("/v2/sandboxes", {"templateID": "base", "timeout": 2**63 - 1}),
    ("/sandboxes/{id}/timeout", {"timeout": 2**64}),
    ("/sandboxes/{id}/timeout", {"timeout": -1}),
    ("/sandboxes/{id}/refreshes", {"duration": 2**63 - 1}),
])
def test_extreme_timeouts_never_5xx(server, api, live_id, path, body):
    check(server, api.post(path.format(id=live_id), json=body))


def test_invalid_utf8_path_segment_gets_an_error_body(server, api):
    check(server, api.get("/sandboxes/%FF%FE"))


def test_invalid_utf8_query_gets_an_error_body(server, api):
    check(server, api.get("/v2/sandboxes?metadata=%FF%FE&state=%C3"))
    check(server, api.get("/v2/sandboxes?nextToken=%FF&limit=%00"))


# What an HTTP client will send: visible bytes (obs-text included), no edge whitespace.
header_text = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 0x20 or 0x21 <= c <= 0x7E or c >= 0x80).strip())


@settings(FUZZ, max_examples=60)
@given(api_key=header_text, idem=header_text, content_type=header_text)
def test_headers_never_5xx(server, api_key, idem, content_type):
    """Odd X-API-KEY, Idempotency-Key and Content-Type values on a create that would
    otherwise be valid."""
    r = httpx.post(server.api_url + "/v2/sandboxes", json={"templateID": "no-such-template"},
                   headers={"X-API-KEY": api_key, "Idempotency-Key": idem,
                            "Content-Type": content_type}, timeout=30)
    check(server, r)
    r = httpx.post(server.api_url + "/v2/sandboxes", json={"templateID": "no-such-template"},
                   headers={"X-API-KEY": server.api_key, "Idempotency-Key": idem,
                            "Content-Type": content_type}, timeout=30)
    check(server, r)
