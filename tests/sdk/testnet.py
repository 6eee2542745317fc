"""A test-made "internet": a network namespace routed from the host, holding documentation
addresses and a link-local metadata stand-in, with HTTP, UDP-echo and fake-resolver listeners.

Each user claims a slot N (a lock file shared with the Rust tests) and gets:
  198.51.100.(4N+2)  the test host (the host end of its link is 198.51.100.(4N+1))
  203.0.113.(200+N)  a second address of the test host
  169.254.200.(N+1)  the metadata stand-in (routed from the host like any other address)
Traffic goes only to these addresses and to 127.0.0.0/8.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from dataclasses import dataclass

LOCK_DIR = "/run/bulkhead-testnet"
HTTP_PORT = 8080
UDP_PORT = 9999

LISTENERS = r"""
import http.server, socket, socketserver, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"test-internet")
    def log_message(self, *a): pass
def udp(port, reply):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048); s.sendto(reply(data), peer)
threading.Thread(target=udp, args=(9999, lambda d: d), daemon=True).start()
threading.Thread(target=udp, args=(53, lambda d: b"not-bulkhead"), daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def _sh(*args: str) -> None:
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, f"{args}: {out.stderr}"


@dataclass
class FakeInternet:
    slot: int
    host: str
    other: str
    metadata: str
    host_end: str
    ns: str
    link: str
    _lock: object
    _server: subprocess.Popen

    @classmethod
    def create(cls) -> "FakeInternet":
        os.makedirs(LOCK_DIR, exist_ok=True)
        for n in range(50):
            f = open(f"{LOCK_DIR}/{n}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            return cls._build(n, f)
        raise AssertionError("no free test network slot in /run/bulkhead-testnet")

    @classmethod
    def _build(cls, n: int, lock) -> "FakeInternet":
        ns, link = f"bhtnet{n}", f"bhtest{n}"
        host_end, host = f"198.51.100.{4 * n + 1}", f"198.51.100.{4 * n + 2}"
        other, metadata = f"203.0.113.{200 + n}", f"169.254.200.{n + 1}"
        subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _sh("ip", "addr", "add", f"{host_end}/30", "dev", link)
        _sh("ip", "link", "set", link, "up")
        for cmd in (
            ["ip", "addr", "add", f"{host}/30", "dev", "eth0"],
            ["ip", "addr", "add", f"{other}/32", "dev", "lo"],
            ["ip", "addr", "add", f"{metadata}/32", "dev", "lo"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "link", "set", "lo", "up"],
            ["ip", "route", "add", "default", "via", host_end],
        ):
            _sh("ip", "netns", "exec", ns, *cmd)
        for dest in (other, metadata):
            _sh("ip", "route", "replace", f"{dest}/32", "via", host)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", LISTENERS],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        net = cls(n, host, other, metadata, host_end, ns, link, lock, server)
        for _ in range(300):
            if net.host_can_reach(host):
                return net
            time.sleep(0.02)
        net.close()
        raise AssertionError("the test internet's listeners did not start")

    def host_can_reach(self, addr: str) -> bool:
        """True when the host itself gets an HTTP answer from `addr` (a positive control)."""
        import socket
        try:
            with socket.create_connection((addr, HTTP_PORT), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return s.recv(5) == b"HTTP/"
        except OSError:
            return False

    def close(self) -> None:
        self._server.kill()
        self._server.wait()
        for dest in (self.other, self.metadata):
            subprocess.run(["ip", "route", "del", f"{dest}/32"], capture_output=True)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        self._lock.close()


# Runs inside sandboxes: one connection attempt, its outcome as one word.
PROBE = r"""
import socket, struct, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "tcp":
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        print("ok" if s.recv(5) == b"HTTP/" else "garbage")
    elif kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
        s.connect((host, port)); s.send(b"ping")
        print("ok:" + s.recv(100).decode(errors="replace"))
    elif kind == "dns":
        q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in "pypi.org".split(".")) + b"\0"
        q += struct.pack(">HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
        s.connect((host, port)); s.send(q); r = s.recv(2048)
        print("dns" if r[:2] == b"\x42\x42" else "other:" + r[:20].decode(errors="replace"))
except ConnectionRefusedError:
    print("refused")
except ConnectionResetError:
    print("reset")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("error:%d" % e.errno)
"""
