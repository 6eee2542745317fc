//! `process.Process` over real HTTP on loopback, with real processes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn start_streams_start_data_end_then_end_stream() {
    let envd = start().await;
    let (msgs, end_stream) = envd.run("echo hi", json!({}), &[]).await.collect().await;
    assert_eq!(end_stream, json!({}));
    let end = check_order(&msgs);
    assert_eq!(end, json!({ "exited": true, "status": "exit status 0" }));
    assert_eq!(output(&msgs, "stdout"), "hi\n");
}

#[tokio::test]
async fn non_zero_exit_reports_code_and_error() {
    let envd = start().await;
    let (msgs, _) = envd
        .run("echo oops >&2; exit 3", json!({}), &[])
        .await
        .collect()
        .await;
    let end = check_order(&msgs);
    assert_eq!(end["exitCode"], 3);
    assert_eq!(end["error"], "exit status 3");
    assert_eq!(output(&msgs, "stderr"), "oops\n");
}

#[tokio::test]
async fn runs_as_the_default_user_with_env_precedence_and_home_cwd() {
    let envd = start_with(|c| {
        c.env_vars.insert("GLOBAL".into(), "g".into());
        c.env_vars.insert("OVER".into(), "global".into());
    })
    .await;
    let cmd = "echo $(id -u) $(id -g) $HOME $USER $GLOBAL $OVER $(pwd); id -G";
    let extra = json!({ "process": { "envs": { "OVER": "request" } } });
    let (msgs, _) = envd.run(cmd, extra, &[]).await.collect().await;
    check_order(&msgs);
    let home = envd.home.display().to_string();
    let out = output(&msgs, "stdout");
    assert_eq!(
        out.lines().next(),
        Some(format!("1000 1000 {home} user g request {home}").as_str())
    );
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.split(' ').any(|g| g == "1234")),
        "supplementary group: {out}"
    );
}

#[tokio::test]
async fn basic_auth_selects_root_and_unknown_user_is_unauthenticated() {
    let envd = start().await;
    let auth = basic("root");
    let (msgs, _) = envd
        .run(
            "id -u",
            json!({ "process": { "cwd": "/" } }),
            &[("authorization", &auth)],
        )
        .await
        .collect()
        .await;
    assert_eq!(output(&msgs, "stdout"), "0\n");

    let auth = basic("ghost");
    let (msgs, end) = envd
        .run("true", json!({}), &[("authorization", &auth)])
        .await
        .collect()
        .await;
    assert!(msgs.is_empty());
    assert_eq!(end["error"]["code"], "unauthenticated");
    assert_eq!(end["error"]["message"], "invalid username: 'ghost'");

    let (status, _, body) = envd
        .unary_with(
            "filesystem.Filesystem/Stat",
            json!({"path": "/"}),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
}

#[tokio::test]
async fn missing_cwd_is_invalid_argument_in_the_end_stream() {
    let envd = start().await;
    let (msgs, end) = envd
        .run(
            "true",
            json!({ "process": { "cwd": "/does/not/exist" } }),
            &[],
        )
        .await
        .collect()
        .await;
    assert!(msgs.is_empty());
    assert_eq!(end["error"]["code"], "invalid_argument");
    assert_eq!(
        end["error"]["message"],
        "cwd '/does/not/exist' does not exist"
    );
}

#[tokio::test]
async fn spawn_failure_is_invalid_argument_and_path_lookup_uses_the_process_path() {
    let envd = start().await;
    let msg = json!({ "process": { "cmd": "/no/such/binary" }, "stdin": false });
    let (msgs, end) = envd
        .stream("process.Process/Start", msg, &[])
        .await
        .collect()
        .await;
    assert!(msgs.is_empty());
    assert_eq!(end["error"]["code"], "invalid_argument");
    assert!(
        end["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("error starting process '/no/such/binary'")),
        "{end}"
    );
    let msg =
        json!({ "process": { "cmd": "echo", "args": ["found", "on", "PATH"] }, "stdin": false });
    let (msgs, _) = envd
        .stream("process.Process/Start", msg, &[])
        .await
        .collect()
        .await;
    assert_eq!(output(&msgs, "stdout"), "found on PATH\n");
}

#[tokio::test]
async fn stdin_send_input_then_close_stdin() {
    let envd = start().await;
    let mut s = envd
        .run("cat; echo done", json!({ "stdin": true }), &[])
        .await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let sel = json!({ "pid": pid });
    let (st, ct, body) = envd
        .unary(
            "process.Process/SendInput",
            json!({ "process": sel, "input": { "stdin": b64(b"abc\n") } }),
        )
        .await;
    assert_eq!(
        (st, ct.as_str(), body),
        (200, "application/json", json!({}))
    );
    let first = s.next().await.expect("data");
    assert_eq!(unb64(&first.json["event"]["data"]["stdout"]), b"abc\n");
    let (st, _, _) = envd
        .unary("process.Process/CloseStdin", json!({ "process": sel }))
        .await;
    assert_eq!(st, 200);
    let (msgs, _) = s.collect().await;
    assert_eq!(output(&msgs, "stdout"), "done\n");
    assert_eq!(
        msgs.last().map(|m| m["event"]["end"]["status"].clone()),
        Some(json!("exit status 0"))
    );
}

#[tokio::test]
async fn stdin_false_means_dev_null_and_send_input_fails() {
    let envd = start().await;
    let mut s = envd
        .run("sleep 0.3; cat", json!({ "stdin": false }), &[])
        .await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let (st, _, body) = envd
        .unary(
            "process.Process/SendInput",
            json!({ "process": { "pid": pid }, "input": { "stdin": b64(b"x") } }),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("failed_precondition"))
    );
    let (msgs, _) = s.collect().await;
    assert_eq!(output(&msgs, "stdout"), "");
}

#[tokio::test]
async fn stream_input_writes_each_message_as_it_arrives() {
    let envd = start().await;
    let cmd = "while read -r l; do echo \"got $l\"; [ \"$l\" = def ] && exit; done";
    let mut s = envd.run(cmd, json!({ "stdin": true }), &[]).await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let req = envd
        .http
        .post(format!("{}/process.Process/StreamInput", envd.base))
        .header("content-type", "application/connect+json")
        .header("connect-protocol-version", "1")
        .body(body)
        .send();
    let req = tokio::spawn(req);
    tx.send(Ok(envelope(
        0,
        &json!({ "start": { "process": { "pid": pid } } }),
    )))
    .await
    .expect("send");
    tx.send(Ok(envelope(
        0,
        &json!({ "data": { "input": { "stdin": b64(b"abc\n") } } }),
    )))
    .await
    .expect("send");
    // The first chunk reaches the process while the request body is still open.
    let first = s.next().await.expect("data");
    assert_eq!(unb64(&first.json["event"]["data"]["stdout"]), b"got abc\n");
    tx.send(Ok(envelope(0, &json!({ "keepalive": {} }))))
        .await
        .expect("send");
    tx.send(Ok(envelope(
        0,
        &json!({ "data": { "input": { "stdin": b64(b"def\n") } } }),
    )))
    .await
    .expect("send");
    drop(tx);
    let res = req.await.expect("join").expect("response");
    assert_eq!(res.status().as_u16(), 200);
    let bytes = res.bytes().await.expect("body");
    assert_eq!(
        &bytes[..],
        &[&envelope(0, &json!({}))[..], &envelope(2, &json!({}))[..]].concat()[..]
    );
    let (msgs, _) = s.collect().await;
    assert_eq!(output(&msgs, "stdout"), "got def\n");
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn send_signal_kills_the_process_group() {
    let envd = start().await;
    let mut s = envd.run("sleep 30 & sleep 30", json!({}), &[]).await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let (st, _, _) = envd
        .unary(
            "process.Process/SendSignal",
            json!({ "process": { "pid": pid }, "signal": "SIGNAL_SIGKILL" }),
        )
        .await;
    assert_eq!(st, 200);
    let (msgs, end_stream) = s.collect().await;
    assert_eq!(end_stream, json!({}));
    let end = &msgs.last().expect("end")["event"]["end"];
    assert_eq!(
        (end["exitCode"].as_i64(), end["status"].as_str()),
        (Some(-1), Some("signal: killed"))
    );
    assert!(end.get("exited").is_none());
    let (st, _, body) = envd
        .unary(
            "process.Process/SendSignal",
            json!({ "process": { "pid": pid }, "signal": 9 }),
        )
        .await;
    assert_eq!((st, body["code"].as_str()), (404, Some("not_found")));
    let (st, _, body) = envd
        .unary(
            "process.Process/SendSignal",
            json!({ "process": { "pid": 1 }, "signal": "SIGNAL_UNSPECIFIED" }),
        )
        .await;
    assert_eq!((st, body["code"].as_str()), (501, Some("unimplemented")));
}

#[tokio::test]
async fn connect_list_and_tags() {
    let envd = start().await;
    let mut s = envd
        .run(
            "read x; echo got $x",
            json!({ "stdin": true, "tag": "worker" }),
            &[],
        )
        .await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");

    let (st, _, list) = envd.unary("process.Process/List", json!({})).await;
    assert_eq!(st, 200);
    let procs = list["processes"].as_array().expect("processes");
    let me = procs.iter().find(|p| p["pid"] == pid).expect("listed");
    assert_eq!(me["tag"], "worker");
    assert_eq!(me["config"]["args"][2], "read x; echo got $x");

    let mut attached = envd
        .stream(
            "process.Process/Connect",
            json!({ "process": { "tag": "worker" } }),
            &[("keepalive-ping-interval", "50")],
        )
        .await;
    assert_eq!(
        attached.next().await.expect("start").json["event"]["start"]["pid"],
        pid
    );
    envd.unary(
        "process.Process/SendInput",
        json!({ "process": { "pid": pid }, "input": { "stdin": b64(b"1\n") } }),
    )
    .await;
    let (msgs, _) = attached.collect().await;
    assert_eq!(output(&msgs, "stdout"), "got 1\n");
    assert_eq!(
        msgs.last().map(|m| m["event"]["end"]["status"].clone()),
        Some(json!("exit status 0"))
    );
    let (first, _) = s.collect().await;
    assert_eq!(output(&first, "stdout"), "got 1\n");

    let (_, _, list) = envd.unary("process.Process/List", json!({})).await;
    assert!(
        !list["processes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["pid"] == pid))
    );
    // Recently finished: start then end, straight away.
    let (msgs, _) = envd
        .stream(
            "process.Process/Connect",
            json!({ "process": { "pid": pid } }),
            &[],
        )
        .await
        .collect()
        .await;
    check_order(&msgs);
    let (msgs, end) = envd
        .stream(
            "process.Process/Connect",
            json!({ "process": { "pid": 999_999 } }),
            &[],
        )
        .await
        .collect()
        .await;
    assert!(msgs.is_empty());
    assert_eq!(end["error"]["code"], "not_found");
    assert_eq!(end["error"]["message"], "process with pid 999999 not found");
}

#[tokio::test]
async fn pty_output_input_and_resize() {
    let envd = start().await;
    let msg = json!({
        "process": { "cmd": "/bin/bash", "args": ["--norc", "--noprofile"], "envs": { "TERM": "xterm-256color", "PS1": "$ " } },
        "pty": { "size": { "cols": 100, "rows": 30 } }
    });
    let mut s = envd
        .stream(
            "process.Process/Start",
            msg,
            &[("keepalive-ping-interval", "50")],
        )
        .await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let send = |text: &'static str| {
        let envd = &envd;
        async move {
            let (st, _, body) = envd
                .unary(
                    "process.Process/SendInput",
                    json!({ "process": { "pid": pid }, "input": { "pty": b64(text.as_bytes()) } }),
                )
                .await;
            assert_eq!(st, 200, "{body}");
        }
    };
    let mut seen = String::new();
    send("stty size; tty\n").await;
    while !seen.contains("30 100") {
        let m = s.next().await.expect("pty data");
        seen.push_str(&String::from_utf8_lossy(&unb64(
            &m.json["event"]["data"]["pty"],
        )));
    }
    let (st, _, _) = envd
        .unary(
            "process.Process/Update",
            json!({ "process": { "pid": pid }, "pty": { "size": { "cols": 120, "rows": 40 } } }),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _, body) = envd
        .unary(
            "process.Process/CloseStdin",
            json!({ "process": { "pid": pid } }),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("failed_precondition"))
    );
    send("stty size; exit 7\n").await;
    let (msgs, _) = s.collect().await;
    seen.push_str(&output(&msgs, "pty"));
    assert!(seen.contains("/dev/pts/"), "{seen}");
    assert!(seen.contains("40 120"), "{seen}");
    assert_eq!(
        msgs.last().map(|m| m["event"]["end"]["exitCode"].clone()),
        Some(json!(7))
    );
}

#[tokio::test]
async fn connect_timeout_is_the_process_deadline() {
    let envd = start().await;
    let started = std::time::Instant::now();
    let mut s = envd
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/sleep", "args": ["30"] }, "stdin": false }),
            &[("connect-timeout-ms", "500")],
        )
        .await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let (msgs, end) = s.collect().await;
    assert!(msgs.is_empty());
    assert_eq!(end["error"]["code"], "deadline_exceeded");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(),
        "process must be gone"
    );
}

#[tokio::test]
async fn keepalives_follow_the_requested_interval_and_disconnect_does_not_kill() {
    let envd = start().await;
    let msg = json!({ "process": { "cmd": "/bin/bash", "args": ["-c", "sleep 1.5; echo late > late.txt"] }, "stdin": false });
    let mut s = envd
        .stream(
            "process.Process/Start",
            msg,
            &[("keepalive-ping-interval", "1")],
        )
        .await;
    s.next().await.expect("start");
    let m = s.next().await.expect("keepalive");
    assert_eq!(m.json, json!({ "event": { "keepalive": {} } }));
    drop(s);
    let late = envd.home.join("late.txt");
    for _ in 0..50 {
        if late.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("process was killed when its stream went away");
}

#[tokio::test]
async fn a_stream_that_does_not_read_is_detached_and_the_process_finishes() {
    let envd = start_with(|c| c.max_stream_buffer = 64 << 10).await;
    let mut s = envd
        .run(
            "head -c 30000000 /dev/zero; echo finished > done.txt",
            json!({}),
            &[],
        )
        .await;
    s.next().await.expect("start");
    // Do not read: envd's queue for this stream fills up.
    let done = envd.home.join("done.txt");
    for _ in 0..100 {
        if done.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done.exists(), "a slow client must not block the process");
    let (_, end) = s.collect().await;
    assert_eq!(end["error"]["code"], "resource_exhausted", "{end}");
}

#[tokio::test]
async fn connect_timeout_on_connect_ends_the_stream_but_not_the_process() {
    let envd = start().await;
    let msg = json!({ "process": { "cmd": "/bin/sleep", "args": ["30"] }, "stdin": false });
    let mut s = envd.stream("process.Process/Start", msg, &[]).await;
    let pid = s.next().await.expect("start").json["event"]["start"]["pid"]
        .as_u64()
        .expect("pid");
    let sel = json!({ "process": { "pid": pid } });
    let (msgs, end) = envd
        .stream(
            "process.Process/Connect",
            sel.clone(),
            &[("connect-timeout-ms", "300")],
        )
        .await
        .collect()
        .await;
    assert_eq!(msgs.len(), 1, "only start: {msgs:?}");
    assert_eq!(end["error"]["code"], "deadline_exceeded");
    let (_, _, list) = envd.unary("process.Process/List", json!({})).await;
    assert!(
        list["processes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["pid"] == pid)),
        "still running"
    );
    let (st, _, body) = envd
        .unary(
            "process.Process/Update",
            json!({ "process": { "pid": pid }, "pty": { "size": { "cols": 1, "rows": 1 } } }),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("failed_precondition")),
        "no pty to resize"
    );
    envd.unary(
        "process.Process/SendSignal",
        json!({ "process": { "pid": pid }, "signal": "SIGNAL_SIGTERM" }),
    )
    .await;
    let (msgs, _) = s.collect().await;
    assert_eq!(
        msgs.last().map(|m| m["event"]["end"]["status"].clone()),
        Some(json!("signal: terminated"))
    );
}

#[tokio::test]
async fn unknown_processes_are_not_found_everywhere() {
    let envd = start().await;
    let sel = json!({ "pid": 999_999 });
    for (method, msg) in [
        (
            "SendInput",
            json!({ "process": sel, "input": { "stdin": b64(b"x") } }),
        ),
        ("CloseStdin", json!({ "process": sel })),
        (
            "Update",
            json!({ "process": sel, "pty": { "size": { "cols": 1, "rows": 1 } } }),
        ),
        (
            "SendSignal",
            json!({ "process": { "tag": "nope" }, "signal": "SIGNAL_SIGKILL" }),
        ),
    ] {
        let (st, _, body) = envd.unary(&format!("process.Process/{method}"), msg).await;
        assert_eq!(
            (st, body["code"].as_str()),
            (404, Some("not_found")),
            "{method}: {body}"
        );
    }
    let (st, _, body) = envd
        .unary("process.Process/CloseStdin", json!({ "process": {} }))
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("invalid_argument")),
        "empty selector"
    );
}

#[tokio::test]
async fn children_inherit_no_envd_file_descriptors_or_signal_state() {
    let envd = start().await;
    // Open what envd keeps open: a watcher (inotify), a PTY master, a stdin pipe, sockets.
    std::fs::create_dir(envd.home.join("w")).expect("mkdir");
    let (st, _, _) = envd
        .unary(
            "filesystem.Filesystem/CreateWatcher",
            json!({ "path": "w" }),
        )
        .await;
    assert_eq!(st, 200);
    let pty = json!({ "process": { "cmd": "/bin/sleep", "args": ["5"] }, "pty": { "size": { "cols": 80, "rows": 24 } } });
    let mut p = envd.stream("process.Process/Start", pty, &[]).await;
    let pty_pid = p.next().await.expect("start").json["event"]["start"]["pid"].clone();
    let mut held = envd.run("sleep 5", json!({ "stdin": true }), &[]).await;
    let held_pid = held.next().await.expect("start").json["event"]["start"]["pid"].clone();
    let (msgs, _) = envd
        .run("ls /proc/self/fd", json!({}), &[])
        .await
        .collect()
        .await;
    let fds: Vec<String> = output(&msgs, "stdout")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    // 0-2 are stdio; 3 is the directory ls itself is reading.
    assert_eq!(fds, vec!["0", "1", "2", "3"]);
    // No signal is blocked or ignored (Rust ignores SIGPIPE in envd itself).
    let (msgs, _) = envd
        .run("grep -E '^Sig(Blk|Ign)' /proc/self/status", json!({}), &[])
        .await
        .collect()
        .await;
    assert_eq!(
        output(&msgs, "stdout"),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    for pid in [pty_pid, held_pid] {
        envd.unary(
            "process.Process/SendSignal",
            json!({ "process": { "pid": pid }, "signal": "SIGNAL_SIGKILL" }),
        )
        .await;
    }
}
