//! Slow and silent clients against a real `bulkhead serve`: connection caps, eviction and the
//! header timeout hold before authentication (rows of crates/server/src/listener.rs).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Serve {
    child: Child,
    addr: SocketAddr,
    key: String,
}

impl Serve {
    fn start(data: &std::path::Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "0"])
            .arg("--base-rootfs")
            .arg(common::rootfs("debian"))
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .stderr(Stdio::null());
        let (child, url, key) = common::start_serve(cmd, data);
        let addr = url.trim_start_matches("http://").parse().unwrap();
        Self { child, addr, key }
    }

    /// An authenticated `GET /sandboxes` from `from`, on a fresh connection: its status.
    fn list_from(&self, from: &str) -> u16 {
        let mut s = connect_from(self.addr, from).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-KEY: {}\r\nConnection: close\r\n\r\n",
            self.key
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// A connection to `addr` whose source address is `from` (any of 127.0.0.0/8 is local).
fn connect_from(addr: SocketAddr, from: &str) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local: SocketAddr = format!("{from}:0").parse().map_err(std::io::Error::other)?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(local)?;
        let stream = socket.connect(addr).await?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// A connection from `from` (a loopback address) that sends `partial` and then nothing.
fn hold(addr: SocketAddr, from: &str, partial: &[u8]) -> Option<TcpStream> {
    let mut s = connect_from(addr, from).ok()?;
    s.write_all(partial).ok()?;
    Some(s)
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn slow_clients_cannot_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Serve::start(
        &dir.path().join("data"),
        &["--max-connections", "64", "--header-timeout", "2"],
    );
    let baseline = srv.open_fds();
    // 1,100 half-sent requests (the attack that stopped a server with a 1,024-fd limit),
    // and silent connections, all from the same address as the real client below.
    let mut held = Vec::new();
    for i in 0..1100 {
        let partial: &[u8] = if i % 2 == 0 {
            b"GET /sandboxes HTTP/1.1\r\nHost: x\r\n"
        } else {
            b""
        };
        if let Some(s) = hold(srv.addr, "127.0.0.1", partial) {
            held.push(s);
        }
    }
    assert!(held.len() > 1000, "only {} connections opened", held.len());
    // A real client is still served, at once, from the same address.
    assert_eq!(srv.list_from("127.0.0.1"), 200);
    // The server holds at most its cap of them, not 1,100 descriptors.
    let fds = srv.open_fds();
    assert!(
        fds < baseline + 64 + 16,
        "{fds} descriptors open (baseline {baseline})"
    );
    // Connections that never finish their headers are closed at the header timeout.
    let mut last = held.pop().unwrap();
    assert!(
        closed_within(&mut last, Duration::from_secs(15)),
        "a half-sent request stayed open past the header timeout"
    );
    assert_eq!(srv.list_from("127.0.0.1"), 200);
}

#[test]
fn one_client_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Serve::start(
        &dir.path().join("data"),
        &[
            "--max-connections-per-client",
            "10",
            "--header-timeout",
            "60",
        ],
    );
    let mut held: Vec<TcpStream> = (0..100)
        .filter_map(|_| hold(srv.addr, "127.0.0.2", b""))
        .collect();
    assert_eq!(held.len(), 100);
    // Another client is served, and the flooding address keeps at most its cap: every
    // connection but the newest ten has been closed by the server.
    assert_eq!(srv.list_from("127.0.0.3"), 200);
    let mut closed = 0;
    for s in &mut held {
        if closed_within(s, Duration::from_millis(500)) {
            closed += 1;
        }
    }
    assert!(closed >= 90, "only {closed} of 100 were closed");
}

/// One request on an open keep-alive connection; the response's status (body read by its
/// Content-Length, so the connection stays usable).
fn request_on(s: &mut TcpStream, key: &str) -> u16 {
    write!(
        s,
        "GET /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-KEY: {key}\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            return 0;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn kept_alive_connections_outlive_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Serve::start(&dir.path().join("data"), &["--header-timeout", "1"]);
    let mut s = connect_from(srv.addr, "127.0.0.1").unwrap();
    assert_eq!(request_on(&mut s, &srv.key), 200);
    // An SDK's pooled connection sits idle between calls for longer than the header timeout;
    // it must still be usable (closing it would race the client's next request).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(request_on(&mut s, &srv.key), 200);
}
