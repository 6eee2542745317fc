//! Real children, started both ways (this crate forks; std forks with the setup installed),
//! report what they were given: signal dispositions and mask from /proc/self/status, open
//! descriptors, session, controlling terminal and ids. Run as root (identity switch).
//!
//! The test process first ignores and blocks signals and leaks a descriptor without
//! close-on-exec, as a careless starter would; none of it may reach the child.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use bulkhead_spawn::{ChildSetup, Command, Confine, Identity, SpawnError, Stage, WinSize};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::wait::{WaitStatus, waitpid};

/// The number the leaked descriptor gets.
const LEAKED_FD: i32 = 100;

const REPORT: &str = "grep -E '^Sig(Ign|Blk)' /proc/self/status; \
     if [ -e /proc/self/fd/100 ]; then echo fd100=open; else echo fd100=closed; fi; \
     for fd in 0 1 2; do [ -e /proc/self/fd/$fd ] && echo fd$fd=open; done";

const CLEAN: &str = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n\
     fd100=closed\nfd0=open\nfd1=open\nfd2=open\n";

/// Ignores and blocks what a careless parent would pass on, and leaks fd 100.
fn dirty_parent() {
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler code; this test process runs no other test
        // (nextest runs one test per process).
        unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) }.unwrap();
    }
    let mut block = SigSet::empty();
    block.add(Signal::SIGUSR2);
    block.add(Signal::SIGTERM);
    block.thread_block().unwrap();
    let null =
        nix::fcntl::open("/dev/null", OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).unwrap();
    nix::unistd::dup2(null, LEAKED_FD).unwrap();
}

fn sh(script: &str) -> Command {
    let argv = ["/bin/sh".to_string(), "-c".into(), script.into()];
    Command::new(&argv, [("PATH", "/usr/bin:/bin")], "/").unwrap()
}

/// Runs `cmd` through this crate's fork with pipes for stdio and returns its stdout.
fn run(cmd: &Command, setup: &ChildSetup, confine: &dyn Confine) -> String {
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let pid = bulkhead_spawn::spawn(
        cmd,
        [null.as_fd(), out_w.as_fd(), out_w.as_fd()],
        setup,
        confine,
    )
    .unwrap();
    drop(out_w);
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    assert_eq!(
        waitpid(pid, None).unwrap(),
        WaitStatus::Exited(pid, 0),
        "{out}"
    );
    out
}

#[test]
fn a_child_this_crate_forks_starts_clean() {
    dirty_parent();
    assert_eq!(run(&sh(REPORT), &ChildSetup::new(), &()), CLEAN);
}

#[test]
fn a_child_std_forks_with_the_setup_installed_starts_clean() {
    dirty_parent();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", REPORT]).env_clear();
    // Without the setup, std resets SIGPIPE and the mask, not the rest: the test sees dirt.
    let dirty = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    assert!(
        !dirty.contains("SigIgn:\t0000000000000000") && dirty.contains("fd100=open"),
        "{dirty}"
    );
    ChildSetup::new().install(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), CLEAN);
}

const IDS: &str = "grep -E '^(Uid|Gid|Groups):' /proc/self/status; id -u; id -g";

const IDS_4242: &str =
    "Uid:\t4242\t4242\t4242\t4242\nGid:\t4243\t4243\t4243\t4243\nGroups:\t27 4243 \n4242\n4243\n";

fn identity() -> Identity {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the identity tests run as root"
    );
    Identity {
        uid: 4242,
        gid: 4243,
        groups: vec![4243, 27],
    }
}

#[test]
fn identity_switch_sets_all_ids_and_exactly_the_groups() {
    let setup = ChildSetup::new().identity(&identity());
    assert_eq!(run(&sh(IDS), &setup, &()), IDS_4242);
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", IDS])
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    ChildSetup::new().identity(&identity()).install(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), IDS_4242, "{out:?}");
}

#[test]
fn a_pty_child_leads_its_session_with_the_pty_as_controlling_terminal() {
    let pty = bulkhead_spawn::pty::open(WinSize {
        cols: 100,
        rows: 40,
    })
    .unwrap();
    // `stty size` prints rows then columns; /proc/<shell>/stat fields 1, 5, 6 and 7 are the
    // pid, process group, session and tty_nr (0 without a controlling terminal).
    let script = "stty size; set -- $(cut -d' ' -f1,5,6,7 /proc/$$/stat); \
                  [ \"$1\" = \"$2\" ] && [ \"$1\" = \"$3\" ] && echo leader; \
                  [ \"$4\" != 0 ] && echo ctty; echo TERM=${TERM-unset}";
    let setup = ChildSetup::new().controlling_tty(true);
    let slave = pty.slave.as_fd();
    let cmd = sh(script);
    let pid = bulkhead_spawn::spawn(&cmd, [slave, slave, slave], &setup, &()).unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    // EIO once the last slave descriptor is closed.
    let _ = master.read_to_end(&mut out);
    assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
    let text = String::from_utf8_lossy(&out).replace('\r', "");
    assert!(text.starts_with("40 100\n"), "{text}");
    assert!(
        text.contains("leader\n") && text.contains("ctty\n"),
        "{text}"
    );
    assert!(text.contains("TERM=unset"), "nothing is inherited: {text}");
}

struct Refuse(Option<Errno>, Option<Errno>);

impl Confine for Refuse {
    fn before_identity(&self) -> Result<(), Errno> {
        self.0.map_or(Ok(()), Err)
    }
    fn before_exec(&self) -> Result<(), Errno> {
        self.1.map_or(Ok(()), Err)
    }
}

fn failure(argv: &[&str], cwd: &str, confine: &dyn Confine) -> SpawnError {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let cmd = Command::new(&argv, [("PATH", "/nonexistent:/usr/bin:/bin")], cwd).unwrap();
    let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let fd = null.as_fd();
    bulkhead_spawn::spawn(&cmd, [fd, fd, fd], &ChildSetup::new(), confine).unwrap_err()
}

#[test]
fn the_failed_step_is_reported_with_its_errno() {
    let child = |stage, errno| SpawnError::Child { stage, errno };
    assert_eq!(
        failure(&["true"], "/nonexistent-dir", &()),
        child(Stage::Cwd, Errno::ENOENT)
    );
    assert_eq!(
        failure(&["no-such-program"], "/", &()),
        child(Stage::Exec, Errno::ENOENT)
    );
    assert_eq!(
        failure(&["/etc/passwd"], "/", &()),
        child(Stage::Exec, Errno::EACCES)
    );
    assert_eq!(
        failure(&["true"], "/", &Refuse(Some(Errno::EPERM), None)),
        child(Stage::Setup, Errno::EPERM)
    );
    assert_eq!(
        failure(&["true"], "/", &Refuse(None, Some(Errno::EXDEV))),
        child(Stage::Setup, Errno::EXDEV)
    );
    // PATH lookup: the first directory does not exist, the second has the program.
    let ok = Command::new(
        &["true".to_string()],
        [("PATH", "/nonexistent:/usr/bin:/bin")],
        "/",
    )
    .unwrap();
    assert_eq!(run(&ok, &ChildSetup::new(), &()), "");
    assert!(Command::new(&["a\0b".to_string()], [("K", "V")], "/").is_err());
    assert!(Command::new(&[], [("K", "V")], "/").is_err());
}
