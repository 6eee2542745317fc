//! `bulkhead doctor` on this host: every check passes where CI runs the whole suite (so the
//! checks do not cry wolf), and a data dir under a directory sandboxes cannot search fails
//! with its fix and a non-zero exit status.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn doctor(data_dir: &std::path::Path, json: bool) -> (i32, String) {
    doctor_with(data_dir, json, &[])
}

fn doctor_with(data_dir: &std::path::Path, json: bool, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.arg("doctor")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    cmd.env_remove("BULKHEAD_STORAGE_ENDPOINT");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn this_host_passes_every_check() {
    let dir = tempfile::Builder::new()
        .prefix("bulkhead-doctor-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (code, out) = doctor(&dir.path().join("data"), false);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains('✗'), "{out}");
    for name in [
        "root",
        "user namespaces",
        "overlayfs",
        "idmapped mounts",
        "cgroups",
        "seccomp",
        "FUSE",
        "nftables",
        "free disk",
        "data dir",
    ] {
        assert!(
            out.contains(&format!("✓ {name}: ")),
            "no {name} line: {out}"
        );
    }
    let (code, out) = doctor(&dir.path().join("data"), true);
    assert_eq!(code, 0, "{out}");
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["ok"], true, "{v}");
    }
}

#[test]
fn a_data_dir_sandboxes_cannot_reach_fails_with_its_fix() {
    let dir = tempfile::Builder::new()
        .prefix("bulkhead-doctor-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (code, out) = doctor(&dir.path().join("data"), false);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("✗ data dir"))
        .expect(&out);
    assert!(line.contains(&dir.path().display().to_string()), "{line}");
    assert!(line.contains("chmod o+x"), "{line}");
}

/// A tiny HTTP server on 127.0.0.1 answering every request with `status`, for `n` requests.
fn answer(status: u16, n: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
        }
    });
    port
}

/// The S3 endpoint and registries given are checked for an answer; one that does not answer
/// (or a registry that is not one) fails with its fix.
#[test]
fn the_storage_endpoint_and_registries_are_checked_when_given() {
    let dir = tempfile::Builder::new()
        .prefix("bulkhead-doctor-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let data = dir.path().join("data");
    let s3 = answer(403, 1);
    let registry = answer(401, 1);
    let (code, out) = doctor_with(
        &data,
        false,
        &[
            "--storage-endpoint",
            &format!("http://127.0.0.1:{s3}"),
            "--registry",
            &format!("http://127.0.0.1:{registry}"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("✓ storage endpoint: ") && out.contains("HTTP 403"),
        "{out}"
    );
    assert!(
        out.contains("✓ registry: ") && out.contains("HTTP 401"),
        "{out}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let not_a_registry = answer(404, 1);
    let (code, out) = doctor_with(
        &data,
        false,
        &[
            "--storage-endpoint",
            &format!("http://127.0.0.1:{closed}"),
            "--registry",
            &format!("http://127.0.0.1:{not_a_registry}"),
        ],
    );
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("✗ storage endpoint"))
        .expect(&out);
    assert!(
        line.contains("does not answer") && line.contains("fix:"),
        "{line}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("✗ registry"))
        .expect(&out);
    assert!(line.contains("HTTP 404") && line.contains("fix:"), "{line}");
}
