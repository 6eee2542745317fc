#!/usr/bin/env python3
"""Hostile probe run inside Bulkhead sandboxes by the test suite.

Each subcommand tries one thing sandboxed code must not be able to do and prints one JSON
object: {"action": ..., "ok": <did the forbidden thing succeed>, "errno": ..., "detail": ...}
(`syscalls` prints one per call it makes). The tests assert "ok": false. Only the standard
library is used (ctypes for raw syscalls). No syscall number is written here: `syscalls` takes
the runtime's seccomp policy table as JSON, numbers included.
"""
import ctypes
import errno
import json
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def out(action, ok, err=0, detail=""):
    print(json.dumps({"action": action, "ok": ok, "errno": err, "detail": detail}))


def rule_cases(rule):
    """Argument vectors that the seccomp rule `rule` (a row of the runtime's policy table, as
    JSON) refuses: zeros for a rule that refuses every call, else values chosen from its
    condition."""
    refuse = rule["refuse"]
    if refuse == "always":
        return [[0] * 6]
    if "arg0_not_in" in refuse:
        allowed = set(refuse["arg0_not_in"])
        value = next(v for v in range(1, 1 << 16) if v not in allowed)
        return [[value, 0, 0, 0, 0, 0]]
    if "arg0_any_bit" in refuse:
        return [[bit, 0, 0, 0, 0, 0] for bit in refuse["arg0_any_bit"]]
    raise ValueError("unknown rule %r" % refuse)


def syscalls(table_json):
    """Calls every row of the seccomp policy table; one JSON line per call."""
    me = os.getpid()
    for rule in json.loads(table_json):
        for args in rule_cases(rule):
            rc = libc.syscall(ctypes.c_long(rule["nr"]), *[ctypes.c_ulong(a) for a in args])
            e = ctypes.get_errno()
            if os.getpid() != me:
                os._exit(0)  # a clone that the filter let through: the child leaves at once
            print(json.dumps({
                "action": "syscall:" + rule["name"], "ok": rc >= 0, "errno": e,
                "expected": rule["errno"], "args": args,
                "detail": os.strerror(e) if rc < 0 else "returned %d" % rc,
            }))


def numbers(pairs_json):
    """Calls each syscall number of `pairs_json` ([[nr, expected errno], ...], the runtime's
    blocked set) with zero arguments, as amicontained does; one JSON line per number. The
    filter stops these before the kernel, so the zeros never reach a real implementation."""
    me = os.getpid()
    for nr, expected in json.loads(pairs_json):
        rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(0)] * 6)
        e = ctypes.get_errno()
        if os.getpid() != me:
            os._exit(0)
        print(json.dumps({
            "action": "nr:%d" % nr, "ok": rc >= 0, "errno": e, "expected": expected,
            "detail": os.strerror(e) if rc < 0 else "returned %d" % rc,
        }), flush=True)


def unshare_user():
    CLONE_NEWUSER = 0x10000000
    rc = libc.unshare(CLONE_NEWUSER)
    e = ctypes.get_errno()
    out("unshare-user", rc == 0, e, os.strerror(e))


def write_file(path, data=b"1"):
    try:
        with open(path, "wb") as f:
            f.write(data)
        out("write:" + path, True)
    except OSError as ex:
        out("write:" + path, False, ex.errno, str(ex))


def read_file(path):
    try:
        with open(path, "rb") as f:
            data = f.read(64)
        out("read:" + path, True, 0, data.decode(errors="replace"))
    except OSError as ex:
        out("read:" + path, False, ex.errno, str(ex))


def raw_socket():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        out("raw-socket", True)
    except OSError as ex:
        out("raw-socket", False, ex.errno, str(ex))


def connect(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", int(port)))
        out("connect:" + port, True)
    except OSError as ex:
        out("connect:" + port, False, ex.errno or errno.ETIMEDOUT, str(ex))


def kill(pid):
    try:
        os.kill(int(pid), 9)
        out("kill:" + pid, True)
    except OSError as ex:
        out("kill:" + pid, False, ex.errno, str(ex))


def ptrace(pid):
    PTRACE_ATTACH = 16
    rc = libc.ptrace(PTRACE_ATTACH, int(pid), 0, 0)
    e = ctypes.get_errno()
    out("ptrace:" + pid, rc == 0, e, os.strerror(e))


def memory_bomb():
    blocks = []
    try:
        while True:
            blocks.append(bytearray(64 << 20))
    except MemoryError:
        out("memory-bomb", False, errno.ENOMEM, "MemoryError")


def disk_fill(path):
    written = 0
    try:
        with open(path, "wb") as f:
            chunk = b"x" * (1 << 20)
            while True:
                f.write(chunk)
                f.flush()
                written += len(chunk)
    except OSError as ex:
        out("disk-fill", False, ex.errno, "wrote %d bytes" % written)


def fork_bomb():
    children = 0
    err = 0
    for _ in range(100000):
        try:
            pid = os.fork()
        except OSError as ex:
            err = ex.errno
            break
        if pid == 0:
            import time
            os.closerange(0, 3)  # don't hold the caller's pipes open
            time.sleep(30)
            os._exit(0)
        children += 1
    out("fork-bomb", err == 0, err, "forked %d" % children)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    table = {
        "syscalls": lambda: syscalls(args[0]),
        "numbers": lambda: numbers(args[0]),
        "unshare-user": unshare_user,
        "write": lambda: write_file(args[0]),
        "read": lambda: read_file(args[0]),
        "raw-socket": raw_socket,
        "connect": lambda: connect(args[0]),
        "kill": lambda: kill(args[0]),
        "ptrace": lambda: ptrace(args[0]),
        "memory-bomb": memory_bomb,
        "disk-fill": lambda: disk_fill(args[0]),
        "fork-bomb": fork_bomb,
    }
    table[cmd]()


if __name__ == "__main__":
    main()
