//! `bulkhead validate` against a real `bulkhead serve`: it passes on a template whose
//! storage is a bucket (moto_server, auth on) and each of its checks fails when the thing it
//! checks is broken: a server that is down, a wrong key, a template that does not exist, a
//! credential planted in a build, storage that is no bucket, a bucket whose keys were
//! revoked. Never a stack trace, never a secret in its output, exit status 1 on any ✗.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../s3fs/tests/common/mod.rs"]
mod s3;

use std::process::{Command, Stdio};

use s3::{Moto, bucket_name};

use common::Served as Serve;

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bulkhead-validate-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// A server; with `moto`, its storage is that bucket (keys only in its environment).
fn serve(data: &std::path::Path, moto: Option<(&Moto, &str)>) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "1"])
        .arg("--base-rootfs")
        .arg(common::rootfs("debian"))
        .arg("--data-dir")
        .arg(data)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("HOME", "/nonexistent")
        .stderr(Stdio::inherit());
    if let Some((m, bucket)) = moto {
        cmd.args([
            "--storage-bucket",
            bucket,
            "--storage-endpoint",
            &m.endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", &m.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &m.secret);
    }
    let (child, url, key) = common::start_serve(cmd, data);
    Serve { child, url, key }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn validate(url: &str, key: &str, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("validate")
        .args(["--server", url, "--data-dir", "/nonexistent"])
        .args(args)
        .env_remove("E2B_API_URL")
        .env_remove("STORAGE_BASE_PATH")
        .env("E2B_API_KEY", key)
        .output()
        .unwrap();
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    o
}

/// The line of check `name`.
fn line<'a>(o: &'a Out, name: &str) -> &'a str {
    o.stdout
        .lines()
        .find(|l| {
            l[l.char_indices().nth(2).map_or(0, |(i, _)| i)..].starts_with(&format!("{name}:"))
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{}", o.stdout))
}

fn passed(o: &Out, name: &str) -> bool {
    line(o, name).starts_with('✓')
}

fn failed(o: &Out, name: &str) -> bool {
    line(o, name).starts_with('✗')
}

#[test]
fn validate_passes_on_a_bucket_and_fails_when_its_keys_are_revoked() {
    let bucket = bucket_name("validate");
    let moto = Moto::start_with_auth(&bucket);
    let data = data_dir();
    let srv = serve(data.path(), Some((&moto, &bucket)));

    let o = validate(&srv.url, &srv.key, &["base"]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    for name in [
        "server",
        "api key",
        "template",
        "credentials",
        "sandbox",
        "storage mount",
        "storage round trip",
        "cleanup",
    ] {
        assert!(passed(&o, name), "{name}:\n{}", o.stdout);
    }
    assert!(line(&o, "run_code").starts_with("- "), "{}", o.stdout);
    assert!(line(&o, "credentials").contains("the server's storage secret access key"));
    assert!(
        line(&o, "storage round trip").contains(&bucket),
        "{}",
        o.stdout
    );
    // The probe file was removed from the bucket, and no sandbox is left.
    assert_eq!(moto.keys(&bucket, "executions"), Vec::<String>::new());
    let list = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["sandbox", "list", "--json", "--server", &srv.url])
        .env("E2B_API_KEY", &srv.key)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
    assert!(!o.stdout.contains(&moto.secret));

    // --json: one object per check, all ok.
    let j = validate(&srv.url, &srv.key, &["base", "--json"]);
    assert_eq!(j.code, 0, "{}", j.stdout);
    let checks: Vec<serde_json::Value> = j
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(checks.len() >= 9, "{checks:?}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");

    // The mount's own counters reach the server's /metrics (written every 2 s): the probe's
    // 1 MiB went up and came back down.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let up_line = format!("bulkhead_mount_bytes_total{{mount=\"{bucket}\",direction=\"up\"}} ");
    loop {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/metrics", srv.url), "-H"])
            .arg(format!("Authorization: Bearer {}", srv.key))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let up = text
            .lines()
            .find_map(|l| l.strip_prefix(&up_line))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if up >= f64::from(1 << 20) {
            assert!(text.contains(&format!(
                "bulkhead_mount_requests_total{{mount=\"{bucket}\"}}"
            )));
            assert!(text.contains(&format!("bulkhead_mount_inodes{{mount=\"{bucket}\"}}")));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mount bytes in:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // The server's read of a sandbox's storage file holds it in memory: a file over 64 MiB
    // is refused, not read.
    let sb = |args: &[&str]| {
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
    let id = sb(&["create"]);
    sb(&[
        "exec",
        &id,
        "--",
        "bash",
        "-c",
        "head -c 70000000 /dev/zero > /opt/sentient/big.bin",
    ]);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "{}/bulkhead/v1/sandboxes/{id}/storage?path=/opt/sentient/big.bin",
            srv.url
        ))
        .args(["-H", &format!("X-API-Key: {}", srv.key)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    sb(&["exec", &id, "--", "rm", "/opt/sentient/big.bin"]);
    sb(&["kill", &id]);

    // The storage expected elsewhere.
    let o = validate(
        &srv.url,
        &srv.key,
        &["base", "--storage-path", "/mnt/elsewhere"],
    );
    assert_eq!(o.code, 1);
    assert!(failed(&o, "storage mount"), "{}", o.stdout);
    assert!(line(&o, "storage mount").contains("not at /mnt/elsewhere"));

    // The bucket's keys revoked: the round trip must fail, saying what to check.
    moto.py(&["revoke-key"]);
    let o = validate(&srv.url, &srv.key, &["base"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        failed(&o, "storage round trip") || failed(&o, "storage mount"),
        "{}",
        o.stdout
    );
    assert!(passed(&o, "cleanup"), "{}", o.stdout);
    assert!(!o.stdout.contains(&moto.secret));
}

#[test]
fn validate_finds_a_credential_planted_by_a_build() {
    let bucket = bucket_name("validleak");
    let moto = Moto::start_with_auth(&bucket);
    let data = data_dir();
    let srv = serve(data.path(), Some((&moto, &bucket)));
    // The mistake the seed's README warns of: a key passed as a build arg (it lands in the
    // history, the build log and, here, a file of a layer).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e2b.toml"), "template_name = \"leaky\"\n").unwrap();
    std::fs::write(
        dir.path().join("e2b.Dockerfile"),
        "FROM bulkhead/debian\nARG AWS_SECRET\nRUN echo \"$AWS_SECRET\" > /etc/aws-key && echo \"key is $AWS_SECRET\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["template", "build"])
        .arg(dir.path())
        .args(["--server", &srv.url, "--data-dir", "/nonexistent"])
        .args(["--build-arg", &format!("AWS_SECRET={}", moto.secret)])
        .env("E2B_API_KEY", &srv.key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let o = validate(&srv.url, &srv.key, &["leaky"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let l = line(&o, "credentials");
    assert!(l.starts_with('✗'), "{l}");
    assert!(
        l.contains("the server's storage secret access key in layer"),
        "{l}"
    );
    assert!(l.contains("/etc/aws-key"), "{l}");
    assert!(l.contains("history step"), "{l}");
    assert!(l.contains("rotate the key"), "{l}");
    // The build log is audited too (the JSON carries every finding).
    let j = validate(&srv.url, &srv.key, &["leaky", "--json"]);
    assert!(j.stdout.contains("build log line"), "{}", j.stdout);
    // The rest still ran: the planted key is the only failure.
    assert!(passed(&o, "storage round trip"), "{}", o.stdout);
    assert!(passed(&o, "cleanup"), "{}", o.stdout);
    // Never the value itself.
    assert!(!o.stdout.contains(&moto.secret) && !j.stdout.contains(&moto.secret));
    assert!(!o.stderr.contains(&moto.secret));

    // The clean template next to it passes the same audit.
    let o = validate(&srv.url, &srv.key, &["base"]);
    assert!(passed(&o, "credentials"), "{}", o.stdout);
}

#[test]
fn validate_says_what_is_wrong_without_a_server_a_key_a_template_or_a_bucket() {
    // A server that is down.
    let o = validate("http://127.0.0.1:1", "whatever", &["base"]);
    assert_eq!(o.code, 1);
    assert!(failed(&o, "server"), "{}", o.stdout);
    assert!(
        line(&o, "server").contains("bulkhead serve"),
        "{}",
        o.stdout
    );
    assert!(line(&o, "sandbox").starts_with("- "), "{}", o.stdout);

    // No bucket: sandboxes share a local directory of the server.
    let data = data_dir();
    let srv = serve(data.path(), None);
    let o = validate(&srv.url, "not-a-key", &["base"]);
    assert_eq!(o.code, 1);
    assert!(failed(&o, "api key"), "{}", o.stdout);
    assert!(line(&o, "api key").contains("refused"), "{}", o.stdout);

    let o = validate(&srv.url, &srv.key, &["no-such-template"]);
    assert_eq!(o.code, 1);
    assert!(failed(&o, "template"), "{}", o.stdout);
    assert!(line(&o, "template").contains("bulkhead template build"));

    let o = validate(&srv.url, &srv.key, &["base"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(passed(&o, "sandbox"), "{}", o.stdout);
    assert!(passed(&o, "storage mount"), "{}", o.stdout);
    assert!(line(&o, "storage mount").contains("a local directory"));
    let l = line(&o, "storage round trip");
    assert!(l.starts_with('✗') && l.contains("--storage-bucket"), "{l}");
    assert!(passed(&o, "cleanup"), "{}", o.stdout);

    // An interpreter template: run_code is checked, as the SDK calls it.
    let o = validate(&srv.url, &srv.key, &["code-interpreter"]);
    assert!(passed(&o, "run_code"), "{}", o.stdout);
    assert!(line(&o, "run_code").contains("= 2"), "{}", o.stdout);
    assert!(passed(&o, "cleanup"), "{}", o.stdout);
}

/// `examples/roma-template`, the seed's template directory made honest, builds as a user
/// would build it (bucket and region as build args, the keys as `--secret` from the
/// environment) against a bucket with auth on, and `bulkhead validate` passes on it; its
/// history shows the args and no key.
#[test]
fn the_roma_example_builds_with_secrets_and_validates() {
    let bucket = bucket_name("roma");
    let moto = Moto::start_with_auth(&bucket);
    let data = data_dir();
    // No storage flags and no keys in the server's environment: the template brings both.
    let srv = serve(data.path(), None);
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/roma-template");
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["template", "build"])
        .arg(&example)
        .args(["--server", &srv.url, "--data-dir", "/nonexistent"])
        .args(["--build-arg", "AWS_REGION=us-east-1"])
        .args(["--build-arg", &format!("S3_BUCKET_NAME={bucket}")])
        .args(["--build-arg", &format!("S3_ENDPOINT={}", moto.endpoint)])
        .args(["--secret", "id=aws_access_key_id,env=AWS_ACCESS_KEY_ID"])
        .args([
            "--secret",
            "id=aws_secret_access_key,env=AWS_SECRET_ACCESS_KEY",
        ])
        .env("AWS_ACCESS_KEY_ID", &moto.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &moto.secret)
        .env("E2B_API_KEY", &srv.key)
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("[E2B-SETUP] setup complete"), "{log}");
    assert!(
        !log.contains(&moto.secret) && !log.contains(&moto.key_id),
        "{log}"
    );

    let o = validate(&srv.url, &srv.key, &["roma-dspy-sandbox"]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let creds = line(&o, "credentials");
    assert!(
        creds.contains("the template's storage secret access key"),
        "{creds}"
    );
    assert!(line(&o, "storage mount").contains(&bucket), "{}", o.stdout);
    assert!(passed(&o, "storage round trip"), "{}", o.stdout);

    let hist = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["template", "history", "roma-dspy-sandbox"])
        .args(["--server", &srv.url, "--data-dir", "/nonexistent"])
        .env("E2B_API_KEY", &srv.key)
        .output()
        .unwrap();
    let hist = String::from_utf8_lossy(&hist.stdout).into_owned();
    assert!(hist.contains(&format!("S3_BUCKET_NAME={bucket}")), "{hist}");
    assert!(
        !hist.contains(&moto.secret) && !hist.contains(&moto.key_id),
        "{hist}"
    );
}
