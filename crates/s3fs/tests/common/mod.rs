//! Test kit for the s3fs tests: a moto_server per test on a free 127.0.0.1 port, boto3
//! checks that do not go through our code, a TCP proxy that can take the endpoint away,
//! and mount guards that always unmount.
#![allow(dead_code)]
// Test scaffolding: a failed setup step should panic the test with its message.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where moto_server is: `$BULKHEAD_MOTO_SERVER` or the CI venv.
pub fn moto_server_path() -> PathBuf {
    let p = std::env::var_os("BULKHEAD_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/bulkhead-venv/bin/moto_server"));
    assert!(
        p.is_file(),
        "moto_server not found at {} (set BULKHEAD_MOTO_SERVER): run scripts/ci/setup-20-s3.sh",
        p.display()
    );
    p
}

fn python_path() -> PathBuf {
    let py = moto_server_path().with_file_name("python");
    assert!(
        py.exists(),
        "python not found beside moto_server at {}: run scripts/ci/setup-20-s3.sh",
        py.display()
    );
    py
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A boto3 check started ahead of time (see [`Moto::later`]).
pub struct Later(Child);

impl Later {
    /// Runs it now and returns its stdout.
    pub fn run(mut self) -> Vec<u8> {
        self.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = self.0.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "s3.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Where moto_server on `port` records requests.
fn recording_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("moto-recording-{port}.jsonl"))
}

/// A random, valid bucket name.
pub fn bucket_name(tag: &str) -> String {
    format!("{tag}-{:08x}", rand::random::<u32>())
}

/// One moto_server child process, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
    /// Keys valid on this server (dummy ones when auth is off).
    pub key_id: String,
    pub secret: String,
}

impl Moto {
    /// A server with auth off (any request succeeds).
    pub fn start() -> Self {
        Self::start_on(free_port(), None)
    }

    /// A server on `port` (e.g. to come back on the same port).
    pub fn start_on(port: u16, no_auth_actions: Option<u32>) -> Self {
        let mut cmd = Command::new(moto_server_path());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Requests are recorded there between `record_start` and `record_stop` only.
            .env("MOTO_RECORDER_FILEPATH", recording_path(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("AWS_CA_BUNDLE");
        if let Some(n) = no_auth_actions {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().expect("cannot start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            endpoint,
            key_id: "testing".into(),
            secret: "testing".into(),
        }
    }

    /// A server with authentication on: the first four requests (IAM user, policy, key,
    /// bucket) are the only anonymous ones; everything after needs the returned key.
    pub fn start_with_auth(bucket: &str) -> Self {
        let mut m = Self::start_on(free_port(), Some(4));
        let out = m.py(&["auth-setup", bucket]);
        let mut it = out.split_whitespace();
        m.key_id = it.next().expect("key id").to_string();
        m.secret = it.next().expect("secret").to_string();
        m
    }

    /// Runs the boto3 helper and returns its stdout.
    pub fn py_bytes(&self, args: &[&str]) -> Vec<u8> {
        // Valid from both crates that include this module (crates/s3fs and crates/bulkhead).
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../s3fs/tests/common/s3.py");
        let out = Command::new(python_path())
            .arg(script)
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .expect("cannot run python");
        assert!(
            out.status.success(),
            "s3.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn py(&self, args: &[&str]) -> String {
        String::from_utf8(self.py_bytes(args)).expect("utf-8")
    }

    pub fn mkbucket(&self, bucket: &str) {
        self.py(&["mkbucket", bucket]);
    }

    /// The object's bytes, read with boto3.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.py_bytes(&["get", bucket, key])
    }

    /// `{size, etag, sha256}` of an object, or `null`.
    pub fn stat(&self, bucket: &str, key: &str) -> serde_json::Value {
        serde_json::from_str(&self.py(&["stat", bucket, key])).expect("json")
    }

    /// The user metadata of an object (`x-amz-meta-*` without the prefix), or `null`.
    pub fn meta(&self, bucket: &str, key: &str) -> serde_json::Value {
        serde_json::from_str(&self.py(&["meta", bucket, key])).expect("json")
    }

    /// All keys under a prefix.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        serde_json::from_str(&self.py(&["keys", bucket, prefix])).expect("json")
    }

    /// Starts recording the requests this server receives (forgetting earlier ones).
    pub fn record_start(&self) {
        self.recorder("reset-recording");
        self.recorder("start-recording");
    }

    /// Stops recording and returns the requests received since `record_start`, as
    /// `(method, path?query)`, in arrival order.
    pub fn record_stop(&self) -> Vec<(String, String)> {
        self.recorder("stop-recording");
        let text = std::fs::read_to_string(recording_path(self.port)).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let url = v["url"].as_str().unwrap_or("").to_string();
                let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}"));
                (
                    v["method"].as_str().unwrap_or("").to_string(),
                    path.unwrap_or(url),
                )
            })
            .collect()
    }

    fn recorder(&self, action: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /moto-api/recorder/{action} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.contains(" 200 "), "recorder {action}: {out}");
    }

    /// The boto3 helper for `args`, started now (before the caller opens files a fork
    /// would flush when its child execs) and run by [`Later::run`].
    pub fn later(&self, args: &[&str]) -> Later {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../s3fs/tests/common/s3.py");
        let child = Command::new(python_path())
            .arg(script)
            .arg(&self.endpoint)
            .arg("on-stdin")
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run python");
        Later(child)
    }

    /// Keys of the multipart uploads in progress in `bucket`.
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        serde_json::from_str(&self.py(&["uploads", bucket])).expect("json")
    }

    /// Freezes the server (SIGSTOP): it keeps accepting connections (the kernel's backlog)
    /// and never answers, as a hung server does. `resume` lets it go on.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Undoes `pause`.
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    /// Sends the signal with kill(2), not by running `kill`: a fork would close the test's
    /// duplicated descriptors of files open on a mount in the child, which the mount sees as
    /// a close (a commit).
    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, sig).expect("signal moto_server");
    }

    /// Stops the server (as an endpoint outage would).
    pub fn kill(&mut self) {
        self.resume_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn resume_quietly(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(recording_path(self.port));
    }
}

/// Forwards 127.0.0.1:`port` to a target; `set_up(false)` drops every connection and
/// refuses new ones (the endpoint is "down") until `set_up(true)`.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    pub fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (up2, conns2, accepted2) = (up.clone(), conns.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut c = conns2.lock().unwrap();
                    c.push(client.try_clone().unwrap());
                    c.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self {
            port,
            up,
            conns,
            accepted,
        }
    }

    /// Connections accepted so far (a client that sends requests one after another reuses
    /// one; concurrent requests need one each).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Whether `path` is a mountpoint right now.
pub fn is_mounted(path: &Path) -> bool {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap_or("")))
}

/// Unmounts `path` on drop if it is still mounted (lazily if busy), so that a failed test
/// leaves no mount behind.
pub struct UnmountGuard(pub PathBuf);

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg(&self.0).status();
            if is_mounted(&self.0) {
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            }
        }
    }
}

/// A shared buffer that tracing writes into, to check log lines.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl LogBuf {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
