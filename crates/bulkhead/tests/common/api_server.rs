//! A `bulkhead serve` of a test, spoken to over raw HTTP (status, headers and body as they
//! are on the wire), for the tests that check the control plane and the edge proxy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common;

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub key: String,
}

#[allow(dead_code)]
impl Server {
    pub fn start(data: &std::path::Path) -> Self {
        Self::start_with(data, &common::rootfs("debian"))
    }

    /// A server whose `base` template is the root filesystem `rootfs`.
    pub fn start_with(data: &std::path::Path, rootfs: &std::path::Path) -> Self {
        Self::start_args(data, rootfs, &[])
    }

    /// A server with `extra` flags.
    pub fn start_args(data: &std::path::Path, rootfs: &std::path::Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pool-size",
            "1",
            "--base-rootfs",
        ])
        .arg(rootfs)
        .arg("--data-dir")
        .arg(data)
        .args(extra);
        cmd.stderr(Stdio::null());
        let (child, url, key) = common::start_serve(cmd, data);
        let addr = url.trim_start_matches("http://").to_string();
        Self { child, addr, key }
    }

    /// One HTTP/1.1 request; returns (status, headers text, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (status, head, body)
    }

    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, _, body) = self.request(
            method,
            path,
            &[
                ("X-API-KEY", &self.key),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub fn create(&self, body: &str) -> Value {
        let (status, v) = self.api("POST", "/v2/sandboxes", body);
        assert_eq!(status, 201, "{v}");
        v
    }

    pub fn stop(self) {
        drop(self);
    }
}

/// A failed assertion must not leave a server (and its sandboxes) running: stop it cleanly.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[pos + 2..pos + 2 + size]);
        data = &data[pos + 4 + size..];
    }
    out
}

/// A data dir under /var/tmp (sandboxes' mapped ids must traverse to it).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bulkhead-serve-")
        .tempdir_in("/var/tmp")
        .unwrap()
}
