#!/usr/bin/env python3
"""S3 mount benchmark: Bulkhead's mount vs s3fs vs rclone mount vs a direct S3 client.

One command, all clients against the same moto_server in the same run; prints a table and
writes JSON. Run as root (FUSE mounts, drop_caches) with the venv from
scripts/ci/setup-20-s3.sh:

    /opt/bulkhead-venv/bin/python bench/s3fs/run.py --bulkhead target/release/bulkhead

Workloads (see BENCHMARKS.md): sequential write then read of one file (--size-mib), N
creates of 4 KiB files (--files), `ls -l` of those files on a fresh mount, `rm -rf` of
them, and `ls -l` of --many files (written with boto3) on a fresh mount. Clients:
direct (boto3), bulkhead (stored attributes), bulkhead-uniform (--attributes uniform),
s3fs, rclone. bench/s3fs/gate.py is the CI-sized listing check built on the same helpers.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

KEY, SECRET = "bench", "bench"
CHUNK = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def wait_mounted(path, proc=None, timeout=30):
    deadline = time.time() + timeout
    while not is_mounted(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mount process exited with {proc.returncode}")
        if time.time() > deadline:
            raise RuntimeError(f"{path} not mounted after {timeout}s")
        time.sleep(0.05)


def drop_caches():
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def clean_env():
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    return env


class Mount:
    """Starts one FUSE client on a bucket; `rss_kib` reads its peak RSS when known."""

    def __init__(self, kind, endpoint, bucket, mnt, bulkhead, workdir, extra=None):
        self.kind, self.endpoint, self.bucket, self.mnt = kind, endpoint, bucket, mnt
        self.bulkhead, self.workdir, self.proc = bulkhead, workdir, None
        self.extra = list(extra or [])
        if kind == "bulkhead-uniform":
            self.kind, self.extra = "bulkhead", self.extra + ["--attributes", "uniform"]

    def start(self):
        env = clean_env()
        if self.kind == "bulkhead":
            cmd = [self.bulkhead, "mount", self.bucket, self.mnt, "--endpoint", self.endpoint,
                   "-f"] + self.extra
        elif self.kind == "s3fs":
            pw = os.path.join(self.workdir, "passwd-s3fs")
            with open(pw, "w") as f:
                f.write(f"{KEY}:{SECRET}\n")
            os.chmod(pw, 0o600)
            cmd = ["s3fs", self.bucket, self.mnt, "-f", "-o", f"url={self.endpoint}",
                   "-o", "use_path_request_style", "-o", f"passwd_file={pw}"]
        elif self.kind == "rclone":
            env.update(RCLONE_CONFIG_MOTO_TYPE="s3", RCLONE_CONFIG_MOTO_PROVIDER="Other",
                       RCLONE_CONFIG_MOTO_ENDPOINT=self.endpoint,
                       RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=KEY,
                       RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=SECRET)
            # Cache mode "off" streams unknown-size multipart uploads that moto_server refuses
            # (400), so rclone runs in its common "writes" mode: files are staged locally.
            cmd = ["rclone", "mount", f"moto:{self.bucket}", self.mnt, "--vfs-cache-mode", "writes",
                   "--cache-dir", tempfile.mkdtemp(dir=self.workdir)]
        else:
            raise ValueError(self.kind)
        # BENCH_MOUNT_LOG=FILE keeps the clients' logs (add -vv to `extra` for ours).
        log = os.environ.get("BENCH_MOUNT_LOG")
        err = open(log, "a") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err)
        if log:
            err.close()
        wait_mounted(self.mnt, self.proc)

    peak_kib = 0

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self):
        self.peak_kib = max(self.peak_kib, self.rss_kib() or 0)
        subprocess.run(["umount", self.mnt], check=False, stderr=subprocess.DEVNULL)
        if is_mounted(self.mnt):
            subprocess.run(["umount", "-l", self.mnt], check=False)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fs_write(path, data, size):
    def run():
        with open(path, "wb") as f:
            for off in range(0, size, CHUNK):
                f.write(data[off:off + CHUNK])
    return timed(run)


def fs_read(path, size):
    def run():
        n = 0
        with open(path, "rb", buffering=0) as f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    break
                n += len(b)
        if n != size:
            raise RuntimeError(f"read {n} bytes, expected {size}")
    return timed(run)


def fs_creates(dirpath, n):
    os.makedirs(dirpath, exist_ok=True)
    payload = os.urandom(4096)

    def run():
        for i in range(n):
            with open(os.path.join(dirpath, f"f{i:05}"), "wb") as f:
                f.write(payload)
    return timed(run)


def fs_ls(dirpath, n):
    def run():
        out = subprocess.run(["ls", "-l", dirpath], check=True, capture_output=True).stdout
        lines = out.count(b"\n") - 1
        if lines != n:
            raise RuntimeError(f"ls -l saw {lines} entries, expected {n}")
    return timed(run)


def wait_uploaded(s3, bucket, key, size, timeout=600):
    """rclone's "writes" cache mode uploads after close(): count the time until S3 has it."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        try:
            if s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == size:
                return time.perf_counter() - t
        except s3.exceptions.ClientError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{key} not uploaded after {timeout}s")


def wait_listed(s3, bucket, prefix, n, timeout=600):
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        if sum(len(p.get("Contents", [])) for p in pages) >= n:
            return time.perf_counter() - t
        time.sleep(0.1)
    raise RuntimeError(f"{n} objects not uploaded after {timeout}s")


def fill(s3, bucket, prefix, n):
    payload = b"x" * 4096
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: s3.put_object(Bucket=bucket, Key=f"{prefix}f{i:05}", Body=payload),
                    range(n)))


def bench_mount(kind, args, endpoint, s3, data, workdir):
    bucket = f"bench-{kind}"
    s3.create_bucket(Bucket=bucket)
    mnt = os.path.join(workdir, f"mnt-{kind}")
    os.makedirs(mnt)
    size = args.size_mib * CHUNK
    extra = args.mount_args.split() if kind.startswith("bulkhead") else []
    m = Mount(kind, endpoint, bucket, mnt, args.bulkhead, workdir, extra)
    r = {}
    try:
        m.start()
        r["write_s"] = fs_write(os.path.join(mnt, "big"), data, size)
        r["write_s"] += wait_uploaded(s3, bucket, "big", size) if kind == "rclone" else 0
        # Fresh mount and cold page cache for the read.
        m.stop()
        drop_caches()
        m.start()
        r["read_s"] = fs_read(os.path.join(mnt, "big"), size)
        r["creates_s"] = fs_creates(os.path.join(mnt, "small"), args.files)
        r["creates_s"] += wait_listed(s3, bucket, "small/", args.files) if kind == "rclone" else 0
        m.stop()
        m.start()
        r["ls_s"] = fs_ls(os.path.join(mnt, "small"), args.files)
        r["rm_s"] = timed(lambda: shutil.rmtree(os.path.join(mnt, "small")))
        if args.many:
            m.stop()
            fill(s3, bucket, "many/", args.many)
            m.start()
            r["ls_many_s"] = fs_ls(os.path.join(mnt, "many"), args.many)
    except Exception as e:  # a peer failing must not hide the other results
        r["error"] = str(e)
    finally:
        m.stop()
    # Only our own mount process is a single process whose peak is meaningful here.
    r["peak_rss_mib"] = m.peak_kib / 1024 if kind.startswith("bulkhead") else None
    return r


def bench_direct(args, s3, data):
    import io
    bucket = "bench-direct"
    s3.create_bucket(Bucket=bucket)
    size = args.size_mib * CHUNK
    cfg = TransferConfig(multipart_threshold=8 * CHUNK, multipart_chunksize=8 * CHUNK,
                         max_concurrency=8)
    r = {"write_s": timed(lambda: s3.upload_fileobj(io.BytesIO(data), bucket, "big", Config=cfg))}

    def read_all():
        body = s3.get_object(Bucket=bucket, Key="big")["Body"]
        n = 0
        while True:
            b = body.read(CHUNK)
            if not b:
                break
            n += len(b)
        if n != size:
            raise RuntimeError("direct read size mismatch")
    # One streamed GET: on moto_server each ranged GET costs a copy of the whole object, so
    # this is the fastest way any client can read here.
    r["read_s"] = timed(read_all)
    if args.server != "moto":
        # A server with efficient ranged GETs: the transfer manager's concurrent 8 MiB ranged
        # GETs (8 threads) is the direct client's best read, and the one compared against.
        sink = io.BytesIO()
        ranged = timed(lambda: s3.download_fileobj(bucket, "big", sink, Config=cfg))
        if sink.getbuffer().nbytes != size:
            raise RuntimeError("direct ranged read size mismatch")
        r["read_stream_s"], r["read_ranged_s"] = r["read_s"], ranged
        r["read_s"] = min(r["read_s"], ranged)
    payload = os.urandom(4096)
    r["creates_s"] = timed(lambda: [s3.put_object(Bucket=bucket, Key=f"small/f{i:05}", Body=payload)
                                   for i in range(args.files)])

    def ls():
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="small/",
                                                              Delimiter="/")
        n = sum(len(p.get("Contents", [])) for p in pages)
        if n != args.files:
            raise RuntimeError(f"listed {n}")
    r["ls_s"] = timed(ls)
    if args.many:
        fill(s3, bucket, "many/", args.many)

        def ls_many():
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/",
                                                                  Delimiter="/")
            if sum(len(p.get("Contents", [])) for p in pages) != args.many:
                raise RuntimeError("listed too few")
        r["ls_many_s"] = timed(ls_many)
    return r


S3S_FS = "/var/cache/bulkhead/tools/s3s-fs/bin/s3s-fs"


def start_moto(moto_server, server="moto", root=None):
    """An S3 server on a free port: (process, endpoint, boto3 client).

    `server` "moto" is moto_server (every ranged GET costs it a copy of the whole object);
    "s3s-fs" is s3s-fs (bench/s3fs/setup-s3s-fs.sh), a Rust S3 server over a directory
    (`root`) whose ranged GETs read only their range, as S3 and MinIO do.
    """
    port = free_port()
    if server == "moto":
        cmd = [moto_server, "-H", "127.0.0.1", "-p", str(port)]
    else:
        cmd = [S3S_FS, "--host", "127.0.0.1", "--port", str(port), "--access-key", KEY,
               "--secret-key", SECRET, root]
    moto = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                moto.kill()
                sys.exit("moto_server did not start")
            time.sleep(0.1)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                      config=Config(max_pool_connections=16))
    return moto, endpoint, s3


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--many", type=int, default=10000,
                   help="entries of the large listing (0: skip)")
    p.add_argument("--bulkhead", default="/var/cache/bulkhead/target/release/bulkhead")
    p.add_argument("--moto-server", default=os.path.join(os.path.dirname(sys.executable),
                                                          "moto_server"))
    p.add_argument("--clients", default="direct,bulkhead,bulkhead-uniform,s3fs,rclone")
    p.add_argument("--mount-args", default="",
                   help="more options for the bulkhead mounts, e.g. '--read-strategy streamed'")
    p.add_argument("--server", choices=["moto", "s3s-fs"], default="moto",
                   help="the S3 server every client uses (s3s-fs: bench/s3fs/setup-s3s-fs.sh)")
    p.add_argument("--json", default="bench/s3fs/results.json")
    args = p.parse_args()
    for tool in ("s3fs", "rclone"):
        if tool in args.clients and shutil.which(tool) is None:
            sys.exit(f"{tool} not installed: run scripts/ci/setup-00-apt.sh")

    if args.server == "s3s-fs" and not os.access(S3S_FS, os.X_OK):
        sys.exit(f"{S3S_FS} missing: run bench/s3fs/setup-s3s-fs.sh")
    # s3s-fs keeps its objects on disk, not in this process's memory.
    s3s_root = tempfile.mkdtemp(prefix="s3bench-s3s-", dir="/var/tmp")
    moto, endpoint, s3 = start_moto(args.moto_server, args.server, s3s_root)
    data = os.urandom(args.size_mib * CHUNK)
    workdir = tempfile.mkdtemp(prefix="s3bench-")
    results = {}
    try:
        for kind in args.clients.split(","):
            print(f"running {kind} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            if kind == "direct":
                results[kind] = bench_direct(args, s3, data)
            else:
                results[kind] = bench_mount(kind, args, endpoint, s3, data, workdir)
            print(f"  {kind}: {results[kind]} ({time.perf_counter() - t0:.0f}s)",
                  file=sys.stderr, flush=True)
            # Objects of finished clients only cost moto memory.
            bucket = f"bench-{kind}"
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=o["Key"])
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(s3s_root, ignore_errors=True)

    mib = args.size_mib
    rows = []
    for kind, r in results.items():
        if "error" in r and "write_s" not in r:
            rows.append((kind, r))
            continue
        r["write_mib_s"] = mib / r["write_s"] if "write_s" in r else None
        r["read_mib_s"] = mib / r["read_s"] if "read_s" in r else None
        rows.append((kind, r))
    direct = results.get("direct", {})
    s3fs = results.get("s3fs", {})

    def fmt(v, spec="{:.1f}"):
        return spec.format(v) if isinstance(v, (int, float)) else "-"

    print(f"\nS3 mount benchmark: {mib} MiB sequential, {args.files} x 4 KiB creates, "
          f"ls -l of {args.files} and of {args.many} ({args.server} on 127.0.0.1)\n")
    print(f"{'client':<17} {'write MiB/s':>12} {'read MiB/s':>11} {'w % direct':>10} "
          f"{'r % direct':>10} {'creates s':>10} {'x s3fs':>7} {'ls -l s':>8} {'rm -rf s':>8} "
          f"{'ls -l many s':>12} {'peak RSS MiB':>12}")
    for kind, r in rows:
        wr = r.get("write_mib_s")
        rd = r.get("read_mib_s")
        wpct = 100 * wr / direct["write_mib_s"] if wr and direct.get("write_mib_s") else None
        rpct = 100 * rd / direct["read_mib_s"] if rd and direct.get("read_mib_s") else None
        speed = s3fs["creates_s"] / r["creates_s"] if r.get("creates_s") and s3fs.get("creates_s") else None
        r["write_pct_direct"], r["read_pct_direct"], r["creates_x_s3fs"] = wpct, rpct, speed
        print(f"{kind:<17} {fmt(wr):>12} {fmt(rd):>11} {fmt(wpct, '{:.0f}%'):>10} "
              f"{fmt(rpct, '{:.0f}%'):>10} {fmt(r.get('creates_s'), '{:.2f}'):>10} "
              f"{fmt(speed, '{:.1f}x'):>7} {fmt(r.get('ls_s'), '{:.2f}'):>8} "
              f"{fmt(r.get('rm_s'), '{:.2f}'):>8} {fmt(r.get('ls_many_s'), '{:.2f}'):>12} "
              f"{fmt(r.get('peak_rss_mib'), '{:.0f}'):>12}"
              + (f"  error: {r['error']}" if "error" in r else ""))
    out = {"size_mib": mib, "files": args.files, "server": args.server, "results": results,
           "command": " ".join(sys.argv), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
