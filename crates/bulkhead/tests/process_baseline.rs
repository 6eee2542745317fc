//! `bulkhead run` (the sandbox init starts the command) and `bulkhead sandbox exec` (envd
//! starts it) give a command the same environment baseline, signal state and user
//! resolution: the one in tests/process-baseline.json, which tests/sdk/test_baseline.py holds
//! the SDK's `commands.run` to as well.
//!
//! Supplementary groups come from the sandbox's own /etc/group, read at each start.
//!
//! Both the CLI and the server are started by a parent that ignores SIGINT, SIGQUIT and
//! SIGUSR1, as a shell does for a background job: ignored signals survive exec, so every
//! starter on the way must reset them.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use serde_json::Value;

/// A command line run by `sh` with SIGINT, SIGQUIT and SIGUSR1 ignored.
fn with_ignored_signals() -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "trap '' INT QUIT USR1; exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_bulkhead"));
    cmd
}

fn baseline() -> Value {
    let text = include_str!("../../../tests/process-baseline.json");
    serde_json::from_str(text).unwrap()
}

fn expected(b: &Value, user: &str) -> Vec<String> {
    b["expected"][user]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn lines(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn data_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap()
}

#[test]
fn bulkhead_run_gives_the_baseline() {
    let b = baseline();
    let script = b["script"].as_str().unwrap();
    let data = data_dir("bulkhead-baseline-run-");
    let rootfs = common::rootfs("debian");
    for user in ["root", "user"] {
        let out = with_ignored_signals()
            .arg("run")
            .arg("--data-dir")
            .arg(data.path())
            .arg("--rootfs")
            .arg(&rootfs)
            .args(["-u", user, "--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(lines(&out), expected(&b, user), "bulkhead run -u {user}");
    }
    // Supplementary groups: a layer over the image whose /etc/group lists the user in one
    // more group.
    let layer = data_dir("bulkhead-baseline-layer-");
    std::fs::set_permissions(layer.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    group.push_str(b["extra_group"].as_str().unwrap());
    group.push('\n');
    std::fs::create_dir(layer.path().join("etc")).unwrap();
    std::fs::write(layer.path().join("etc/group"), group).unwrap();
    let out = with_ignored_signals()
        .arg("run")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--rootfs")
        .arg(&rootfs)
        .arg("--rootfs")
        .arg(layer.path())
        .args(["-u", "user", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(lines(&out), expected(&b, "user_in_extra_group"));
}

use common::Served as Serve;

impl Serve {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .arg("sandbox")
            .args(["--server", &self.url])
            .args(args)
            .env_remove("E2B_API_URL")
            .env("E2B_API_KEY", &self.key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

#[test]
fn bulkhead_sandbox_exec_gives_the_baseline() {
    let b = baseline();
    let script = b["script"].as_str().unwrap();
    let data = data_dir("bulkhead-baseline-serve-");
    let mut cmd = with_ignored_signals();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "1"])
        .arg("--base-rootfs")
        .arg(common::rootfs("debian"))
        .arg("--data-dir")
        .arg(data.path())
        .stderr(Stdio::null());
    let (child, url, key) = common::start_serve(cmd, data.path());
    let srv = Serve { child, url, key };
    let created = srv.cli(&["create"]);
    let id = lines(&created).concat();
    for user in ["root", "user"] {
        // `sandbox exec` runs its words through `bash -l -c`; `eval` keeps that bash (the
        // process envd started) the session leader whose environment the script reads.
        let out = srv.cli(&["exec", "-u", user, &id, "--", "eval", script]);
        assert_eq!(lines(&out), expected(&b, user), "sandbox exec -u {user}");
    }
    let append = format!(
        "echo '{}' >> /etc/group",
        b["extra_group"].as_str().unwrap()
    );
    lines(&srv.cli(&["exec", "-u", "root", &id, "--", "sh", "-c", &append]));
    let out = srv.cli(&["exec", "-u", "user", &id, "--", "eval", script]);
    assert_eq!(lines(&out), expected(&b, "user_in_extra_group"));
    assert!(srv.cli(&["kill", &id]).status.success());
}
