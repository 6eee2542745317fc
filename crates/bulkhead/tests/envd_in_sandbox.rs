//! envd inside a real sandbox: the bulkhead binary is bind-mounted read-only, started by the
//! init as a detached process under the sandbox's namespaces, seccomp filter and capability
//! set, and reached from the host through the sandbox's network namespace (as the edge proxy
//! will). The E2B SDK tests against `bulkhead serve` build on this.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bulkhead_runtime::{BindMount, ExecSpec, Sandbox};
use common::*;

const ENVD: &str = "/.bulkhead/bulkhead";

fn http(sb: &Sandbox, request: &str) -> String {
    let mut s = sb.connect_tcp(49983, Duration::from_secs(2)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn envd_serves_from_inside_a_sandbox() {
    let t = TestRuntime::new();
    let mut spec = t.spec("debian");
    spec.binds.push(BindMount {
        source: env!("CARGO_BIN_EXE_bulkhead").into(),
        target: ENVD.into(),
        read_only: true,
        idmap: false,
    });
    let sb = t.create(spec);
    let _envd = sb
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command([ENVD, "envd", "--listen", "0.0.0.0:49983"])
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.connect_tcp(49983, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "envd did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    let health = http(
        &sb,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 204"), "{health}");
    // A file read through envd names the sandbox: it really serves the sandbox's filesystem.
    let file = http(
        &sb,
        "GET /files?path=/etc/hostname&username=root HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(file.starts_with("HTTP/1.1 200"), "{file}");
    assert!(file.ends_with(&format!("{}\n", sb.id())), "{file}");
    // A Connect unary call: the default user's home exists and belongs to uid 1000.
    let body = r#"{"path":"/home/user"}"#;
    let stat = http(
        &sb,
        &format!(
            "POST /filesystem.Filesystem/Stat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(stat.starts_with("HTTP/1.1 200"), "{stat}");
    assert!(stat.contains("\"owner\":\"user\""), "{stat}");
    sb.destroy().unwrap();
}
