//! Shared fixtures for the runtime tests: a runtime with its own state directory and cgroup
//! subtree per test, the cached root filesystems, and a helper that runs a command to the end.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use bulkhead_runtime::{
    BindMount, ExecSpec, Limits, Runtime, RuntimeConfig, Sandbox, SandboxSpec,
    cgroup::CgroupLayout, spec,
};

/// Where scripts/build-rootfs.sh caches the root filesystems.
pub fn rootfs_dir() -> PathBuf {
    std::env::var_os("BULKHEAD_ROOTFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/bulkhead/rootfs".into())
}

/// A cached rootfs; panics with the setup command when it is missing.
pub fn rootfs(name: &str) -> PathBuf {
    let dir = rootfs_dir().join(name);
    assert!(
        dir.join(".complete").exists(),
        "root filesystem {} is missing: run `bash scripts/build-rootfs.sh` (or .ci/run) first",
        dir.display()
    );
    dir
}

/// The hostile probe script, bind-mounted into sandboxes at /probe.py.
pub fn probe() -> BindMount {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/probe/probe.py")
        .canonicalize()
        .expect("tests/probe/probe.py");
    BindMount {
        source,
        target: "/probe.py".into(),
        read_only: true,
        idmap: false,
    }
}

/// A runtime private to one test.
pub struct TestRuntime {
    pub runtime: Runtime,
    pub state: tempfile::TempDir,
}

impl TestRuntime {
    pub fn new() -> Self {
        Self::with_launcher(Path::new(env!("CARGO_BIN_EXE_bulkhead")))
    }

    /// A runtime that runs `exe __launch` to start sandboxes.
    pub fn with_launcher(exe: &Path) -> Self {
        let state = tempfile::Builder::new()
            .prefix("bulkhead-test-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let mut config = RuntimeConfig::new(state.path(), exe);
        config.cgroup_parent = format!("bulkhead-test-{}", spec::new_id());
        let runtime = Runtime::new(config).expect("runtime");
        Self { runtime, state }
    }

    pub fn spec(&self, rootfs_name: &str) -> SandboxSpec {
        SandboxSpec {
            id: spec::new_id(),
            layers: vec![rootfs(rootfs_name)],
            limits: Limits::default(),
            binds: vec![],
            writable_dir: None,
        }
    }

    pub fn create(&self, spec: SandboxSpec) -> Sandbox {
        self.runtime.create(spec).expect("create sandbox")
    }

    /// cgroup directories of this runtime's subtree, one per hierarchy.
    pub fn cgroup_parents(&self) -> Vec<PathBuf> {
        let parent = &self.runtime.config().cgroup_parent;
        match self.runtime.layout() {
            CgroupLayout::V2 { root } => vec![root.join(parent)],
            CgroupLayout::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
                freezer,
                unified,
            } => {
                let mut v = vec![memory.join(parent), pids.join(parent), cpu.join(parent)];
                for d in [cpuacct, freezer, unified].into_iter().flatten() {
                    v.push(d.join(parent));
                }
                v
            }
        }
    }

    /// Sandbox cgroups still present under this runtime's subtree.
    pub fn cgroup_children(&self) -> usize {
        self.cgroup_parents()
            .iter()
            .filter_map(|p| std::fs::read_dir(p).ok())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .count()
            })
            .sum()
    }
}

impl Drop for TestRuntime {
    /// A failed assertion skips a test's `destroy`: kill whatever is left in this runtime's
    /// cgroup subtree so no sandbox outlives its test.
    fn drop(&mut self) {
        for p in self.cgroup_parents() {
            let children: Vec<PathBuf> = std::fs::read_dir(&p)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            for child in children {
                for _ in 0..100 {
                    let procs =
                        std::fs::read_to_string(child.join("cgroup.procs")).unwrap_or_default();
                    if procs.trim().is_empty() {
                        break;
                    }
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let _ = std::fs::remove_dir(&child);
            }
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `spec` to completion and collects its output.
pub fn run_spec(sandbox: &Sandbox, spec: ExecSpec) -> Output {
    let mut p = sandbox.exec(spec).expect("exec");
    let mut err = p.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    if let Some(mut out) = p.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let status = p.wait().expect("wait");
    Output {
        code: status.shell_code(),
        stdout,
        stderr: reader.join().unwrap_or_default(),
    }
}

/// Runs a shell command (`sh -c`) as root.
pub fn sh(sandbox: &Sandbox, script: &str) -> Output {
    run_spec(sandbox, ExecSpec::command(["sh", "-c", script]))
}

/// Runs the probe with `args` and returns its JSON verdict.
pub fn probe_run(sandbox: &Sandbox, args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["python3", "/probe.py"];
    argv.extend_from_slice(args);
    let out = run_spec(sandbox, ExecSpec::command(argv));
    let line = out.stdout.lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("probe {args:?} gave no verdict: {out:?}"))
}

/// Asserts the probe's forbidden action failed.
pub fn assert_refused(sandbox: &Sandbox, args: &[&str]) -> serde_json::Value {
    let v = probe_run(sandbox, args);
    assert_eq!(v["ok"], false, "sandboxed code managed to {args:?}: {v}");
    v
}

/// A running `bulkhead serve` of a test: stopped cleanly (SIGTERM, then waited for) when
/// dropped, so a failed assertion never leaves a server and its sandboxes behind.
#[allow(dead_code)]
pub struct Served {
    pub child: std::process::Child,
    pub url: String,
    pub key: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Spawns a prepared `bulkhead serve` command (stdout is taken over here), waits for the
/// `export E2B_API_URL=` line it prints once it listens, and returns the child, that URL and
/// the API key the first start wrote to `<data>/api-key`.
pub fn start_serve(
    mut cmd: std::process::Command,
    data: &Path,
) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bulkhead serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("export E2B_API_URL=").map(str::to_string))
        .expect("bulkhead serve printed no address");
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let key = std::fs::read_to_string(data.join("api-key"))
        .expect("api-key file")
        .trim()
        .to_string();
    (child, url, key)
}

/// Regular files under `dir` (not following symlinks, not descending into mounts of other
/// file systems, such as a bucket mounted there) that contain `needle`: the credential and
/// canary scans of the storage and template tests.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).unwrap().dev();
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            if m.is_dir() && m.dev() == dev {
                stack.push(p);
            } else if m.is_file()
                && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(p);
            }
        }
    }
    hits
}
