//! The code-interpreter server (port 49999) inside sandboxes of interpreter templates:
//! started while the sandbox is pooled, as the sandbox's default user, under the same seccomp
//! filter as every process the init starts; ready once its default Python kernel has run a
//! first cell, so that a create hands over a warm kernel.

use std::io::Write;
use std::time::{Duration, Instant};

use bulkhead_runtime::{ExecSpec, Sandbox};

use super::ENVD_PATH;

/// The port E2B's SDKs reach the interpreter on.
pub(crate) const PORT: u16 = 49999;

/// How long the server and its default kernel may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts the server (detached, as `user`) and waits until `GET /ready` answers 200.
/// Blocking.
pub(crate) fn start(sandbox: &Sandbox) -> Result<(), String> {
    let listen = format!("0.0.0.0:{PORT}");
    let spec = ExecSpec {
        detach: true,
        user: Some("user".into()),
        cwd: Some("/home/user".into()),
        ..ExecSpec::command([ENVD_PATH, "interpreter", "--listen", listen.as_str()])
    };
    let process = sandbox
        .exec(spec)
        .map_err(|e| format!("starting the interpreter: {e}"))?;
    drop(process);
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("not listening");
    loop {
        match ready(sandbox) {
            Ok(()) => return Ok(()),
            Err(Some(fatal)) => return Err(format!("the interpreter is not ready: {fatal}")),
            Err(None) => {}
        }
        if !sandbox.is_running() {
            last = "the sandbox stopped".into();
        }
        if Instant::now() > deadline || !sandbox.is_running() {
            return Err(format!("the interpreter did not become ready: {last}"));
        }
        last = "its default kernel is still starting".into();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Ok` when ready, `Err(None)` while starting, `Err(Some(reason))` when it failed for good.
fn ready(sandbox: &Sandbox) -> Result<(), Option<String>> {
    let mut stream = sandbox
        .connect_tcp(PORT, Duration::from_millis(500))
        .map_err(|_| None)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|_| None)?;
    stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|_| None)?;
    let response =
        super::envd::read_capped(&mut stream, Duration::from_secs(10)).map_err(|_| None)?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split_whitespace().nth(1).unwrap_or("");
    match status {
        "200" => Ok(()),
        "503" => Err(None),
        _ => Err(Some(
            response
                .split("\r\n\r\n")
                .nth(1)
                .unwrap_or(status)
                .to_owned(),
        )),
    }
}
