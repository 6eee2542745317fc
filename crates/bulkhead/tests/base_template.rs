//! The repo's own `templates/base` and `templates/code-interpreter` as the README's first
//! command serves them: `bulkhead serve --template-dir templates/base --template-dir
//! templates/code-interpreter` builds them at start (apt inside build sandboxes, through the
//! sandbox network) and then serves it as `base`, with E2B's base contents. The data dir is
//! kept outside the checkout (`/var/cache/bulkhead/base-template`, or
//! `$BULKHEAD_BASE_TEMPLATE_DATA`), so only a machine's first run downloads the packages;
//! later runs take every step from the cache.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn templates_base_builds_at_start_and_brings_e2bs_base_contents() {
    let data = std::env::var_os("BULKHEAD_BASE_TEMPLATE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/bulkhead/base-template"));
    std::fs::create_dir_all(&data).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "0"])
        .arg("--base-rootfs")
        .arg(common::rootfs("debian"))
        .arg("--template-dir")
        .arg(repo.join("templates/base"))
        .arg("--template-dir")
        .arg(repo.join("templates/code-interpreter"))
        // This machine reaches the package index through a TLS-inspecting proxy whose CA is
        // in the host's bundle.
        .args(
            [
                "--template-secret",
                "id=host_ca_bundle,src=/etc/ssl/certs/ca-certificates.crt",
            ]
            .iter()
            .filter(|_| std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists()),
        )
        .arg("--data-dir")
        .arg(&data)
        .stderr(log.reopen().unwrap());
    let (mut child, url, key) = common::start_serve(cmd, &data);
    let guard = scopeguard(&mut child);
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .args(["sandbox", "--server", &url, "--data-dir", "/nonexistent"])
            .args(args)
            .env("E2B_API_KEY", &key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Built when the server's log says so (minutes on a machine's first run).
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        if text.contains("template base built and served") {
            break;
        }
        assert!(
            !text.contains("was not built"),
            "templates/base did not build:\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "templates/base not built in time:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = cli(&["create", "-t", "base"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = cli(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "node --version && npm --version && git --version && gcc --version && curl --version \
         && wget --version && python3 -m pip --version && id -un && pwd && sudo -n id -un",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "v1",
        "git version",
        "gcc",
        "curl",
        "Wget",
        "pip",
        "user\n/home/user\nroot\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }

    // templates/code-interpreter, FROM the built base, then replaces the root filesystem
    // of the same name (keeping its `code-interpreter-v1` alias); `bulkhead validate` runs a
    // cell in it through the execution server, as the SDK does.
    loop {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        if text.contains("template code-interpreter built and served") {
            break;
        }
        assert!(
            !text.contains("template code-interpreter was not built"),
            "templates/code-interpreter did not build:\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "templates/code-interpreter not built in time:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for name in ["code-interpreter", "code-interpreter-v1"] {
        let o = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .args([
                "validate",
                name,
                "--server",
                &url,
                "--data-dir",
                "/nonexistent",
            ])
            .env("E2B_API_KEY", &key)
            .env_remove("STORAGE_BASE_PATH")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        for want in [
            "✓ template: code-interpreter (",
            "built here, code interpreter: yes",
            "✓ sandbox:",
            "✓ run_code: run_code(\"1+1\") = 2",
            "✓ cleanup:",
        ] {
            assert!(out.contains(want), "{want:?} missing from:\n{out}");
        }
    }
    let o = cli(&["create", "-t", "code-interpreter"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = cli(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "python3 -c 'import ipykernel, numpy, pandas, matplotlib, bash_kernel' && deno --version \
         && R --version && node --version && ls /etc/ipython",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in ["deno ", "R version", "v1", "bulkhead_formatters.py"] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    drop(guard);
}

/// Stops the server (SIGTERM, then wait) when the test ends, passed or not.
fn scopeguard(child: &mut std::process::Child) -> impl Drop + '_ {
    struct G<'a>(&'a mut std::process::Child);
    impl Drop for G<'_> {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
    G(child)
}
