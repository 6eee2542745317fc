//! `bulkhead envd` as the sandbox init starts it: a real process on a loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bulkhead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
}

#[test]
fn envd_is_hidden_from_help() {
    let out = bulkhead()
        .arg("--help")
        .output()
        .expect("run bulkhead --help");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("envd"));
}

#[test]
fn bad_config_exits_64() {
    let out = bulkhead()
        .args([
            "envd",
            "--listen",
            "127.0.0.1:0",
            "--default-workdir",
            "relative/dir",
        ])
        .env_remove("BULKHEAD_ENVD_ACCESS_TOKEN")
        .output()
        .expect("run bulkhead envd");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an absolute path"));
}

#[test]
fn serves_health_and_requires_the_token_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").expect("write token");
    // Reserve a free port, release it, and start envd on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\n").expect("write passwd");
    let mut child = bulkhead()
        .args([
            "envd",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--default-user",
            "root",
        ])
        .arg("--passwd")
        .arg(&passwd)
        .arg("--access-token-file")
        .arg(&token_file)
        .env_remove("BULKHEAD_ENVD_ACCESS_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn envd");
    let request = |req: &str| -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        if let Some(r) = request("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") {
            break r;
        }
        assert!(Instant::now() < deadline, "envd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 204"), "{health}");
    let list = "POST /process.Process/List HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n";
    let refused = request(&format!("{list}\r\n{{}}")).expect("list");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let allowed = request(&format!("{list}X-Access-Token: file-token\r\n\r\n{{}}")).expect("list");
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    // An open PTY stream must not hold the shutdown: its reader blocks on a thread.
    let msg =
        br#"{"process":{"cmd":"/bin/sleep","args":["30"]},"pty":{"size":{"cols":80,"rows":24}}}"#;
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(msg);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST /process.Process/Start HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\nX-Access-Token: file-token\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(&body).expect("write");
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).expect("read start");
    let start = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(start.starts_with("HTTP/1.1 200"), "{start}");
    if !start.contains("start") {
        let n = stream.read(&mut first).expect("read start event");
        let event = String::from_utf8_lossy(&first[..n]).into_owned();
        assert!(event.contains("{\"event\":{\"start\""), "{event}");
    }
    let stopping = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
}
