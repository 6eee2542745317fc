//! `bulkhead sandbox` as a client of a real `bulkhead serve`: where it takes the API key from.
//! A key on the command line would be readable by every user of the host (`ps`,
//! `/proc/<pid>/cmdline`), so it is refused there and taken from the environment or a file.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};

struct Serve {
    child: Child,
    url: String,
    key: String,
}

impl Serve {
    fn start(data: &std::path::Path) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "0"])
            .arg("--base-rootfs")
            .arg(common::rootfs("debian"))
            .arg("--data-dir")
            .arg(data)
            .stderr(Stdio::null());
        let (child, url, key) = common::start_serve(cmd, data);
        Self { child, url, key }
    }

    /// `bulkhead sandbox ARGS` with no key from the test's own environment, and no local
    /// key file to fall back on.
    fn cli(&self, args: &[&str], key_env: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.arg("sandbox")
            .args(["--server", &self.url, "--data-dir", "/nonexistent"])
            .args(args)
            .env_remove("E2B_API_URL")
            .env_remove("E2B_API_KEY");
        if let Some(k) = key_env {
            cmd.env("E2B_API_KEY", k);
        }
        cmd.output().unwrap()
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_api_key_is_taken_from_the_environment_or_a_file_never_from_argv() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Serve::start(&dir.path().join("data"));

    // On the command line: refused before any request, and the message says what to do.
    let out = srv.cli(&["--api-key", &srv.key, "list"], None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("E2B_API_KEY") && err.contains("--api-key-file"),
        "{err}"
    );
    assert!(!err.contains(&srv.key), "the refusal echoes the key: {err}");

    // From the environment, as the SDKs take it.
    let out = srv.cli(&["list"], Some(&srv.key));
    assert!(out.status.success(), "{}", stderr(&out));

    // From a file (0600), first line, surrounding whitespace ignored.
    let file = dir.path().join("key");
    std::fs::write(&file, format!("  {}\n", srv.key)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = srv.cli(&["--api-key-file", file.to_str().unwrap(), "list"], None);
    assert!(out.status.success(), "{}", stderr(&out));

    // A wrong key in the file is the server's 401, reported as such.
    std::fs::write(&file, "e2b_0000000000000000000000000000000000000000\n").unwrap();
    let out = srv.cli(&["--api-key-file", file.to_str().unwrap(), "list"], None);
    assert!(!out.status.success());

    // An empty file or no key at all: a clear error, no request with an empty key.
    std::fs::write(&file, "\n").unwrap();
    let out = srv.cli(&["--api-key-file", file.to_str().unwrap(), "list"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    let out = srv.cli(&["list"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no API key"), "{}", stderr(&out));
}
