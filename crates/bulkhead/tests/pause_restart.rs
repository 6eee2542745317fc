//! Pause across a server restart: the memory pause (freezer) and the filesystem-only one
//! (processes ended, files kept) are both in the sandbox's record, so a restarted server
//! still pauses at the timeout the way the create asked, and a connect resumes with the files.

#![allow(clippy::unwrap_used)]

#[path = "common/api_server.rs"]
mod api_server;
mod common;

use std::time::{Duration, Instant};

use api_server::{Server, data_dir};

/// Creates an auto-pause sandbox (`memory` = `autoPauseMemory`), writes a file, lets its
/// timeout pass (under the first server when `pause_first`, else under the restarted one),
/// and checks that it is paused, not killed, and resumes with the file.
fn pause_across_a_restart(memory: bool, pause_first: bool) {
    let data = data_dir();
    let mut srv = Server::start(data.path());
    let v = srv.create(&format!(
        r#"{{"templateID":"base","autoPause":true,"autoPauseMemory":{memory},"timeout":3600}}"#
    ));
    let id = v["sandboxID"].as_str().unwrap().to_string();
    let token = v["envdAccessToken"].as_str().unwrap().to_string();
    let route = [
        ("E2b-Sandbox-Id", id.as_str()),
        ("E2b-Sandbox-Port", "49983"),
        ("X-Access-Token", token.as_str()),
    ];
    let file = "/files?path=/tmp/kept.txt&username=root";
    let mut upload = route.to_vec();
    upload.push(("Content-Type", "application/octet-stream"));
    assert_eq!(
        srv.request("POST", file, &upload, b"paused, not gone").0,
        200
    );
    let time_out = |srv: &Server| {
        let (s, v) = srv.api(
            "POST",
            &format!("/sandboxes/{id}/timeout"),
            r#"{"timeout":0}"#,
        );
        assert_eq!(s, 204, "{v}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (s, detail) = srv.api("GET", &format!("/sandboxes/{id}"), "");
            assert_eq!(
                s, 200,
                "the auto-pause sandbox was killed at its timeout: {detail}"
            );
            if detail["state"] == "paused" {
                break;
            }
            assert_eq!(detail["state"], "running");
            assert!(Instant::now() < deadline, "never paused: {detail}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    if pause_first {
        time_out(&srv);
    }
    srv.child.kill().unwrap();
    let _ = srv.child.wait();

    let srv = Server::start(data.path());
    if !pause_first {
        time_out(&srv);
    }
    let (s, v) = srv.api(
        "POST",
        &format!("/v2/sandboxes/{id}/connect"),
        r#"{"timeout":60}"#,
    );
    assert_eq!(s, 201, "connecting should resume it: {v}");
    let (s, _, body) = srv.request("GET", file, &route, b"");
    assert_eq!(
        (s, String::from_utf8_lossy(&body).to_string()),
        (200, "paused, not gone".to_string())
    );
    assert_eq!(srv.api("DELETE", &format!("/sandboxes/{id}"), "").0, 204);
    srv.stop();
}

/// Auto-pause is part of the sandbox's record: under a restarted server the sandbox is still
/// paused at its timeout, not killed, and resumes with its files.
#[test]
fn auto_pause_survives_a_restart() {
    pause_across_a_restart(true, false);
}

/// A filesystem-only auto-pause ends the sandbox's processes at its timeout and keeps its
/// files; a server restarted while it is paused finds envd gone at connect and starts it.
#[test]
fn a_filesystem_pause_survives_a_restart() {
    pause_across_a_restart(false, true);
}
