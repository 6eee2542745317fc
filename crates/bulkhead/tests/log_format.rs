//! `--log-format json`: every line the server logs is one JSON object, and a sandbox's
//! lines carry its id and template id as fields a log collector can index.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

#[test]
fn json_logs_carry_the_sandbox_and_template_ids() {
    let data = tempfile::Builder::new()
        .prefix("bulkhead-logfmt-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "1"])
        .arg("--base-rootfs")
        .arg(common::rootfs("debian"))
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(log));
    let (child, url, key) = common::start_serve(cmd, &data.path().join("data"));
    let srv = common::Served { child, url, key };
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .arg("sandbox")
            .args(["--server", &srv.url])
            .args(args)
            .env("E2B_API_KEY", &srv.key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = cli(&["create"]);
    cli(&["kill", &id]);
    drop(srv);

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    let created = lines
        .iter()
        .find(|v| v["message"] == "sandbox created" && v["sandbox_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no 'sandbox created' line for {id} in:\n{text}"));
    assert_eq!(created["template_id"], "base", "{created}");
    assert!(
        lines
            .iter()
            .any(|v| v["message"] == "sandbox killed" && v["sandbox_id"] == id.as_str()),
        "{text}"
    );
    assert_eq!(created["level"], "INFO");
    assert!(created["timestamp"].is_string());
}
