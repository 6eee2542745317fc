//! The launcher (`bulkhead __launch`): a fresh, single-threaded process that turns a
//! [`LaunchPlan`] into a running sandbox init, then exits.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe};

use super::plan::{LaunchOutcome, LaunchPlan};
use super::{child, rootfs};

/// Entry point of the launcher personality. Reads the plan from stdin, writes one
/// [`LaunchOutcome`] as JSON to stdout, and returns the process exit code.
///
/// Must be called in a freshly exec'd, single-threaded process: it forks.
pub fn run_launcher() -> i32 {
    let outcome = match read_plan().and_then(|plan| launch(&plan)) {
        Ok(init_pid) => LaunchOutcome::Ready { init_pid },
        Err(message) => LaunchOutcome::Failed { message },
    };
    let code = matches!(outcome, LaunchOutcome::Failed { .. }) as i32;
    let text = serde_json::to_string(&outcome).unwrap_or_else(|_| "{}".to_string());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    code
}

fn read_plan() -> Result<LaunchPlan, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the launch plan: {e}"))?;
    serde_json::from_str(&input).map_err(|e| format!("parsing the launch plan: {e}"))
}

fn step<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// One-byte handshakes and error text between L, C and I travel over plain pipes.
pub(crate) struct Pipes {
    /// C → L: "user namespace exists" (1 byte), then I's host pid (4 bytes).
    pub c2l: (OwnedFd, OwnedFd),
    /// L → C: "maps and mounts are ready" (1 byte).
    pub l2c: (OwnedFd, OwnedFd),
    /// C or I → L: "READY" or an error message, then EOF.
    pub status: (OwnedFd, OwnedFd),
}

fn launch(plan: &LaunchPlan) -> Result<i32, String> {
    // Join the cgroup first: every process created from here on is accounted and limited,
    // and the cgroup namespace C creates is rooted at this cgroup.
    for dir in &plan.cgroup_dirs {
        step(
            "joining the sandbox cgroup",
            std::fs::write(dir.join("cgroup.procs"), "0"),
        )
        .map_err(|e| format!("{e} ({})", dir.display()))?;
    }
    // A private mount namespace for L: the overlay and idmapped layers are mounted here, never
    // in the host's namespace.
    step(
        "creating the launcher mount namespace",
        unshare(CloneFlags::CLONE_NEWNS),
    )?;
    step(
        "making mounts private",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    let _ = std::fs::remove_file(&plan.socket);
    let listener = step("binding the control socket", bind_seqpacket(&plan.socket))?;
    let pipes = Pipes {
        c2l: step("pipe", pipe())?,
        l2c: step("pipe", pipe())?,
        status: step("pipe", pipe())?,
    };
    // SAFETY: L is single-threaded (a fresh exec that started no threads), so the child may
    // run arbitrary code after fork.
    match step("fork", unsafe { fork() })? {
        ForkResult::Child => {
            let code = child::run_intermediate(plan, &pipes, listener);
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(listener);
            parent(plan, pipes, child)
        }
    }
}

fn parent(plan: &LaunchPlan, pipes: Pipes, c: Pid) -> Result<i32, String> {
    let Pipes { c2l, l2c, status } = pipes;
    drop(c2l.1);
    drop(l2c.0);
    drop(status.1);
    let mut c2l = std::fs::File::from(c2l.0);
    let mut status = std::fs::File::from(status.0);
    let fail = |status: &mut std::fs::File, fallback: &str| {
        let mut text = String::new();
        let _ = status.read_to_string(&mut text);
        let _ = waitpid(c, None);
        if text.is_empty() {
            fallback.to_string()
        } else {
            text
        }
    };
    let mut byte = [0u8; 1];
    if c2l.read_exact(&mut byte).is_err() {
        return Err(fail(
            &mut status,
            "the sandbox process died before creating its user namespace",
        ));
    }
    let result = rootfs::prepare(plan, c);
    let mut l2c = std::fs::File::from(l2c.1);
    if let Err(e) = result {
        drop(l2c);
        let _ = nix::sys::signal::kill(c, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(c, None);
        return Err(e);
    }
    if l2c.write_all(&[1]).is_err() {
        return Err(fail(
            &mut status,
            "the sandbox process died while its root was prepared",
        ));
    }
    let mut pid = [0u8; 4];
    if c2l.read_exact(&mut pid).is_err() {
        return Err(fail(
            &mut status,
            "the sandbox process died while creating namespaces",
        ));
    }
    let init_pid = i32::from_le_bytes(pid);
    let _ = waitpid(c, None);
    let mut text = String::new();
    let _ = status.read_to_string(&mut text);
    if text == "READY" {
        Ok(init_pid)
    } else if text.is_empty() {
        Err("the sandbox init exited during setup".to_string())
    } else {
        Err(text)
    }
}

fn bind_seqpacket(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    bind(fd.as_raw_fd(), &addr)?;
    listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    // Only the host (root) may connect: the socket file is not visible inside the sandbox,
    // and its mode keeps other host users out.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(fd)
}
