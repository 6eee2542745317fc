//! `bulkhead mount` as users run it: the built binary against moto_server (with auth on
//! where credentials matter), checked with boto3.

// Helpers outside #[test] fns panic on setup failure, as tests do.
#![allow(clippy::unwrap_used)]

#[path = "../../s3fs/tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Moto, UnmountGuard, bucket_name, is_mounted};

fn bulkhead() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CA_BUNDLE",
    ] {
        c.env_remove(v);
    }
    c.env("HOME", "/nonexistent");
    c
}

fn mount_bg(endpoint: &str, bucket: &str, dir: &Path, id: &str, secret: &str) -> Output {
    bulkhead()
        .args(["mount", bucket])
        .arg(dir)
        .args(["--endpoint", endpoint])
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// SEMANTICS "Mounting": wrong credentials fail at mount time with a clear message that
/// never contains the secret; the right ones mount (auth is on in moto, so this proves it).
#[test]
fn wrong_credentials_fail_at_mount_time_and_right_ones_work() {
    let bucket = bucket_name("auth");
    let moto = Moto::start_with_auth(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());

    let wrong = "wrong-secret-value-1234";
    let out = mount_bg(&moto.endpoint, &bucket, dir.path(), &moto.key_id, wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("SignatureDoesNotMatch"), "stderr: {err}");
    assert!(!err.contains(wrong), "secret leaked: {err}");
    assert!(!is_mounted(dir.path()));

    let out = mount_bg(
        &moto.endpoint,
        &bucket,
        dir.path(),
        "AKIAUNKNOWN000000000",
        wrong,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("InvalidAccessKeyId"), "stderr: {err}");
    assert!(!is_mounted(dir.path()));

    let out = mount_bg(
        &moto.endpoint,
        &bucket,
        dir.path(),
        &moto.key_id,
        &moto.secret,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        is_mounted(dir.path()),
        "parent returned before the mount was up"
    );
    std::fs::write(dir.path().join("hello.txt"), b"signed").unwrap();
    assert_eq!(moto.get(&bucket, "hello.txt"), b"signed");
    assert!(
        Command::new("umount")
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
}

/// SEMANTICS "Mounting": credentials from a file given by flag, with a profile.
#[test]
fn credentials_file_and_profile_flags() {
    let bucket = bucket_name("prof");
    let moto = Moto::start_with_auth(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let creds = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        creds.path(),
        format!(
            "[default]\naws_access_key_id = AKIAUNKNOWN000000000\naws_secret_access_key = x\n\
             [dev]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.key_id, moto.secret
        ),
    )
    .unwrap();
    let out = bulkhead()
        .args(["mount", &bucket])
        .arg(dir.path())
        .args([
            "--endpoint",
            &moto.endpoint,
            "--profile",
            "dev",
            "--credentials-file",
        ])
        .arg(creds.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(dir.path()));
    assert!(
        Command::new("umount")
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
}

/// SEMANTICS "Mounting": a missing bucket and an unreachable endpoint fail at mount time.
#[test]
fn missing_bucket_and_unreachable_endpoint_fail_at_mount_time() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let out = mount_bg(&moto.endpoint, "no-such-bucket", dir.path(), "a", "b");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no such bucket"), "stderr: {err}");
    let port = common::free_port();
    let out = mount_bg(
        &format!("http://127.0.0.1:{port}"),
        "any-bucket",
        dir.path(),
        "a",
        "b",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("endpoint unreachable"), "stderr: {err}");
    assert!(!is_mounted(dir.path()));
}

/// SEMANTICS "Errors": if the filesystem process dies mid-write, the writer gets an error,
/// never success, and no partial object appears.
#[test]
fn filesystem_killed_mid_write_fails_the_writer() {
    let moto = Moto::start();
    let bucket = bucket_name("kill");
    moto.mkbucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let mut child = bulkhead()
        .args(["mount", &bucket])
        .arg(dir.path())
        .args(["--endpoint", &moto.endpoint, "-f"])
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", "b")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(dir.path()) {
        assert!(Instant::now() < deadline, "mount did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut f = File::create(dir.path().join("partial.bin")).unwrap();
    let chunk = common::pattern(1 << 20, 5);
    for _ in 0..12 {
        f.write_all(&chunk).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut result = Ok(());
    for _ in 0..4 {
        result = result.and_then(|()| f.write_all(&chunk));
    }
    let result = result.and_then(|()| f.sync_all());
    assert!(
        result.is_err(),
        "a write or fsync after the filesystem died must fail"
    );
    drop(f);
    assert!(
        moto.stat(&bucket, "partial.bin").is_null(),
        "no partial object may appear"
    );
}

fn mount_fg(moto: &Moto, bucket: &str, dir: &Path) -> std::process::Child {
    let child = bulkhead()
        .args(["mount", bucket])
        .arg(dir)
        .args(["--endpoint", &moto.endpoint, "-f"])
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", "b")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(dir) {
        assert!(Instant::now() < deadline, "mount did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// SEMANTICS "Errors and outages": a mount killed (`kill -9`) while overwriting a file,
/// while writing a new one, and after `cmd > file` closed its first descriptor leaves the
/// previous objects intact and no new one; the next mount of the bucket aborts the
/// multipart uploads the dead one left.
#[test]
fn killed_mount_loses_nothing_and_its_uploads_are_aborted_at_the_next_mount() {
    use std::os::fd::{AsRawFd, FromRawFd};
    let moto = Moto::start();
    let bucket = bucket_name("lose");
    moto.mkbucket(&bucket);
    moto.py(&["put", &bucket, "old.bin", "old content"]);
    moto.py(&["put", &bucket, "shell.txt", "shell old"]);
    let dir = tempfile::tempdir().unwrap();
    let _guard = UnmountGuard(dir.path().to_path_buf());
    let mut child = mount_fg(&moto, &bucket, dir.path());
    let chunk = common::pattern(1 << 20, 9);
    // Started before any file is open: its fork must not flush them.
    let check = moto.later(&["get", &bucket, "old.bin"]);

    // Overwrite and new file, both past one part (8 MiB): multipart uploads in progress.
    let mut over = File::create(dir.path().join("old.bin")).unwrap();
    let mut new = File::create(dir.path().join("new.bin")).unwrap();
    for _ in 0..12 {
        over.write_all(&chunk).unwrap();
        new.write_all(&chunk).unwrap();
    }
    // `cmd > shell.txt`: the shell opens (truncating), duplicates onto 1, closes the
    // original; the command writes, and is still writing when the mount dies.
    let opened = File::create(dir.path().join("shell.txt")).unwrap();
    // SAFETY: dup of a descriptor owned by `opened`, which stays open until the dup exists.
    let dup = unsafe { libc::dup(opened.as_raw_fd()) };
    assert!(dup >= 0);
    drop(opened);
    // SAFETY: `dup` is a fresh descriptor owned by nothing else.
    let mut out = unsafe { File::from_raw_fd(dup) };
    out.write_all(b"partial").unwrap();
    // A reader on the same mount while the writer streams must not commit it.
    let mut head = vec![0u8; 4096];
    let reader = File::open(dir.path().join("old.bin")).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&reader, &mut head, 0).unwrap();
    assert_eq!(head, chunk[..4096], "the reader sees the writer's data");
    assert_eq!(check.run(), b"old content", "not committed by the read");

    child.kill().unwrap();
    child.wait().unwrap();
    drop((over, new, out, reader));
    let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
    assert_eq!(moto.get(&bucket, "old.bin"), b"old content");
    assert_eq!(moto.get(&bucket, "shell.txt"), b"shell old");
    assert!(
        moto.stat(&bucket, "new.bin").is_null(),
        "no partial new object"
    );
    let left = moto.uploads(&bucket);
    assert!(
        !left.is_empty(),
        "the dead mount left its uploads: {left:?}"
    );

    let mut child = mount_fg(&moto, &bucket, dir.path());
    assert_eq!(
        moto.uploads(&bucket),
        Vec::<String>::new(),
        "aborted at mount"
    );
    assert_eq!(
        std::fs::read(dir.path().join("old.bin")).unwrap(),
        b"old content"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--help` explains the command.
#[test]
fn help_explains_the_command() {
    let out = bulkhead().args(["mount", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "BUCKET[:PREFIX]",
        "--stat-cache-ttl",
        "allow_other",
        "--read-only",
        "--attributes",
        "uniform",
        "EXAMPLES",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

/// SEMANTICS "Mounting": with `-o allow_other` and open modes, another user (as in a
/// sandbox) can write and read; without it, the kernel keeps other users out.
#[test]
fn allow_other_lets_other_users_in() {
    let moto = Moto::start();
    let bucket = bucket_name("other");
    moto.mkbucket(&bucket);
    let as_nobody = |dir: &Path| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(format!(
                "echo from-nobody > {0}/n.txt && cat {0}/n.txt",
                dir.display()
            ))
            .output()
            .unwrap()
    };
    for allow in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let _guard = UnmountGuard(dir.path().to_path_buf());
        let mut cmd = bulkhead();
        cmd.args(["mount", &bucket])
            .arg(dir.path())
            .args([
                "--endpoint",
                &moto.endpoint,
                "--dir-mode",
                "0777",
                "--file-mode",
                "0666",
            ])
            .env("AWS_ACCESS_KEY_ID", "a")
            .env("AWS_SECRET_ACCESS_KEY", "b");
        if allow {
            cmd.args(["-o", "allow_other"]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = as_nobody(dir.path());
        assert_eq!(
            out.status.success(),
            allow,
            "allow_other={allow}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if allow {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "from-nobody\n");
            assert_eq!(moto.get(&bucket, "n.txt"), b"from-nobody\n");
        }
        assert!(
            Command::new("umount")
                .arg(dir.path())
                .status()
                .unwrap()
                .success()
        );
    }
}
