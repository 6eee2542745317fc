//! The control plane and edge proxy of a real `bulkhead serve`, over raw HTTP: status codes,
//! error bodies, routing, timeouts, restart cleanup, and a fuzz of bad input.

#![allow(clippy::unwrap_used)]

#[path = "common/api_server.rs"]
mod api_server;
mod common;

use api_server::{Server, data_dir};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

fn assert_error_body(status: u16, v: &Value, expect: u16) {
    assert_eq!(status, expect, "{v}");
    assert_eq!(
        v["code"].as_u64(),
        Some(u64::from(expect)),
        "error body must carry the status: {v}"
    );
    assert!(
        v["message"].is_string(),
        "error body must carry a message: {v}"
    );
}

#[test]
fn errors_are_json_with_the_right_status() {
    let data = data_dir();
    let srv = Server::start(data.path());
    assert_eq!(srv.request("GET", "/health", &[], b"").0, 204);
    let (s, _, b) = srv.request("GET", "/v2/sandboxes", &[], b"");
    assert_error_body(s, &serde_json::from_slice(&b).unwrap(), 401);
    let (s, _, b) = srv.request("GET", "/v2/sandboxes", &[("X-API-KEY", "wrong")], b"");
    assert_error_body(s, &serde_json::from_slice(&b).unwrap(), 401);
    let (s, v) = srv.api("POST", "/v2/sandboxes", "{not json");
    assert_error_body(s, &v, 400);
    let (s, v) = srv.api(
        "POST",
        "/v2/sandboxes",
        r#"{"templateID":"no-such-template"}"#,
    );
    assert_error_body(s, &v, 404);
    assert!(v["message"].as_str().unwrap().contains("no-such-template"));
    let (s, v) = srv.api(
        "POST",
        "/v2/sandboxes",
        r#"{"templateID":"base","timeout":0}"#,
    );
    assert_error_body(s, &v, 400);
    let (s, v) = srv.api("GET", "/sandboxes/doesnotexist", "");
    assert_error_body(s, &v, 404);
    let (s, v) = srv.api("GET", "/v2/sandboxes?limit=0", "");
    assert_error_body(s, &v, 400);
    let (s, v) = srv.api("GET", "/v2/sandboxes?nextToken=%%%", "");
    assert_error_body(s, &v, 400);
    srv.stop();
}

/// A template whose image cannot hold a sandbox (here /proc is a symlink to the host's root)
/// is refused with a 400 that names the cause, not a retryable 503.
#[test]
fn a_template_whose_image_cannot_start_gets_a_clear_error() {
    let data = data_dir();
    let image = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::create_dir(image.path().join("bin")).unwrap();
    std::os::unix::fs::symlink("/", image.path().join("proc")).unwrap();
    let srv = Server::start_with(data.path(), image.path());
    let (s, v) = srv.api("POST", "/v2/sandboxes", r#"{"templateID":"base"}"#);
    assert_error_body(s, &v, 400);
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("image"), "{message}");
    assert!(message.contains("/proc is a symlink"), "{message}");
    srv.stop();
}

#[test]
fn sandbox_lifecycle_through_api_and_proxy() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let v = srv.create(r#"{"templateID":"base","metadata":{"k":"v"},"envVars":{"A":"1"}}"#);
    let id = v["sandboxID"].as_str().unwrap().to_string();
    for field in ["templateID", "clientID", "envdVersion", "envdAccessToken"] {
        assert!(v[field].is_string(), "{field} missing: {v}");
    }
    let token = v["envdAccessToken"].as_str().unwrap().to_string();
    let (s, detail) = srv.api("GET", &format!("/sandboxes/{id}"), "");
    assert_eq!(s, 200);
    assert_eq!(detail["state"], "running");
    assert_eq!(detail["metadata"]["k"], "v");
    // envd through the proxy, routed by headers; the token is required.
    let route = [
        ("E2b-Sandbox-Id", id.as_str()),
        ("E2b-Sandbox-Port", "49983"),
    ];
    assert_eq!(srv.request("GET", "/health", &route, b"").0, 204);
    let (s, _, _) = srv.request("GET", "/files?path=/etc/hostname", &route, b"");
    assert_eq!(s, 401, "envd must require the access token");
    let with_token = [route[0], route[1], ("X-Access-Token", token.as_str())];
    let (s, _, body) = srv.request(
        "GET",
        "/files?path=/etc/hostname&username=root",
        &with_token,
        b"",
    );
    assert_eq!(
        (s, String::from_utf8_lossy(&body).trim().to_string()),
        (200, id.clone())
    );
    // envd's internal paths are refused from outside.
    assert_eq!(srv.request("POST", "/init", &with_token, b"{}").0, 403);
    // A closed port and an unknown sandbox give the reference proxy's 502 bodies.
    let (s, _, body) = srv.request(
        "GET",
        "/",
        &[("E2b-Sandbox-Id", &id), ("E2b-Sandbox-Port", "8080")],
        b"",
    );
    assert_eq!(s, 502);
    assert!(String::from_utf8_lossy(&body).contains("port is not open"));
    // Host routing: <port>-<id>.<domain>.
    let (s, _, _) = {
        let mut st = TcpStream::connect(&srv.addr).unwrap();
        write!(
            st,
            "GET /health HTTP/1.1\r\nHost: 49983-{id}.localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        st.read_to_string(&mut raw).unwrap();
        (
            raw.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u16>()
                .unwrap(),
            (),
            (),
        )
    };
    assert_eq!(s, 204);
    // Pause (409 the second time), connect resumes with 201, then 200.
    assert_eq!(
        srv.api("POST", &format!("/sandboxes/{id}/pause"), "{}").0,
        204
    );
    assert_eq!(
        srv.api("POST", &format!("/sandboxes/{id}/pause"), "{}").0,
        409
    );
    assert_eq!(
        srv.api("GET", &format!("/sandboxes/{id}"), "").1["state"],
        "paused"
    );
    assert_eq!(
        srv.api("POST", &format!("/v2/sandboxes/{id}/connect"), "{}")
            .0,
        201
    );
    assert_eq!(
        srv.api("POST", &format!("/v2/sandboxes/{id}/connect"), "{}")
            .0,
        200
    );
    let (s, m) = srv.api("GET", &format!("/sandboxes/{id}/metrics"), "");
    assert_eq!(s, 200);
    assert!(m[0]["memUsed"].as_u64().unwrap() > 0, "{m}");
    // Several at once, from the manager's own sampling: the live one by id, an unknown id
    // left out; a window that ends before it starts is a 400.
    let (s, m) = srv.api(
        "GET",
        &format!("/sandboxes/metrics?sandbox_ids={id},nosuchsandbox"),
        "",
    );
    assert_eq!(s, 200, "{m}");
    let by_id = m["sandboxes"].as_object().unwrap();
    assert_eq!(by_id.len(), 1, "{m}");
    assert!(by_id[&id]["memUsed"].as_u64().unwrap() > 0, "{m}");
    assert!(by_id[&id]["diskTotal"].as_u64().unwrap() > 0, "{m}");
    let (s, m) = srv.api(
        "GET",
        &format!("/sandboxes/{id}/metrics?start=20&end=10"),
        "",
    );
    assert_error_body(s, &m, 400);
    assert_eq!(
        srv.api(
            "POST",
            &format!("/sandboxes/{id}/timeout"),
            r#"{"timeout":600}"#
        )
        .0,
        204
    );
    assert_eq!(srv.api("DELETE", &format!("/sandboxes/{id}"), "").0, 204);
    assert_eq!(srv.api("DELETE", &format!("/sandboxes/{id}"), "").0, 404);
    let (s, _, body) = srv.request("GET", "/health", &route, b"");
    assert_eq!(s, 502);
    assert!(String::from_utf8_lossy(&body).contains("was not found"));
    srv.stop();
}

#[test]
fn idempotency_key_returns_the_same_sandbox() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let send = || {
        let (s, _, b) = srv.request(
            "POST",
            "/v2/sandboxes",
            &[("X-API-KEY", &srv.key), ("Idempotency-Key", "retry-1")],
            br#"{"templateID":"base"}"#,
        );
        assert_eq!(s, 201);
        serde_json::from_slice::<Value>(&b).unwrap()["sandboxID"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(send(), send());
    let (s, _, _) = srv.request(
        "POST",
        "/v2/sandboxes",
        &[("X-API-KEY", &srv.key), ("Idempotency-Key", "Bad Key!")],
        br#"{"templateID":"base"}"#,
    );
    assert_eq!(s, 400);
    srv.stop();
}

#[test]
fn timeouts_kill_sandboxes() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let id = srv.create(r#"{"templateID":"base","timeout":1}"#)["sandboxID"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Destroying is asynchronous: the sandbox leaves the registry first, its directory a
    // moment later; both must happen.
    while srv.api("GET", &format!("/sandboxes/{id}"), "").0 == 200
        || data.path().join("sandboxes").join(&id).exists()
    {
        assert!(
            Instant::now() < deadline,
            "sandbox outlived its timeout, or left its directory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    srv.stop();
}

#[test]
fn list_filters_and_paginates() {
    let data = data_dir();
    let srv = Server::start(data.path());
    for i in 0..3 {
        srv.create(&format!(
            r#"{{"templateID":"base","metadata":{{"n":"{i}","app":"x/y z"}}}}"#
        ));
    }
    let (_, head, body) = srv.request(
        "GET",
        "/v2/sandboxes?limit=2",
        &[("X-API-KEY", &srv.key)],
        b"",
    );
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    let token = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-next-token: ")
                .map(|_| l[14..].trim().to_string())
        })
        .expect("x-next-token");
    let (_, head2, body2) = srv.request(
        "GET",
        &format!("/v2/sandboxes?limit=2&nextToken={token}"),
        &[("X-API-KEY", &srv.key)],
        b"",
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body2)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!head2.to_ascii_lowercase().contains("x-next-token"));
    // metadata=n%3D1%26app%3Dx%252Fy%2520z, the way the SDKs encode {"n":"1","app":"x/y z"}.
    let (s, v) = srv.api(
        "GET",
        "/v2/sandboxes?metadata=n%3D1%26app%3Dx%252Fy%2520z",
        "",
    );
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        srv.api("GET", "/v2/sandboxes?state=paused", "")
            .1
            .as_array()
            .unwrap()
            .len(),
        0
    );
    srv.stop();
}

/// A server killed with SIGKILL leaves its sandboxes running; the next start adopts the
/// handed-out ones (same id, token, files and processes) and removes the rest (its pool's).
#[test]
fn restart_after_a_crash_adopts_running_sandboxes() {
    let data = data_dir();
    let mut srv = Server::start(data.path());
    let v = srv.create(r#"{"templateID":"base","metadata":{"who":"me"}}"#);
    let id = v["sandboxID"].as_str().unwrap().to_string();
    let token = v["envdAccessToken"].as_str().unwrap().to_string();
    let route = [
        ("E2b-Sandbox-Id", id.as_str()),
        ("E2b-Sandbox-Port", "49983"),
        ("X-Access-Token", token.as_str()),
    ];
    let (s, _, _) = srv.request(
        "POST",
        "/files?path=/tmp/kept.txt&username=root",
        &[
            route[0],
            route[1],
            route[2],
            ("Content-Type", "application/octet-stream"),
        ],
        b"still here",
    );
    assert_eq!(s, 200);
    // The pool refills in the background after the hand-over: wait for its sandbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pooled_before = loop {
        let pooled: Vec<String> = std::fs::read_dir(data.path().join("sandboxes"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| *n != id)
            .collect();
        if !pooled.is_empty() {
            break pooled;
        }
        assert!(Instant::now() < deadline, "the pool never refilled");
        std::thread::sleep(Duration::from_millis(20));
    };
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
    let srv = Server::start(data.path());
    let (s, detail) = srv.api("GET", &format!("/sandboxes/{id}"), "");
    assert_eq!(s, 200, "the running sandbox was not adopted: {detail}");
    assert_eq!(detail["metadata"]["who"], "me");
    let (s, _, body) = srv.request(
        "GET",
        "/files?path=/tmp/kept.txt&username=root",
        &route,
        b"",
    );
    assert_eq!(
        (s, String::from_utf8_lossy(&body).to_string()),
        (200, "still here".to_string())
    );
    for old in &pooled_before {
        assert!(
            !data.path().join("sandboxes").join(old).exists(),
            "the old pool's sandbox {old} was left behind"
        );
    }
    assert_eq!(srv.api("DELETE", &format!("/sandboxes/{id}"), "").0, 204);
    srv.stop();
    // A clean stop removes every sandbox, pooled ones included.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(data.path().join("sandboxes"))
            .unwrap()
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Another team's key sees none of this team's sandboxes: 404, never its data.
#[test]
fn teams_are_isolated() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let other = team_key(data.path(), "other");
    let id = srv.create(r#"{"templateID":"base"}"#)["sandboxID"]
        .as_str()
        .unwrap()
        .to_string();
    let as_other = |method: &str, path: &str| {
        let (s, _, b) = srv.request(method, path, &[("X-API-KEY", &other)], b"{}");
        (s, String::from_utf8_lossy(&b).to_string())
    };
    assert_eq!(as_other("GET", &format!("/sandboxes/{id}")).0, 404);
    assert_eq!(as_other("DELETE", &format!("/sandboxes/{id}")).0, 404);
    assert_eq!(as_other("POST", &format!("/sandboxes/{id}/pause")).0, 404);
    assert_eq!(
        as_other("POST", &format!("/v2/sandboxes/{id}/connect")).0,
        404
    );
    let (s, list) = as_other("GET", "/v2/sandboxes");
    assert_eq!((s, list.as_str()), (200, "[]"));
    assert_eq!(
        srv.api("GET", &format!("/sandboxes/{id}"), "").0,
        200,
        "the owner lost its sandbox"
    );
    srv.stop();
}

/// A new API key of `team`, made with `bulkhead key create`.
fn team_key(data: &std::path::Path, team: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["key", "create", "--team", team, "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("e2b_"))
        .expect("a key")
        .to_string()
}

/// Admission control: a team at its limit, the server at its limit and a team creating
/// faster than its rate each get E2B's 429 with a message saying which, before anything is
/// started; a kill makes room again.
#[test]
fn admission_limits_refuse_with_429_and_leave_nothing() {
    let data = data_dir();
    let rootfs = common::rootfs("debian");
    let srv = Server::start_args(
        data.path(),
        &rootfs,
        &["--max-sandboxes", "3", "--max-sandboxes-per-team", "2"],
    );
    let other = team_key(data.path(), "other");
    let base = r#"{"templateID":"base"}"#;
    let first = srv.create(base)["sandboxID"].as_str().unwrap().to_string();
    srv.create(base);
    let (s, v) = srv.api("POST", "/v2/sandboxes", base);
    assert_error_body(s, &v, 429);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("concurrent sandboxes (2)"),
        "{v}"
    );
    let as_other = || {
        let (s, _, b) = srv.request(
            "POST",
            "/v2/sandboxes",
            &[("X-API-KEY", &other), ("Content-Type", "application/json")],
            base.as_bytes(),
        );
        (
            s,
            serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
        )
    };
    assert_eq!(as_other().0, 201, "another team has its own share");
    let (s, v) = as_other();
    assert_error_body(s, &v, 429);
    assert!(
        v["message"].as_str().unwrap().contains("maximum of 3"),
        "{v}"
    );
    let (_, list) = srv.api("GET", "/v2/sandboxes", "");
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "a refused create left nothing: {list}"
    );
    assert_eq!(srv.api("DELETE", &format!("/sandboxes/{first}"), "").0, 204);
    srv.create(base);
    srv.stop();

    let data = data_dir();
    let srv = Server::start_args(data.path(), &rootfs, &["--max-creates-per-second", "0.2"]);
    srv.create(base);
    let (s, v) = srv.api("POST", "/v2/sandboxes", base);
    assert_error_body(s, &v, 429);
    assert!(v["message"].as_str().unwrap().contains("per second"), "{v}");
    srv.stop();
}

/// Random bodies and query strings never produce a 5xx or a non-JSON error.
#[test]
fn fuzzed_input_never_yields_a_server_error() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let mut rng = rand::rng();
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"templateID\"",
        ":",
        ",",
        "\"base\"",
        "null",
        "-1",
        "1e999",
        "\"timeout\"",
        "\"metadata\"",
        "{\"a\":1}",
        "\"envVars\"",
        "true",
        "\"\\u0000\"",
        "\"x\"",
        "99999999999999999999",
        "\"autoPause\"",
    ];
    for _ in 0..150 {
        let body: String = (0..rng.random_range(0..12))
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        let (s, v) = srv.api("POST", "/v2/sandboxes", &body);
        assert!(s < 500, "5xx for body {body:?}: {v}");
        if s >= 400 {
            assert_error_body(s, &v, s);
        } else if let Some(id) = v["sandboxID"].as_str() {
            srv.api("DELETE", &format!("/sandboxes/{id}"), "");
        }
    }
    let queries = [
        "limit=abc",
        "limit=-5",
        "state=,,,",
        "state=zombie",
        "metadata=%",
        "metadata=a",
        "order=sideways",
        "startedAfter=yesterday",
        "nextToken=AAAA",
        "metadata=%25%25%25",
    ];
    for q in queries {
        let (s, v) = srv.api("GET", &format!("/v2/sandboxes?{q}"), "");
        assert!(s < 500, "5xx for query {q}: {v}");
        if s >= 400 {
            assert_error_body(s, &v, s);
        }
    }
    srv.stop();
}

/// The configuration file fills what flags and variables leave unset, and a typo in it is an
/// error (exit 64) that names the key, not a silently ignored setting.
#[test]
fn config_file_layering_and_typos() {
    let dir = data_dir();
    let data = dir.path().join("from-file");
    let cfg = dir.path().join("bulkhead.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\npool_size = 0\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["serve", "--base-rootfs"])
        .arg(common::rootfs("debian"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("listening on http://127.0.0.1:"), "{first}");
    assert!(
        data.join("api-key").exists(),
        "data_dir from the file was not used"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    std::fs::write(&cfg, "pool_sise = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pool_sise"),
        "{out:?}"
    );
}

/// The answers name the server's domain (the SDK's `get_host` builds `<port>-<id>.<domain>`
/// from it), and a malformed path segment is an E2B error body too.
#[test]
fn domain_and_malformed_ids() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let v = srv.create(r#"{"templateID":"base"}"#);
    assert_eq!(v["domain"], "localhost");
    let (s, _, body) = srv.request("GET", "/sandboxes/%FF%FE", &[("X-API-KEY", &srv.key)], b"");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_error_body(s, &v, 400);
    srv.stop();
}

/// A sandbox whose init is killed from outside the server leaves the registry and the disk.
#[test]
fn sandboxes_killed_from_outside_are_removed() {
    let data = data_dir();
    let srv = Server::start(data.path());
    let id = srv.create(r#"{"templateID":"base"}"#)["sandboxID"]
        .as_str()
        .unwrap()
        .to_string();
    let state: Value = serde_json::from_slice(
        &std::fs::read(data.path().join("sandboxes").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let pid = state["init_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.api("GET", &format!("/sandboxes/{id}"), "").0 == 200
        || data.path().join("sandboxes").join(&id).exists()
    {
        assert!(
            Instant::now() < deadline,
            "a dead sandbox stayed registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    srv.stop();
}

#[test]
fn envd_keeps_serving_when_its_log_reader_goes_away() {
    let data = data_dir();
    let mut srv = Server::start(data.path());
    let v = srv.create(r#"{"templateID":"base"}"#);
    let id = v["sandboxID"].as_str().unwrap().to_string();
    let token = v["envdAccessToken"].as_str().unwrap().to_string();
    let route = [
        ("E2b-Sandbox-Id", id.as_str()),
        ("E2b-Sandbox-Port", "49983"),
        ("X-Access-Token", token.as_str()),
    ];
    // A read that envd fails and logs (the reproduction of envd dying on its own log line).
    let logged = "/files?path=/proc/1/environ&username=root";
    let (s, _, _) = srv.request("GET", logged, &route, b"");
    assert!((400..=500).contains(&s), "{s}");
    let log = data.path().join("sandboxes").join(&id).join("envd.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert!(
            Instant::now() < deadline,
            "envd's log was not kept in {log:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server that drained envd's stderr dies; the sandbox is adopted by the next one,
    // and envd's stderr is now a pipe nobody reads: every log line meets EPIPE.
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
    let srv = Server::start(data.path());
    for _ in 0..3 {
        // envd's own error answer (4xx or 500), not the proxy's 502 for a port nobody serves.
        let (s, _, _) = srv.request("GET", logged, &route, b"");
        assert!((400..=500).contains(&s), "envd stopped answering: {s}");
    }
    let (s, _, _) = srv.request(
        "POST",
        "/files?path=/tmp/after.txt&username=root",
        &[
            route[0],
            route[1],
            route[2],
            ("Content-Type", "application/octet-stream"),
        ],
        b"still serving",
    );
    assert_eq!(s, 200);
    assert_eq!(srv.api("DELETE", &format!("/sandboxes/{id}"), "").0, 204);
}
