"""Files: envd `/files` and the `filesystem.Filesystem` rows of the SDK-to-wire table
(spec 3.4 to 3.6), through the edge proxy."""

import asyncio
import time

import httpx
import pytest
from e2b import FilesystemEventType, FileType
from e2b.sandbox.filesystem.filesystem import WriteEntry

from compat import FileNotFoundException


def test_write_and_read_text(sandbox):
    info = sandbox.files.write("/home/user/notes/a.txt", "héllo\nworld")
    assert info.path == "/home/user/notes/a.txt"
    assert info.name == "a.txt"
    assert sandbox.files.read("/home/user/notes/a.txt") == "héllo\nworld"
    # The file is the user's and visible to commands.
    r = sandbox.commands.run("stat -c %U /home/user/notes/a.txt; cat /home/user/notes/a.txt")
    assert r.stdout == "user\nhéllo\nworld"


def test_write_and_read_bytes_with_every_byte_value(sandbox):
    data = bytes(range(256)) * 64
    sandbox.files.write("/tmp/blob.bin", data)
    assert sandbox.files.read("/tmp/blob.bin", format="bytes") == data
    streamed = b"".join(sandbox.files.read("/tmp/blob.bin", format="stream"))
    assert streamed == data


def test_relative_paths_resolve_against_home(sandbox):
    sandbox.files.write("rel/x.txt", "x")
    assert sandbox.files.read("/home/user/rel/x.txt") == "x"


def test_write_files_writes_several_files_in_one_request(sandbox):
    infos = sandbox.files.write_files([
        WriteEntry(path="/home/user/multi/one.txt", data="1"),
        WriteEntry(path="/home/user/multi/sub/two.bin", data=b"\x00\x02"),
    ])
    assert sorted(i.path for i in infos) == [
        "/home/user/multi/one.txt", "/home/user/multi/sub/two.bin"]
    assert sandbox.files.read("/home/user/multi/one.txt") == "1"
    assert sandbox.files.read("/home/user/multi/sub/two.bin", format="bytes") == b"\x00\x02"


def test_list_respects_depth(sandbox):
    sandbox.commands.run("mkdir -p /home/user/tree/d1/d2 && touch /home/user/tree/f "
                         "/home/user/tree/d1/g /home/user/tree/d1/d2/h")
    shallow = {e.path: e.type for e in sandbox.files.list("/home/user/tree")}
    assert shallow == {"/home/user/tree/f": FileType.FILE, "/home/user/tree/d1": FileType.DIR}
    deep = {e.path for e in sandbox.files.list("/home/user/tree", depth=3)}
    assert deep == {"/home/user/tree/f", "/home/user/tree/d1", "/home/user/tree/d1/g",
                    "/home/user/tree/d1/d2", "/home/user/tree/d1/d2/h"}


def test_exists_get_info_make_dir_rename_remove(sandbox):
    assert sandbox.files.exists("/home/user/nothing") is False
    assert sandbox.files.make_dir("/home/user/newdir/inner") is True
    assert sandbox.files.make_dir("/home/user/newdir/inner") is False
    assert sandbox.files.get_info("/home/user/newdir/inner").type == FileType.DIR
    sandbox.files.write("/home/user/newdir/inner/f.txt", "abc")
    info = sandbox.files.get_info("/home/user/newdir/inner/f.txt")
    assert (info.type, info.size, info.owner) == (FileType.FILE, 3, "user")
    moved = sandbox.files.rename("/home/user/newdir/inner/f.txt", "/home/user/moved/g.txt")
    assert moved.path == "/home/user/moved/g.txt"
    assert sandbox.files.exists("/home/user/newdir/inner/f.txt") is False
    assert sandbox.files.read("/home/user/moved/g.txt") == "abc"
    sandbox.files.remove("/home/user/newdir")
    assert sandbox.files.exists("/home/user/newdir") is False
    sandbox.files.remove("/home/user/newdir")  # removing a missing path is not an error


def test_read_missing_file_raises_file_not_found(sandbox):
    with pytest.raises(FileNotFoundException):
        sandbox.files.read("/home/user/missing.txt")


def test_write_temp_then_rename_into_place(sandbox):
    """The toolkit's pattern: write a temp file, rename it over the final name."""
    sandbox.files.write("/home/user/out/report.json", '{"v": 1}')
    sandbox.files.write("/home/user/out/.report.json.tmp", '{"v": 2}')
    sandbox.files.rename("/home/user/out/.report.json.tmp", "/home/user/out/report.json")
    assert sandbox.files.read("/home/user/out/report.json") == '{"v": 2}'
    assert [e.name for e in sandbox.files.list("/home/user/out")] == ["report.json"]


def test_watch_dir_sync_polls_events(sandbox):
    sandbox.files.make_dir("/home/user/watched")
    handle = sandbox.files.watch_dir("/home/user/watched")
    try:
        sandbox.files.write("/home/user/watched/new.txt", "x")
        events = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                e.name == "new.txt" and e.type == FilesystemEventType.CREATE for e in events):
            events += handle.get_new_events()
            time.sleep(0.1)
        assert any(e.name == "new.txt" and e.type == FilesystemEventType.CREATE
                   for e in events), events
    finally:
        handle.stop()


async def test_watch_dir_async_streams_events(async_sandbox):
    await async_sandbox.files.make_dir("/home/user/awatched")
    seen: list = []
    got = asyncio.Event()

    def on_event(e):
        seen.append(e)
        if e.name == "a.txt" and e.type == FilesystemEventType.CREATE:
            got.set()

    handle = await async_sandbox.files.watch_dir("/home/user/awatched", on_event, timeout=30)
    try:
        await async_sandbox.files.write("/home/user/awatched/a.txt", "x")
        await asyncio.wait_for(got.wait(), 10)
    finally:
        await handle.stop()
    assert any(e.name == "a.txt" for e in seen)


def test_signed_urls_work_as_plain_links(sandbox, server):
    """The SDK builds signed URLs on E2B_SANDBOX_URL, which names no sandbox: a plain client
    with no routing header reaches the sandbox whose token signed the link. (Through
    E2B_DOMAIN the link's host names the sandbox: test_domain.py.)"""
    up_url = sandbox.upload_url("/home/user/signed.txt")
    assert "signature=" in up_url
    if up_url.startswith(server.sandbox_url):
        assert sandbox.sandbox_id not in up_url
    r = httpx.post(up_url, files={"file": ("signed.txt", b"via url")})
    assert r.status_code == 200, r.text
    assert sandbox.files.read("/home/user/signed.txt") == "via url"
    down_url = sandbox.download_url("/home/user/signed.txt")
    r = httpx.get(down_url)
    assert r.status_code == 200, r.text
    assert r.content == b"via url"


def test_signed_url_with_a_tampered_path_is_refused(sandbox):
    sandbox.files.write("/home/user/other.txt", "secret")
    down_url = sandbox.download_url("/home/user/signed.txt")
    r = httpx.get(down_url.replace("signed.txt", "other.txt"))
    assert r.status_code == 401, r.text
    assert r.json()["code"] == 401
    # A download signature does not authorise an upload of the same path.
    r = httpx.post(down_url, files={"file": ("signed.txt", b"x")})
    assert r.status_code == 401, r.text
    # With the routing headers, envd itself refuses the tampered link.
    r = httpx.get(down_url.replace("signed.txt", "other.txt"),
                  headers={"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "49983"})
    assert r.status_code == 401, r.text


def test_signed_url_expires(sandbox):
    url = sandbox.download_url("/home/user/.profile", use_signature_expiration=1)
    time.sleep(2.2)
    r = httpx.get(url)
    assert r.status_code == 401, r.text
    assert "expired" in r.json()["message"]


def test_unsigned_files_request_without_a_route_is_not_found(server):
    r = httpx.get(f"{server.sandbox_url}/files", params={"path": "/etc/hostname"})
    assert r.status_code == 404, r.text


def test_host_routed_download_url(sandbox, server):
    """Wildcard-domain routing: `Host: 49983-<id>.<domain>` reaches envd without headers."""
    sandbox.files.write("/home/user/hosted.txt", "by host")
    url = sandbox.download_url("/home/user/hosted.txt")
    r = httpx.get(url, headers={"Host": f"49983-{sandbox.sandbox_id}.{server.domain}"})
    assert r.status_code == 200, r.text
    assert r.content == b"by host"


def test_octet_stream_gzip_and_metadata_uploads(sandbox):
    data = b"compressible " * 10_000
    sandbox.files.write("/home/user/gz.bin", data, gzip=True)
    assert sandbox.files.read("/home/user/gz.bin", format="bytes", gzip=True) == data
    sandbox.files.write("/home/user/oct.bin", iter([b"part1-", b"part2"]))
    assert sandbox.files.read("/home/user/oct.bin") == "part1-part2"
    info = sandbox.files.write("/home/user/meta.txt", "m", metadata={"Owner": "agent-7"})
    assert info.metadata == {"owner": "agent-7"}
    assert sandbox.files.get_info("/home/user/meta.txt").metadata == {"owner": "agent-7"}


def test_watch_dir_recursive(sandbox):
    sandbox.files.make_dir("/home/user/rw/a/b")
    handle = sandbox.files.watch_dir("/home/user/rw", recursive=True)
    try:
        sandbox.files.write("/home/user/rw/a/b/deep.txt", "x")
        events = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                e.name.endswith("deep.txt") for e in events):
            events += handle.get_new_events()
            time.sleep(0.1)
        assert any(e.name == "a/b/deep.txt" for e in events), [e.name for e in events]
    finally:
        handle.stop()


def test_file_operations_have_the_users_rights_not_envds(sandbox):
    """Hostile code running as `user` plants a link to /etc/passwd where the agent will write
    its report; the ordinary write must not follow it with envd's root rights (issue: envd
    acted as root). Reads of root's files and listings of private directories fail the same
    way, and `user="root"` still may, as E2B allows."""
    from e2b.exceptions import SandboxException

    sandbox.commands.run(
        "ln -s /etc/passwd ~/report.txt && mkdir -p ~/out && ln -s /root ~/rootdir",
    )
    sandbox.commands.run("echo s3cr3t > /root/secret && chmod 600 /root/secret", user="root")
    before = sandbox.commands.run("sha256sum /etc/passwd").stdout
    with pytest.raises(SandboxException):
        sandbox.files.write("/home/user/report.txt", "pwned\n")
    assert sandbox.commands.run("sha256sum /etc/passwd").stdout == before
    with pytest.raises(SandboxException):
        sandbox.files.write("/home/user/rootdir/planted", "x")
    with pytest.raises(SandboxException):
        sandbox.files.read("/root/secret")
    assert sandbox.files.read("/root/secret", user="root") == "s3cr3t\n"
    with pytest.raises(SandboxException):
        sandbox.files.list("/root")
    assert [e.name for e in sandbox.files.list("/root", user="root")].count("secret") == 1
    # What the user writes is the user's.
    sandbox.files.write("/home/user/out/mine.txt", "ok")
    owner = sandbox.commands.run("stat -c %U:%G /home/user/out/mine.txt").stdout.strip()
    assert owner == "user:user"
