"""A tiny DNS responder for the domain pass of the SDK suite: A queries for `<domain>` and
every name under it get `address`; other names get NXDOMAIN, other record types an empty
answer. Serves UDP on 127.0.0.1:53 of the network namespace the suite runs in (see
netns.sh), on a daemon thread."""

from __future__ import annotations

import socket
import struct
import threading


def _qname_end(packet: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while True:
        n = packet[offset]
        if n == 0:
            return ".".join(labels), offset + 1
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(packet[offset + 1:offset + 1 + n].decode("ascii", "replace"))
        offset += 1 + n


def answer(query: bytes, domain: str, address: str) -> bytes | None:
    """The response to one query packet, or None for a packet that is no query."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    try:
        name, end = _qname_end(query, 12)
    except (IndexError, ValueError):
        return None
    if end + 4 > len(query):
        return None
    qtype, _qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    name = name.lower().rstrip(".")
    ours = name == domain or name.endswith("." + domain)
    rd = flags & 0x0100
    if not ours:
        return struct.pack("!HHHHHH", qid, 0x8083 | rd, 1, 0, 0, 0) + question
    answers = b""
    if qtype == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, 1 if answers else 0, 0, 0) \
        + question + answers


def serve(domain: str, address: str, bind: str = "127.0.0.1") -> socket.socket:
    """Starts answering on `bind`:53; closing the returned socket stops it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, 53))

    def loop() -> None:
        while True:
            try:
                query, peer = sock.recvfrom(512)
            except OSError:
                return
            response = answer(query, domain.lower(), address)
            if response is not None:
                try:
                    sock.sendto(response, peer)
                except OSError:
                    pass

    threading.Thread(target=loop, daemon=True, name="dns").start()
    return sock
