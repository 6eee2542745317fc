//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, on
//! a free port, with its storage in a temp dir, killed when dropped. Never the system's own
//! instance.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the registry authenticates.
pub enum RegistryAuth {
    /// Anyone may push and pull.
    None,
    /// `auth: htpasswd` with one bcrypt user.
    Htpasswd { username: String, password: String },
    /// `auth: token`: a token service at `realm` signs tokens with the key of `cert_pem`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert_pem: String,
    },
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its storage root (`docker/registry/v2/...` below).
    pub storage: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The docker-registry binary, or `None` (with the reason printed) when the tests should be
/// skipped: only outside CI. In CI (`CI` set) a missing tool fails the test.
pub fn tools_present() -> bool {
    let missing: Vec<&str> = ["docker-registry", "skopeo", "htpasswd"]
        .into_iter()
        .filter(|tool| which(tool).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{} not installed: run scripts/ci/setup-25-registry.sh",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipping the registry test: {msg}");
    false
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl Registry {
    /// Starts a registry speaking plain HTTP and waits until it listens.
    pub fn start(auth: RegistryAuth) -> Self {
        Self::start_with(auth, None)
    }

    /// Starts a registry speaking TLS with `tls` = (certificate PEM, key PEM).
    pub fn start_tls(auth: RegistryAuth, tls: (&str, &str)) -> Self {
        Self::start_with(auth, Some(tls))
    }

    fn start_with(auth: RegistryAuth, tls: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match &auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Htpasswd { username, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", username, password])
                    .output()
                    .expect("run htpasswd");
                assert!(out.status.success(), "htpasswd failed");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: bulkhead-test\n    path: {}\n",
                    file.display()
                )
            }
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                cert_pem,
            } => {
                let file = dir.path().join("token-ca.pem");
                std::fs::write(&file, cert_pem).expect("write cert");
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    file.display()
                )
            }
        };
        let tls_yaml = match tls {
            Some((cert, key)) => {
                let (cert_file, key_file) =
                    (dir.path().join("tls.pem"), dir.path().join("tls.key"));
                std::fs::write(&cert_file, cert).expect("write tls cert");
                std::fs::write(&key_file, key).expect("write tls key");
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert_file.display(),
                    key_file.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_yaml}{auth_yaml}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("create log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn docker-registry");
        let registry = Self {
            child,
            addr,
            storage,
            log,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not listen on {}; its log:\n{}",
            self.addr,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo copy` of `src` (e.g. `oci:/dir:tag`) to `docker://{addr}/{repo_tag}`, plain HTTP.
pub fn skopeo_push(src: &str, dest: &str, extra: &[&str]) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(format!("docker://{dest}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {src} {dest} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The manifest digest skopeo sees for `docker://{dest}`.
pub fn skopeo_digest(dest: &str, extra: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .args(extra)
        .arg(format!("docker://{dest}"))
        .output()
        .expect("run skopeo inspect");
    assert!(
        out.status.success(),
        "skopeo inspect {dest} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    json["Digest"].as_str().expect("Digest").to_owned()
}

/// Reads a file the test wrote or the pull produced.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
