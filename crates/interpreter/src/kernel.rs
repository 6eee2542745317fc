//! One Jupyter kernel process and the ZMQ connections to it (shell and iopub), spoken to
//! directly: no Jupyter server in between.
//!
//! Every message the kernel sends is routed by its parent's `msg_id` to whoever sent that
//! request ([`Kernel::request`]); messages without a known parent are dropped. The kernel runs
//! in a process group of its own, so that killing it also ends what it started.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jupyter_protocol::connection_info::Transport;
use jupyter_protocol::{ConnectionInfo, JupyterMessage};
use jupyter_zmq_client::{Connection, DealerSendConnection, RawMessage};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zeromq::SocketRecv;

use crate::config::{CONNECTION_FILE, KernelCommand};
use crate::error::KernelError;

/// Lines of the kernel's own stderr kept to explain an early exit.
const STDERR_TAIL: usize = 20;

/// A message from the kernel, on either channel, already verified (HMAC) and parsed.
#[derive(Debug, Clone)]
pub(crate) struct KernelMessage {
    /// Jupyter `msg_type`, e.g. `stream`, `execute_result`, `status`, `execute_reply`.
    pub msg_type: String,
    /// The message's content object.
    pub content: Value,
    /// The header's `date`, as sent (an ISO-8601 string).
    pub date: Value,
}

type Routes = Mutex<HashMap<String, mpsc::UnboundedSender<KernelMessage>>>;

/// A running kernel. Dropping it kills the kernel's process group and removes its
/// connection file.
pub(crate) struct Kernel {
    pid: i32,
    shell: tokio::sync::Mutex<Option<DealerSendConnection>>,
    routes: Arc<Routes>,
    exit: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
    connection_file: PathBuf,
}

/// What can signal a kernel without holding it (a restart or a removal while a cell runs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelHandle {
    pid: i32,
}

impl KernelHandle {
    /// SIGKILL to the kernel's whole process group.
    pub fn kill(self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }
}

fn zmq(e: impl std::fmt::Display) -> KernelError {
    KernelError::Zmq(e.to_string())
}

impl Kernel {
    /// Starts `command` in `cwd` with a fresh connection file under `runtime_dir` and waits
    /// until the kernel answers `kernel_info` on shell and publishes on iopub (so no output
    /// of the first cell can be lost). Fails when the process exits first or `timeout`
    /// passes; the process is killed then.
    pub async fn start(
        command: &KernelCommand,
        cwd: &Path,
        runtime_dir: &Path,
        timeout: Duration,
    ) -> Result<Self, KernelError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(runtime_dir)
            .map_err(KernelError::Spawn)?;
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let (ports, listeners) = jupyter_zmq_client::peek_ports_with_listeners(ip, 5)
            .await
            .map_err(zmq)?;
        let info = ConnectionInfo {
            ip: ip.to_string(),
            transport: Transport::TCP,
            shell_port: ports[0],
            iopub_port: ports[1],
            stdin_port: ports[2],
            control_port: ports[3],
            hb_port: ports[4],
            key: random_hex(32),
            signature_scheme: "hmac-sha256".to_owned(),
            kernel_name: None,
        };
        let connection_file = runtime_dir.join(format!("kernel-{}.json", random_hex(8)));
        write_private(&connection_file, &serde_json::to_vec(&info).map_err(zmq)?)
            .map_err(KernelError::Spawn)?;
        let file = connection_file.to_string_lossy().into_owned();
        let argv: Vec<String> = command
            .argv
            .iter()
            .map(|a| a.replace(CONNECTION_FILE, &file))
            .collect();
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(cwd)
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let spawned = cmd.spawn();
        // The kernel binds the ports as one of its first actions; release them now.
        drop(listeners);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&connection_file);
                return Err(KernelError::Spawn(e));
            }
        };
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut tasks = Vec::new();
        if let Some(stderr) = child.stderr.take() {
            tasks.push(tokio::spawn(keep_tail(stderr, tail.clone())));
        }
        let (exit_tx, exit) = watch::channel(None);
        let routes: Arc<Routes> = Arc::new(Mutex::new(HashMap::new()));
        {
            let routes = routes.clone();
            tasks.push(tokio::spawn(async move {
                let status = match child.wait().await {
                    Ok(s) => describe_exit(s),
                    Err(e) => format!("lost track of the kernel: {e}"),
                };
                tracing::debug!(pid, status = %status, "kernel exited");
                let _ = exit_tx.send(Some(status));
                // Dropping the senders tells every waiting request that no answer comes.
                lock(&routes).clear();
            }));
        }
        let mut kernel = Self {
            pid,
            shell: tokio::sync::Mutex::new(None),
            routes,
            exit,
            tasks,
            connection_file,
        };
        let connected = tokio::time::timeout(timeout, kernel.connect(&info)).await;
        let early = |status: String| KernelError::ExitedEarly(status, tail_text(&tail));
        match connected {
            Ok(Ok(())) => Ok(kernel),
            Ok(Err(e)) => Err(match (e, kernel.exit_status()) {
                (KernelError::Zmq(_), Some(status)) => early(status),
                (e, _) => e,
            }),
            Err(_) => Err(match kernel.exit_status() {
                Some(status) => early(status),
                None => KernelError::StartTimeout(timeout.as_secs()),
            }),
        }
    }

    async fn connect(&mut self, info: &ConnectionInfo) -> Result<(), KernelError> {
        let session = random_hex(16);
        // zeromq's connect backs off exponentially (up to 30 s) while a port is closed, so
        // wait here, cheaply, until the kernel has bound the ports we use.
        for port in [info.iopub_port, info.shell_port] {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                if self.exit_status().is_some() {
                    return Err(KernelError::Zmq("exited".into()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // A connect can fail while the kernel is still binding its ports (refused, or reset
        // mid-handshake): try again until it exits or the caller's timeout ends this.
        let iopub = loop {
            match jupyter_zmq_client::create_client_iopub_connection(info, "", &session).await {
                Ok(c) => break c,
                Err(e) => self.retry_connect(e).await?,
            }
        };
        let shell = loop {
            let identity = jupyter_zmq_client::peer_identity_for_session(&session).map_err(zmq)?;
            match jupyter_zmq_client::create_client_shell_connection_with_identity(
                info, &session, identity,
            )
            .await
            {
                Ok(c) => break c,
                Err(e) => self.retry_connect(e).await?,
            }
        };
        let (shell_tx, shell_rx) = shell.split();
        *self.shell.get_mut() = Some(shell_tx);
        self.tasks
            .push(tokio::spawn(route(iopub, self.routes.clone())));
        self.tasks
            .push(tokio::spawn(route(shell_rx, self.routes.clone())));
        // Until iopub has seen our subscription, the kernel's output would be lost: ask
        // kernel_info until its busy/idle status arrives on iopub.
        loop {
            let mut rx = self
                .request(jupyter_protocol::KernelInfoRequest {}.into())
                .await?;
            let waited = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(m) = rx.recv().await {
                    if m.msg_type == "status" {
                        return true;
                    }
                }
                false
            });
            match waited.await {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(KernelError::Zmq("exited".into())),
                Err(_) if self.exit_status().is_some() => {
                    return Err(KernelError::Zmq("exited".into()));
                }
                Err(_) => continue,
            }
        }
    }

    async fn retry_connect(&self, e: impl std::fmt::Display) -> Result<(), KernelError> {
        if self.exit_status().is_some() {
            return Err(zmq(e));
        }
        tracing::debug!(error = %e, "kernel not reachable yet");
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(())
    }

    /// Sends a shell request; every later message whose parent it is arrives on the returned
    /// channel, which closes when the kernel exits. Call [`Kernel::forget`] when done.
    pub async fn request(
        &self,
        message: JupyterMessage,
    ) -> Result<mpsc::UnboundedReceiver<KernelMessage>, KernelError> {
        let id = message.header.msg_id.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.routes).insert(id.clone(), tx);
        let sent = match self.shell.lock().await.as_mut() {
            Some(shell) => shell.send(message).await.map_err(zmq),
            None => Err(KernelError::Zmq("not connected".into())),
        };
        if let Err(e) = sent {
            lock(&self.routes).remove(&id);
            return Err(e);
        }
        Ok(rx)
    }

    /// Stops routing the answers to a request.
    pub fn forget(&self, msg_id: &str) {
        lock(&self.routes).remove(msg_id);
    }

    /// SIGINT to the kernel process (Jupyter's interrupt for kernels in `signal` mode).
    pub fn interrupt(&self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGINT);
    }

    /// A handle that can kill the kernel without holding it.
    pub fn handle(&self) -> KernelHandle {
        KernelHandle { pid: self.pid }
    }

    /// How the process ended, once it has.
    pub fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Resolves when the process has exited, with how it ended.
    pub async fn exited(&self) -> String {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or_default(),
            Err(_) => "the kernel's watcher stopped".to_owned(),
        }
    }

    /// Resident memory of the kernel process in bytes (from /proc), when readable.
    pub fn rss_bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if self.exit_status().is_none() && self.pid > 0 {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        for t in &self.tasks {
            // The exit watcher must reap the child; everything else can stop now.
            if !t.is_finished() {
                t.abort();
            }
        }
        let _ = std::fs::remove_file(&self.connection_file);
    }
}

async fn route<S: SocketRecv>(mut conn: Connection<S>, routes: Arc<Routes>) {
    loop {
        let multipart = match conn.socket.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "kernel channel closed");
                return;
            }
        };
        let raw = match RawMessage::from_multipart(multipart, &conn.mac) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "dropped a kernel message that failed verification");
                continue;
            }
        };
        // Messages without a parent (the kernel's start-up status, iopub welcomes) and
        // malformed ones have no one to go to.
        let Some(message) = parse(&raw.jparts) else {
            continue;
        };
        let (parent, message) = message;
        let tx = lock(&routes).get(&parent).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(message);
        }
    }
}

/// Header, parent header and content of a verified message, as JSON values: typed parsing
/// would drop a whole message over one unusual MIME payload.
fn parse(jparts: &[bytes::Bytes]) -> Option<(String, KernelMessage)> {
    let header: Value = serde_json::from_slice(jparts.first()?).ok()?;
    let parent: Value = serde_json::from_slice(jparts.get(1)?).ok()?;
    let content: Value = serde_json::from_slice(jparts.get(3)?).ok()?;
    let parent_id = parent.get("msg_id")?.as_str()?.to_owned();
    Some((
        parent_id,
        KernelMessage {
            msg_type: header.get("msg_type")?.as_str()?.to_owned(),
            date: header.get("date").cloned().unwrap_or(Value::Null),
            content,
        },
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn keep_tail(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(line = %line, "kernel stderr");
        let mut t = lock(&tail);
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let t = lock(tail);
    if t.is_empty() {
        "(nothing)".to_owned()
    } else {
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// "exit code 1", "killed by signal 9 (SIGKILL)".
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => {
            let name = Signal::try_from(s).map(|s| s.as_str()).unwrap_or("?");
            format!("killed by signal {s} ({name})")
        }
        _ => "ended".to_owned(),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// `n` random bytes as lower-case hex.
pub(crate) fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}
