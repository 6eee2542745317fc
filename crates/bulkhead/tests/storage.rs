//! Storage in sandboxes: a bucket (moto_server with authentication on) mounted by the host
//! and attached at /opt/sentient in every sandbox, read and written through it, checked in
//! the bucket with boto3; and the bucket's keys nowhere in the sandbox, which also has no
//! route to the S3 endpoint.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../s3fs/tests/common/mod.rs"]
mod s3;

use std::process::{Command, Stdio};

use s3::{Moto, bucket_name};

use common::Served as Serve;

impl Serve {
    fn start(data: &std::path::Path, moto: &Moto, bucket: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pool-size",
            "1",
            "--base-rootfs",
        ])
        .arg(common::rootfs("debian"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "--storage-bucket",
            bucket,
            "--storage-endpoint",
            &moto.endpoint,
        ])
        .args(extra)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("HOME", "/nonexistent")
        // The keys live only in the server's environment.
        .env("AWS_ACCESS_KEY_ID", &moto.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &moto.secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let (child, url, key) = common::start_serve(cmd, data);
        Self { child, url, key }
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .arg("sandbox")
            .args(["--server", &self.url])
            .args(args)
            .env_remove("E2B_API_URL")
            .env("E2B_API_KEY", &self.key)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn create(&self, extra: &[&str]) -> String {
        let mut args = vec!["create"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.cli(&args);
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    }

    fn sh(&self, id: &str, script: &str) -> (i32, String, String) {
        self.cli(&["exec", id, "--", "bash", "-c", script])
    }

    fn stop(self) {
        drop(self);
    }
}

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bulkhead-storage-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

#[test]
fn bucket_in_every_sandbox_and_keys_in_none() {
    let bucket = bucket_name("sentient");
    let moto = Moto::start_with_auth(&bucket);
    let data = data_dir();
    let srv = Serve::start(
        data.path(),
        &moto,
        &bucket,
        &[
            "--storage-sandbox-prefix",
            "executions/{sandbox_id}",
            "--strip-env",
            "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY",
        ],
    );
    // The toolkit forwards the keys as envVars; the server strips them.
    let id = srv.create(&[
        "-e",
        &format!("AWS_ACCESS_KEY_ID={}", moto.key_id),
        "-e",
        &format!("AWS_SECRET_ACCESS_KEY={}", moto.secret),
        "-e",
        "STORAGE_BASE_PATH=/opt/sentient",
    ]);
    // Write, rename into place (the toolkit's pattern), read back.
    let (code, out, err) = srv.sh(&id, "set -e; cd /opt/sentient; mkdir -p results/reports; echo 'report body' > results/reports/.tmp; mv results/reports/.tmp results/reports/final.txt; cat results/reports/final.txt; echo $STORAGE_BASE_PATH; mountpoint -q /opt/sentient && echo mounted");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "report body\n/opt/sentient\nmounted\n");
    // The object is in the bucket, under this sandbox's prefix, byte for byte.
    assert_eq!(
        moto.get(
            &bucket,
            &format!("executions/{id}/results/reports/final.txt")
        ),
        b"report body\n"
    );
    // The host writes an object; the sandbox reads it (after the stat cache TTL).
    moto.py(&[
        "put",
        &bucket,
        &format!("executions/{id}/from-host.txt"),
        "hello sandbox",
    ]);
    let mut seen = String::new();
    for _ in 0..50 {
        let (_, out, _) = srv.sh(&id, "cat /opt/sentient/from-host.txt 2>/dev/null");
        if out == "hello sandbox" {
            seen = out;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(seen, "hello sandbox");
    // No key anywhere: files, every process's environment and command line, the mount table.
    // The needle reaches the sandbox in two halves, so that no command line of the scan
    // itself holds it; the joined needle lives in /dev/shm, which the file scan skips.
    for secret in [&moto.key_id, &moto.secret] {
        let (left, right) = secret.split_at(secret.len() / 2);
        let scan = format!(
            "printf '%s%s' '{left}' '{right}' > /dev/shm/needle; \
             grep -rlsF -f /dev/shm/needle --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=sentient / ; \
             for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo; do tr '\\0' '\\n' < $f | grep -qF -f /dev/shm/needle && echo $f; done; \
             env | grep -F -f /dev/shm/needle; rm /dev/shm/needle; echo scanned"
        );
        let (_, out, err) = srv.cli(&["exec", "-u", "root", &id, "--", "bash", "-c", &scan]);
        assert_eq!(
            out, "scanned\n",
            "the sandbox holds a storage credential: {out} {err}"
        );
        // Only the init (non-dumpable by design) is closed to root inside; it is checked
        // from the host below, with every other process of the sandbox.
        let denied: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("Permission denied"))
            .collect();
        assert!(
            denied.iter().all(|l| l.contains("/proc/1/")),
            "the scan could not read everything: {err}"
        );
        let procs =
            std::fs::read_to_string(format!("/sys/fs/cgroup/pids/bulkhead/{id}/cgroup.procs"))
                .or_else(|_| {
                    std::fs::read_to_string(format!("/sys/fs/cgroup/bulkhead/{id}/cgroup.procs"))
                })
                .unwrap();
        assert!(procs.lines().count() >= 2, "{procs}");
        for pid in procs.lines() {
            for file in ["environ", "cmdline"] {
                let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(secret.as_str()),
                    "process {pid} of the sandbox holds a credential in its {file}"
                );
            }
        }
    }
    // And no route to the S3 endpoint from inside.
    let (_, out, _) = srv.sh(&id, &format!("python3 -c \"import socket; socket.create_connection(('127.0.0.1', {}), timeout=2)\" 2>/dev/null && echo reached || echo unreachable", moto.port));
    assert_eq!(out, "unreachable\n");
    // Another sandbox sees only its own prefix.
    let other = srv.create(&[]);
    let (_, out, _) = srv.sh(&other, "ls -A /opt/sentient | wc -l");
    assert_eq!(out.trim(), "0", "a sandbox saw another sandbox's files");
    // The server crashes and comes back: the sandbox is adopted and its storage still works
    // (the bucket's filesystem is a process of its own), with nothing acknowledged lost.
    let mut srv = srv;
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
    let srv = Serve::start(
        data.path(),
        &moto,
        &bucket,
        &["--storage-sandbox-prefix", "executions/{sandbox_id}"],
    );
    let (code, out, err) = srv.sh(&id, "cat /opt/sentient/results/reports/final.txt && echo after > /opt/sentient/after.txt && echo written");
    assert_eq!((code, out.as_str()), (0, "report body\nwritten\n"), "{err}");
    assert_eq!(
        moto.get(&bucket, &format!("executions/{id}/after.txt")),
        b"after\n"
    );
    srv.stop();
    // A clean stop unmounts the bucket.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&data.path().to_string_lossy().to_string()),
        "the storage mount outlived a clean stop"
    );
}

/// Without a bucket, sandboxes share a local directory at the same path.
#[test]
fn local_storage_without_a_bucket() {
    let data = data_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--pool-size",
        "0",
        "--base-rootfs",
    ])
    .arg(common::rootfs("debian"))
    .arg("--data-dir")
    .arg(data.path());
    let (child, url, key) = common::start_serve(cmd, data.path());
    let srv = Serve { child, url, key };
    let a = srv.create(&[]);
    let b = srv.create(&[]);
    assert_eq!(
        srv.sh(&a, "echo shared > /opt/sentient/note.txt && echo ok")
            .1,
        "ok\n"
    );
    assert_eq!(srv.sh(&b, "cat /opt/sentient/note.txt").1, "shared\n");
    assert_eq!(
        std::fs::read_to_string(data.path().join("storage/tree/note.txt")).unwrap(),
        "shared\n"
    );
    // Every sandbox's ids are the same on the shared tree (an idmapped bind through each
    // sandbox's user namespace): what a's `user` writes is owned by uid 1000 on the host,
    // not by a's host uid range, and b's `user` is that same owner. So a range that passes
    // from a dead sandbox to a new one carries no files with it; per-sandbox prefixes are the
    // isolation between sandboxes (--storage-sandbox-prefix).
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = std::fs::metadata(data.path().join("storage/tree")).unwrap();
    assert_eq!(root.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(
        srv.cli(&[
            "exec",
            &a,
            "-u",
            "user",
            "--",
            "bash",
            "-c",
            "echo mine > /opt/sentient/a-user.txt && chmod 600 /opt/sentient/a-user.txt && echo ok"
        ])
        .1,
        "ok\n"
    );
    let meta = std::fs::metadata(data.path().join("storage/tree/a-user.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "owner on the host");
    let (_, out, _) = srv.cli(&[
        "exec",
        &b,
        "-u",
        "user",
        "--",
        "bash",
        "-c",
        "stat -c %U /opt/sentient/a-user.txt; cat /opt/sentient/a-user.txt",
    ]);
    assert_eq!(out, "user\nmine\n", "b's user is the same owner");
    // Sticky: another user of the sandbox cannot remove the user's file.
    let (code, _, _) = srv.cli(&[
        "exec",
        &b,
        "-u",
        "root",
        "--",
        "bash",
        "-c",
        "su -s /bin/sh nobody -c 'rm -f /opt/sentient/a-user.txt'",
    ]);
    assert_ne!(code, 0, "nobody removed user's file");
    assert!(data.path().join("storage/tree/a-user.txt").exists());
    // Every sandbox's root is root of the shared tree (one owner, like every `user`).
    let (code, out, _) = srv.cli(&[
        "exec",
        &b,
        "-u",
        "root",
        "--",
        "bash",
        "-c",
        "stat -c %U /opt/sentient; touch /opt/sentient/by-root && stat -c %u /opt/sentient/by-root",
    ]);
    assert_eq!((code, out.as_str()), (0, "root\n0\n"));
    // Sandbox root is uid 0 on the tree: a set-uid-root file it makes there is one on the
    // host too, so the tree sits below a directory only host root may enter, and no
    // unprivileged host user can reach (or run) it.
    let (code, _, err) = srv.cli(&[
        "exec",
        &b,
        "-u",
        "root",
        "--",
        "bash",
        "-c",
        "cp /bin/true /opt/sentient/suid && chmod 4755 /opt/sentient/suid",
    ]);
    assert_eq!(code, 0, "{err}");
    let suid = data.path().join("storage/tree/suid");
    let meta = std::fs::metadata(&suid).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o4000), (0, 0o4000));
    let outer = std::fs::metadata(data.path().join("storage")).unwrap();
    assert_eq!(outer.permissions().mode() & 0o777, 0o700);
    let o = Command::new("su")
        .args(["-s", "/bin/sh", "nobody", "-c"])
        .arg(format!("stat {}", suid.display()))
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "an unprivileged host user reached the set-uid file"
    );
    // A sandbox made after a is gone (possibly on a's host uid range) sees the same owner.
    assert_eq!(srv.cli(&["kill", &a]).0, 0);
    let c = srv.create(&[]);
    let (_, out, _) = srv.cli(&[
        "exec",
        &c,
        "-u",
        "user",
        "--",
        "bash",
        "-c",
        "stat -c %U:%u /opt/sentient/a-user.txt",
    ]);
    assert_eq!(out, "user:1000\n");
    srv.stop();
}

/// With a prefix per sandbox, each sandbox's part of the local storage is attached at hand-
/// over with the sandbox's own ids too, and no sandbox sees another's part.
#[test]
fn local_storage_with_a_prefix_per_sandbox() {
    let data = data_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--pool-size",
        "1",
        "--storage-sandbox-prefix",
        "executions/{sandbox_id}",
        "--base-rootfs",
    ])
    .arg(common::rootfs("debian"))
    .arg("--data-dir")
    .arg(data.path());
    let (child, url, key) = common::start_serve(cmd, data.path());
    let srv = Serve { child, url, key };
    let a = srv.create(&[]);
    let b = srv.create(&[]);
    let (code, _, err) = srv.cli(&["exec", &a, "-u", "user", "--", "bash", "-c",
        "echo a > /opt/sentient/out.txt && grep -q ' /opt/sentient .*idmapped' /proc/self/mountinfo"]);
    assert_eq!(code, 0, "{err}");
    use std::os::unix::fs::MetadataExt;
    let file = data
        .path()
        .join("storage/tree/executions")
        .join(&a)
        .join("out.txt");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    let (_, out, _) = srv.sh(&b, "ls -A /opt/sentient");
    assert_eq!(out, "", "b sees a's part");
    srv.stop();
}

/// Two sandboxes sharing the whole bucket write different files at once; each then reads
/// what the other wrote (visible once the stat cache's TTL has passed), through a mount that
/// reads with one streamed GET per reader (`--storage-read-strategy streamed`).
#[test]
fn sandboxes_share_a_bucket() {
    let bucket = bucket_name("shared");
    let moto = Moto::start_with_auth(&bucket);
    let data = data_dir();
    // moto reads the whole object for every ranged GET: the streamed reader suits it.
    let srv = Serve::start(
        data.path(),
        &moto,
        &bucket,
        &["--storage-read-strategy", "streamed"],
    );
    let record = std::fs::read_to_string(data.path().join(format!("mounts/{bucket}.json")))
        .expect("the storage mount's recorded configuration");
    assert!(record.contains(r#""read_strategy":"streamed""#), "{record}");
    let (a, b) = (srv.create(&[]), srv.create(&[]));
    std::thread::scope(|s| {
        for (id, name) in [(&a, "a"), (&b, "b")] {
            let srv = &srv;
            s.spawn(move || {
                let script = format!("head -c 3000000 /dev/urandom > /opt/sentient/{name}.bin && sha256sum /opt/sentient/{name}.bin | cut -c1-64");
                let (code, out, err) = srv.sh(id, &script);
                assert_eq!(code, 0, "{err}");
                assert_eq!(out.trim().len(), 64);
            });
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, from_b, _) = srv.sh(&b, "sha256sum /opt/sentient/a.bin 2>/dev/null | cut -c1-64");
        let (_, from_a, _) = srv.sh(&a, "sha256sum /opt/sentient/a.bin | cut -c1-64");
        let (_, b_from_a, _) = srv.sh(&a, "sha256sum /opt/sentient/b.bin 2>/dev/null | cut -c1-64");
        let (_, b_own, _) = srv.sh(&b, "sha256sum /opt/sentient/b.bin | cut -c1-64");
        if !from_b.trim().is_empty() && !b_from_a.trim().is_empty() {
            assert_eq!(from_b, from_a, "b read different bytes of a's file");
            assert_eq!(b_from_a, b_own, "a read different bytes of b's file");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other sandbox's file never became visible"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_eq!(moto.get(&bucket, "a.bin").len(), 3_000_000);
    assert_eq!(moto.get(&bucket, "b.bin").len(), 3_000_000);
    srv.stop();
}

/// A template that declares its own bucket in `e2b.toml`, the seed's way (bucket and
/// endpoint from build args, the keys as build secrets): the server mounts it on the host,
/// `start_cmd` writes through it at build time, every sandbox of the template has it at
/// /opt/sentient, and the keys are in one 0600 file of the server's, no layer and no sandbox.
#[test]
fn a_template_declares_its_own_bucket_with_keys_as_build_secrets() {
    let bucket = bucket_name("tplstore");
    let moto = Moto::start_with_auth(&bucket);
    let data = data_dir();
    // No storage flags and no keys in the server's environment: the template brings both.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "1"])
        .arg("--base-rootfs")
        .arg(common::rootfs("debian"))
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("HOME", "/nonexistent")
        .stderr(Stdio::inherit());
    let (child, url, key) = common::start_serve(cmd, data.path());
    let srv = Serve { child, url, key };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("e2b.toml"),
        "template_name = \"stored\"\n\
         start_cmd = \"mkdir -p /opt/sentient/executions && echo from-build > /opt/sentient/executions/setup.txt\"\n\
         [storage]\nbucket = \"${BUCKET}\"\nendpoint = \"${S3_ENDPOINT}\"\npath = \"/opt/sentient\"\n\
         access_key_secret = \"aws_access_key_id\"\nsecret_key_secret = \"aws_secret_access_key\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("e2b.Dockerfile"),
        "FROM bulkhead/debian\nARG BUCKET\nARG S3_ENDPOINT\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["template", "build"])
        .arg(dir.path())
        .args(["--server", &srv.url, "--data-dir", "/nonexistent"])
        .args(["--build-arg", &format!("BUCKET={bucket}")])
        .args(["--build-arg", &format!("S3_ENDPOINT={}", moto.endpoint)])
        .args(["--secret", "id=aws_access_key_id,env=KEY_ID"])
        .args(["--secret", "id=aws_secret_access_key,env=SECRET_KEY"])
        .env("KEY_ID", &moto.key_id)
        .env("SECRET_KEY", &moto.secret)
        .env("E2B_API_KEY", &srv.key)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("its keys are kept by the server"), "{log}");
    assert!(!log.contains(&moto.secret));
    // start_cmd wrote through the mount at build time.
    assert_eq!(moto.get(&bucket, "executions/setup.txt"), b"from-build\n");

    let id = srv.create(&["-t", "stored"]);
    let (code, out, err) = srv.sh(
        &id,
        "cat /opt/sentient/executions/setup.txt && echo from-sandbox > /opt/sentient/executions/run.txt",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "from-build\n");
    assert_eq!(moto.get(&bucket, "executions/run.txt"), b"from-sandbox\n");

    // The secret key: in the template's credentials file (0600) and nowhere else the server
    // wrote; not in the sandbox's files, environment or argv.
    let hits = common::files_containing(data.path(), moto.secret.as_bytes());
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(
        hits[0].ends_with("templates/stored/storage-credentials"),
        "{hits:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&hits[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (head, tail) = moto.secret.split_at(4);
    let (_, found, _) = srv.sh(
        &id,
        &format!(
            "a='{head}'; b='{tail}'; printf %s%s \"$a\" \"$b\" > /dev/shm/needle; \
             grep -rlF -f /dev/shm/needle / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; \
             for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; done | grep -cF -f /dev/shm/needle; true"
        ),
    );
    assert_eq!(found.trim(), "0", "{found}");
    srv.stop();
}
