//! envd inside each sandbox: started while the sandbox is pooled, configured (token, env
//! vars, default user) at hand-over through `POST /init`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bulkhead_envd::ENVD_PORT;
use bulkhead_runtime::{ExecSpec, Sandbox};
use serde::Serialize;

use super::ENVD_PATH;

/// How long envd may take to listen after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts envd (detached, as root inside) and waits until it accepts connections. Blocking.
/// envd logs at info level as JSON lines (processes started and ended, settings, warnings):
/// the sandbox's logs ([`super::sandbox_logs`]).
pub(crate) fn start(sandbox: &Sandbox) -> Result<(), String> {
    let listen = format!("0.0.0.0:{ENVD_PORT}");
    let spec = ExecSpec {
        detach: true,
        ..ExecSpec::command([
            ENVD_PATH,
            "--log-format",
            "json",
            "-v",
            "envd",
            "--listen",
            listen.as_str(),
        ])
    };
    let mut process = sandbox
        .exec(spec)
        .map_err(|e| format!("starting envd: {e}"))?;
    // envd logs to stderr: keep it, for the sandbox's life, in the sandbox's state directory
    // on the host (out of the sandbox's reach). Its stdout carries nothing and is dropped.
    // The end of its stderr is the end of envd: the reaper then starts it again.
    if let Some(stderr) = process.stderr.take() {
        let life = Arc::new(Life::default());
        keep_log(
            stderr,
            sandbox.state_dir().join(ENVD_LOG),
            Arc::clone(&life),
        )?;
        lives()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sandbox.id().to_owned(), life);
    }
    drop(process);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if sandbox
            .connect_tcp(ENVD_PORT, Duration::from_millis(500))
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline || !sandbox.is_running() {
            return Err("envd did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// envd's log in a sandbox's state directory.
pub(crate) const ENVD_LOG: &str = "envd.log";

/// The most of envd's log kept per sandbox; what comes after is drained and dropped, so a
/// chatty envd can neither fill the host's disk nor block on a full pipe.
pub(crate) const LOG_CAP: u64 = 1 << 20;

/// Whether the envd last started in a sandbox is still alive: its stderr pipe ends when it
/// exits (its children get pipes of their own and no inherited descriptors).
#[derive(Debug, Default)]
struct Life {
    ended_at: Mutex<Option<Instant>>,
}

/// The envd last started in each sandbox, by sandbox id. Keyed by id (random and unique),
/// so several managers in one process never see each other's sandboxes.
fn lives() -> &'static Mutex<HashMap<String, Arc<Life>>> {
    static LIVES: OnceLock<Mutex<HashMap<String, Arc<Life>>>> = OnceLock::new();
    LIVES.get_or_init(Default::default)
}

/// How long the record of an ended envd is kept for a sandbox nobody asked about (a killed
/// or paused one); a running sandbox is looked at every reaper tick, long before.
const FORGET_AFTER: Duration = Duration::from_secs(120);

/// True when the envd last started in sandbox `id` has ended. Also forgets the ended envds
/// of sandboxes nobody asked about for [`FORGET_AFTER`].
pub(crate) fn has_ended(id: &str) -> bool {
    let mut map = lives().lock().unwrap_or_else(|p| p.into_inner());
    let ended = |l: &Life| *l.ended_at.lock().unwrap_or_else(|p| p.into_inner());
    let answer = map.get(id).is_some_and(|l| ended(l).is_some());
    map.retain(|_, l| ended(l).is_none_or(|t| t.elapsed() < FORGET_AFTER));
    answer
}

/// Drops the record of sandbox `id`'s envd (the sandbox is gone).
pub(crate) fn forget(id: &str) {
    lives().lock().unwrap_or_else(|p| p.into_inner()).remove(id);
}

/// Copies `pipe` into `path` on a small thread of its own until envd exits (EOF), keeping
/// the first [`LOG_CAP`] bytes, then marks `life` ended.
fn keep_log(
    mut pipe: std::fs::File,
    path: std::path::PathBuf,
    life: Arc<Life>,
) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("envd-log".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // The cap is the file's, over every envd of the sandbox (a restart starts a new
            // reader, not a new budget).
            let mut kept = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut buf = [0u8; 8192];
            let ended = || {
                *life.ended_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            };
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => return ended(),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return ended(),
                };
                if kept < LOG_CAP {
                    let take = n.min(usize::try_from(LOG_CAP - kept).unwrap_or(n));
                    if file.write_all(&buf[..take]).is_err() {
                        kept = LOG_CAP;
                        continue;
                    }
                    kept += take as u64;
                    if kept >= LOG_CAP {
                        let _ = file.write_all(b"\n[bulkhead: envd log truncated at 1 MiB]\n");
                    }
                }
            }
        })
        .map_err(|e| format!("starting envd's log thread: {e}"))?;
    Ok(())
}

/// The most of an answer from inside a sandbox the server reads (`/init`, the interpreter's
/// health): enough for a status line and headers, never a sandbox's stream to exhaust it.
pub(crate) const RESPONSE_CAP: u64 = 64 * 1024;

/// Reads an answer from inside a sandbox: at most [`RESPONSE_CAP`] bytes and `within` in
/// all (a byte every few seconds cannot stretch it), until the peer closes.
pub(crate) fn read_capped(
    stream: &mut std::net::TcpStream,
    within: Duration,
) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while (out.len() as u64) < RESPONSE_CAP {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        stream.set_read_timeout(Some(left))?;
        let want = buf
            .len()
            .min(usize::try_from(RESPONSE_CAP - out.len() as u64).unwrap_or(buf.len()));
        match stream.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Configuring envd at hand-over failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvdError {
    /// The settings could not be encoded.
    #[error("encoding /init")]
    Encode(#[source] serde_json::Error),
    /// envd could not be reached or the exchange broke off.
    #[error("{0} envd")]
    Io(&'static str, #[source] std::io::Error),
    /// envd answered with a status other than 2xx.
    #[error("envd answered /init with {0:?}")]
    Status(String),
}

/// Settings pushed to envd at hand-over.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InitRequest {
    pub env_vars: BTreeMap<String, String>,
    pub access_token: String,
    pub default_user: String,
    /// The template's `WORKDIR`; `None` leaves envd's default (the user's home).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_workdir: Option<String>,
}

/// Sends `POST /init`. Blocking; one short HTTP/1.1 exchange.
pub(crate) fn init(sandbox: &Sandbox, req: &InitRequest) -> Result<(), EnvdError> {
    let body = serde_json::to_vec(req).map_err(EnvdError::Encode)?;
    let mut stream = sandbox
        .connect_tcp(ENVD_PORT, Duration::from_secs(2))
        .map_err(|e| EnvdError::Io("connecting to", e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| EnvdError::Io("setting a read timeout on the connection to", e))?;
    let head = format!(
        "POST /init HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&body))
        .map_err(|e| EnvdError::Io("sending /init to", e))?;
    // What answers on envd's port is the sandbox's (its root may have replaced envd): read
    // no more than a status line and some headers.
    let response = read_capped(&mut stream, Duration::from_secs(10))
        .map_err(|e| EnvdError::Io("reading /init from", e))?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(EnvdError::Status(status.to_string()))
    }
}
