//! `bulkhead doctor` on this host: every check passes where CI runs the whole suite (so the
//! checks do not cry wolf), and a data dir under a directory sandboxes cannot search fails
//! with its fix and a non-zero exit status.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn doctor(data_dir: &std::path::Path, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.arg("doctor").arg("--data-dir").arg(data_dir);
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
