"""The wildcard-domain way to connect (spec 1.2, 1.7): with only E2B_DOMAIN the SDKs reach
`https://api.<domain>` and `https://<port>-<id>.<domain>` on port 443, over TLS with the
local CA that `bulkhead serve` prints as SSL_CERT_FILE. These run in the domain pass
(`netns.sh` with BULKHEAD_SDK_DOMAIN, as scripts/test.sh does for every SDK release); the
one-port pass has no resolver for the domain."""

import os

import httpx
import pytest

from conftest import DOMAIN

pytestmark = pytest.mark.skipif(
    not DOMAIN, reason="domain pass only (scripts/test.sh runs it in netns.sh)")


def test_the_sdk_reaches_the_api_and_envd_through_the_domain(sandbox):
    assert "E2B_API_URL" not in os.environ and "E2B_SANDBOX_URL" not in os.environ
    assert sandbox.connection_config.api_url == f"https://api.{DOMAIN}"
    r = sandbox.commands.run("echo through the domain")
    assert r.stdout == "through the domain\n"


def test_signed_links_on_the_sandbox_host_work_as_plain_links(sandbox):
    sandbox.files.write("/home/user/d.txt", "by domain")
    url = sandbox.download_url("/home/user/d.txt")
    assert url.startswith(f"https://49983-{sandbox.sandbox_id}.{DOMAIN}/files?")
    r = httpx.get(url)
    assert r.status_code == 200, r.text
    assert r.content == b"by domain"
    assert httpx.get(url.replace("d.txt", "e.txt")).status_code == 401
    up = sandbox.upload_url("/home/user/up.txt")
    r = httpx.post(up, files={"file": ("up.txt", b"uploaded")})
    assert r.status_code == 200, r.text
    assert sandbox.files.read("/home/user/up.txt") == "uploaded"


def test_http2_and_http1_both_served_over_tls(server):
    for http2 in (True, False):
        with httpx.Client(http2=http2) as c:
            r = c.get(f"https://api.{DOMAIN}/health")
            assert r.status_code == 204, r.text
            assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


def test_a_streamed_http2_upload_reaches_envd(sandbox):
    """An HTTP/2 body of unknown length (as the JS SDK sends multipart over TLS) is framed
    for the HTTP/1.1 hop into the sandbox."""
    def body():
        yield b'--b0und\r\nContent-Disposition: form-data; name="file"; filename="s"\r\n\r\n'
        yield b"streamed\r\n--b0und--\r\n"

    with httpx.Client(http2=True) as c:
        r = c.post(sandbox.upload_url("/home/user/streamed.txt"), content=body(),
                   headers={"content-type": "multipart/form-data; boundary=b0und"})
    assert r.status_code == 200 and r.http_version == "HTTP/2", r.text
    assert sandbox.files.read("/home/user/streamed.txt") == "streamed"
