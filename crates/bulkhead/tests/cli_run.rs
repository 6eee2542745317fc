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
