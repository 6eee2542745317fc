//! `bulkhead run` as a user sees it: exit codes, output, and one-line errors on bad input.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Cli {
    data: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            data: tempfile::Builder::new()
                .prefix("bulkhead-cli-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.arg("run")
            .arg("--data-dir")
            .arg(self.data.path())
            .args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn nothing_left(&self) {
        let dir = self.data.path().join("sandboxes");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn busybox() -> String {
    common::rootfs("busybox").to_string_lossy().into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn passes_output_and_exit_code_through() {
    let cli = Cli::new();
    let rootfs = busybox();
    let o = cli.run(
        &[
            "--rootfs",
            &rootfs,
            "-e",
            "NAME=world",
            "-w",
            "/tmp",
            "--",
            "sh",
            "-c",
            "echo hello $NAME from $(pwd); exit 42",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello world from /tmp\n"
    );
    let o = cli.run(
        &["--rootfs", &rootfs, "-i", "--", "tr", "a-z", "A-Z"],
        Some("shout\n"),
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "SHOUT\n");
    assert_eq!(o.status.code(), Some(0));
    let o = cli.run(
        &[
            "--rootfs",
            &rootfs,
            "--memory",
            "64M",
            "--pids",
            "32",
            "--cpus",
            "0.5",
            "--disk",
            "8M",
            "--",
            "sh",
            "-c",
            "kill -9 $$",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(137));
    cli.nothing_left();
}

#[test]
fn missing_command_exits_127() {
    let cli = Cli::new();
    let o = cli.run(
        &["--rootfs", &busybox(), "--", "definitely-not-here", "x"],
        None,
    );
    assert_eq!(o.status.code(), Some(127));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("definitely-not-here"), "{err}");
    cli.nothing_left();
}

#[test]
fn bad_input_gets_one_clear_line() {
    let cli = Cli::new();
    let rootfs = busybox();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--rootfs", &rootfs, "--memory", "12Q", "--", "true"],
            "12Q",
        ),
        (
            &["--rootfs", &rootfs, "--pids", "lots", "--", "true"],
            "lots",
        ),
        (&["--rootfs", &rootfs, "--cpus=-2", "--", "true"], "-2"),
        (
            &["--rootfs", "/no/such/rootfs", "--", "true"],
            "/no/such/rootfs",
        ),
        (
            &["--rootfs", &rootfs, "-u", "mallory", "--", "true"],
            "mallory",
        ),
        (
            &["--rootfs", &rootfs, "-e", "NOEQUALS", "--", "true"],
            "NOEQUALS",
        ),
        (
            &["--rootfs", &rootfs, "-w", "/missing/dir", "--", "true"],
            "/missing/dir",
        ),
    ];
    for (args, needle) in cases {
        let o = cli.run(args, None);
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{args:?} succeeded");
        assert!(o.status.code().is_some(), "{args:?} crashed");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    cli.nothing_left();
}

impl Cli {
    /// `bulkhead run` started in the background, stdout and stderr piped.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .arg("run")
            .arg("--data-dir")
            .arg(self.data.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn sandboxes(&self) -> usize {
        std::fs::read_dir(self.data.path().join("sandboxes"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The first line `child` writes to stdout.
    fn first_line_of(child: &mut std::process::Child) -> String {
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        line
    }

    /// Waits up to `secs` for `child` to exit.
    fn wait_for(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

/// A background child that keeps stdout open does not keep `run` waiting once the command
/// exited: its output is drained briefly, then the sandbox goes.
#[test]
fn a_setsid_child_holding_stdout_does_not_keep_run_waiting() {
    let cli = Cli::new();
    let bb = busybox();
    let mut child = cli.spawn(&[
        "--rootfs",
        &bb,
        "--",
        "sh",
        "-c",
        "echo before; setsid sh -c 'sleep 300' & exit 3",
    ]);
    let status = Cli::wait_for(&mut child, 20).expect("run still waits for the background child");
    assert_eq!(status.code(), Some(3));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "before\n");
    cli.nothing_left();
}

/// SIGTERM is forwarded; a command that ignores it is killed after the grace, and `run`
/// exits 128 + 15 having removed its sandbox.
#[test]
fn sigterm_ends_run_even_when_the_command_ignores_it() {
    let cli = Cli::new();
    let bb = busybox();
    let mut child = cli.spawn(&[
        "--rootfs",
        &bb,
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while true; do sleep 1; done",
    ]);
    let line = Cli::first_line_of(&mut child);
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = Cli::wait_for(&mut child, 20).expect("run ignored SIGTERM");
    assert_eq!(status.code(), Some(143));
    cli.nothing_left();
}

/// `kill -9` of `run` leaves its sandbox; the next run removes it (and never a sandbox that
/// is not a run's).
#[test]
fn the_next_run_removes_what_a_killed_run_left() {
    let cli = Cli::new();
    let bb = busybox();
    let mut child = cli.spawn(&["--rootfs", &bb, "--", "sh", "-c", "echo up; sleep 300"]);
    let line = Cli::first_line_of(&mut child);
    assert_eq!(line, "up\n");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(cli.sandboxes(), 1, "SIGKILL leaves the sandbox");
    let out = cli.run(&["--rootfs", &bb, "--", "true"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("left by an earlier run"),
        "{}",
        stderr(&out)
    );
    cli.nothing_left();
}
