//! The launcher (`bulkhead __launch`): a fresh, single-threaded process that turns a
//! [`LaunchPlan`] into a running sandbox init, then exits.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, pipe};

use super::failure::{At, LaunchFailure, LaunchStep};
use super::plan::{LaunchOutcome, LaunchPlan};
use super::{child, rootfs};
use crate::sys::fork::{ForkResult, fork};

/// Entry point of the launcher personality. Reads the plan from stdin, writes one
/// [`LaunchOutcome`] as JSON to stdout, and returns the process exit code.
///
/// Must be called in a freshly exec'd, single-threaded process: it forks (and refuses to
/// when the process has other threads).
pub fn run_launcher() -> i32 {
    let outcome = match read_plan().and_then(|plan| launch(&plan)) {
        Ok(init_pid) => LaunchOutcome::Ready { init_pid },
        Err(failure) => LaunchOutcome::Failed(failure),
    };
    let code = matches!(outcome, LaunchOutcome::Failed { .. }) as i32;
    let text = serde_json::to_string(&outcome).unwrap_or_else(|_| "{}".to_string());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    code
}

fn read_plan() -> Result<LaunchPlan, LaunchFailure> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .at_with(LaunchStep::Launcher, || "reading the launch plan".into())?;
    serde_json::from_str(&input).map_err(|e| {
        LaunchFailure::new(
            LaunchStep::Launcher,
            format!("parsing the launch plan: {e}"),
        )
    })
}

/// One-byte handshakes and failure reports between L, C and I travel over plain pipes.
pub(crate) struct Pipes {
    /// C → L: "user namespace exists" (1 byte), then I's host pid (4 bytes).
    pub c2l: (OwnedFd, OwnedFd),
    /// L → C: "maps and mounts are ready" (1 byte).
    pub l2c: (OwnedFd, OwnedFd),
    /// C or I → L: "READY" or a [`LaunchFailure`] as JSON, then EOF.
    pub status: (OwnedFd, OwnedFd),
}

fn launch(plan: &LaunchPlan) -> Result<i32, LaunchFailure> {
    // Join the cgroup first: every process created from here on is accounted and limited,
    // and the cgroup namespace C creates is rooted at this cgroup.
    for dir in &plan.cgroup_dirs {
        std::fs::write(dir.join("cgroup.procs"), "0")
            .at_with(LaunchStep::JoinCgroup, || dir.display().to_string())?;
    }
    // A private mount namespace for L: the overlay and idmapped layers are mounted here, never
    // in the host's namespace.
    unshare(CloneFlags::CLONE_NEWNS).at(LaunchStep::MountNamespace)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .at_with(LaunchStep::MountNamespace, || {
        "making mounts private".into()
    })?;
    let _ = std::fs::remove_file(&plan.socket);
    let listener = bind_seqpacket(&plan.socket).at_with(LaunchStep::ControlSocket, || {
        plan.socket.display().to_string()
    })?;
    let pipes = Pipes {
        c2l: pipe().at(LaunchStep::Fork)?,
        l2c: pipe().at(LaunchStep::Fork)?,
        status: pipe().at(LaunchStep::Fork)?,
    };
    // L is a fresh exec that started no threads, so the child may run arbitrary code.
    match fork().at(LaunchStep::Fork)? {
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

/// What C or I reported on the status pipe, after it was closed: "READY", a failure, or
/// nothing (it died without a word; `silent` says at which point).
fn report(status: &mut std::fs::File, silent: LaunchFailure) -> Result<(), LaunchFailure> {
    let mut text = String::new();
    let _ = status.read_to_string(&mut text);
    match text.as_str() {
        "READY" => Ok(()),
        "" => Err(silent),
        text => Err(serde_json::from_str(text)
            .unwrap_or_else(|_| LaunchFailure::new(silent.step, text.to_string()))),
    }
}

fn parent(plan: &LaunchPlan, pipes: Pipes, c: Pid) -> Result<i32, LaunchFailure> {
    let Pipes { c2l, l2c, status } = pipes;
    drop(c2l.1);
    drop(l2c.0);
    drop(status.1);
    let mut c2l = std::fs::File::from(c2l.0);
    let mut status = std::fs::File::from(status.0);
    let died = |status: &mut std::fs::File, step, what: &str| {
        let failure = report(status, LaunchFailure::new(step, what));
        let _ = waitpid(c, None);
        failure
            .err()
            .unwrap_or_else(|| LaunchFailure::new(step, what))
    };
    let mut byte = [0u8; 1];
    if c2l.read_exact(&mut byte).is_err() {
        return Err(died(
            &mut status,
            LaunchStep::UserNamespace,
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
        return Err(died(
            &mut status,
            LaunchStep::Handshake,
            "the sandbox process died while its root was prepared",
        ));
    }
    let mut pid = [0u8; 4];
    if c2l.read_exact(&mut pid).is_err() {
        return Err(died(
            &mut status,
            LaunchStep::Namespaces,
            "the sandbox process died while creating namespaces",
        ));
    }
    let init_pid = i32::from_le_bytes(pid);
    let _ = waitpid(c, None);
    report(
        &mut status,
        LaunchFailure::new(LaunchStep::Init, "the sandbox init exited during setup"),
    )?;
    Ok(init_pid)
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
