//! The sandbox side of a launch: C (creates the namespaces) and I (becomes PID 1).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{ForkResult, fork, pivot_root, sethostname};

use super::launcher::Pipes;
use super::plan::LaunchPlan;
use crate::sys;

/// Paths under /proc that are bound read-only (writes would reach the host kernel).
const PROC_READONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Paths under /proc hidden behind /dev/null (they leak host kernel state).
const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
];

/// C: runs in the forked child of L. Returns the exit code of C.
pub(crate) fn run_intermediate(plan: &LaunchPlan, pipes: &Pipes, listener: OwnedFd) -> i32 {
    let mut status = std::fs::File::from(match pipes.status.1.try_clone() {
        Ok(fd) => fd,
        Err(_) => return 1,
    });
    match intermediate(plan, pipes, listener, &mut status) {
        Ok(()) => 0,
        Err(e) => {
            let _ = status.write_all(e.as_bytes());
            1
        }
    }
}

fn intermediate(
    plan: &LaunchPlan,
    pipes: &Pipes,
    listener: OwnedFd,
    status: &mut std::fs::File,
) -> Result<(), String> {
    // C keeps only its own pipe ends.
    let mut c2l = std::fs::File::from(pipes.c2l.1.try_clone().map_err(|e| e.to_string())?);
    let mut l2c = std::fs::File::from(pipes.l2c.0.try_clone().map_err(|e| e.to_string())?);
    // The user namespace comes first and alone: L must write its id maps (which needs host
    // privileges C is about to lose) and idmap the layers with it before anything else.
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("creating the user namespace: {e}"))?;
    c2l.write_all(&[1])
        .map_err(|e| format!("signalling the launcher: {e}"))?;
    let mut go = [0u8; 1];
    l2c.read_exact(&mut go)
        .map_err(|_| "the launcher gave up preparing the root filesystem".to_string())?;
    // The maps exist now. Until this point C still runs as host uid 0 (only its capabilities
    // are confined to the new namespace); become the namespace's root, which is the sandbox's
    // unprivileged host uid, and drop host root's supplementary groups.
    nix::unistd::setgroups(&[]).map_err(|e| format!("dropping host groups: {e}"))?;
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid).map_err(|e| format!("setresuid: {e}"))?;
    // Now the other namespaces, owned by the new user namespace. The mount namespace is a copy
    // of L's, so it holds the overlay and /dev mounted there (locked together, which is fine).
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    unshare(flags).map_err(|e| format!("creating namespaces: {e}"))?;
    // SAFETY: C is single-threaded (forked from the single-threaded L).
    match unsafe { fork() }.map_err(|e| format!("forking the sandbox init: {e}"))? {
        ForkResult::Child => {
            drop(c2l);
            drop(l2c);
            let code = match become_init(plan, listener, status) {
                Ok(never) => match never {},
                Err(e) => {
                    let _ = status.write_all(e.as_bytes());
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            c2l.write_all(&child.as_raw().to_le_bytes())
                .map_err(|e| format!("reporting the init pid: {e}"))?;
            Ok(())
        }
    }
}

fn become_init(
    plan: &LaunchPlan,
    listener: OwnedFd,
    status: &mut std::fs::File,
) -> Result<std::convert::Infallible, String> {
    let rootfs = plan.dir.join("rootfs");
    setup_mounts(&rootfs)?;
    std::env::set_current_dir(&rootfs).map_err(|e| format!("entering the root: {e}"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves the
    // sandbox with no path back to the host's filesystem.
    pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the host root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    sethostname(&plan.spec.id).map_err(|e| format!("setting the hostname: {e}"))?;
    sys::net::loopback_up().map_err(|e| format!("bringing up loopback: {e}"))?;
    // Non-dumpable: sandboxed processes (even root inside) cannot open /proc/1/fd or ptrace
    // the init to reach the control socket.
    sys::proc::set_non_dumpable().map_err(|e| format!("prctl: {e}"))?;
    let init = crate::init::Init::new(listener).map_err(|e| format!("starting the init: {e}"))?;
    status
        .write_all(b"READY")
        .map_err(|e| format!("reporting readiness: {e}"))?;
    let _ = status.flush();
    close_stdio();
    init.run()
}

/// Mounts that need the sandbox's own pid/net namespaces: /proc, /sys, /dev/pts, and the
/// masks over /proc. Done before pivot_root: in a user namespace, a new proc mount is only
/// allowed while a fully visible proc (the host's) is still in the mount namespace.
fn setup_mounts(rootfs: &Path) -> Result<(), String> {
    // Mounts copied from L's namespace are locked in ours, and pivot_root refuses a locked new
    // root: a recursive bind of the root onto itself makes an unlocked mount on top.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("binding the root onto itself: {e}"))?;
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = rootfs.join("proc");
    mount(Some("proc"), &proc_dir, Some("proc"), nse, None::<&str>)
        .map_err(|e| format!("mounting /proc: {e}"))?;
    // /sys read-only; absent (an empty directory) where the kernel refuses.
    let _ = mount(
        Some("sysfs"),
        &rootfs.join("sys"),
        Some("sysfs"),
        nse | MsFlags::MS_RDONLY,
        None::<&str>,
    );
    mount(
        Some("devpts"),
        &rootfs.join("dev/pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(|e| format!("mounting /dev/pts: {e}"))?;
    for name in PROC_READONLY {
        let path = proc_dir.join(name);
        if path.exists() {
            mount(
                Some(&path),
                &path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| format!("binding /proc/{name}: {e}"))?;
            mount(
                None::<&str>,
                &path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nse,
                None::<&str>,
            )
            .map_err(|e| format!("making /proc/{name} read-only: {e}"))?;
        }
    }
    let null = rootfs.join("dev/null");
    for name in PROC_MASKED {
        let path = proc_dir.join(name);
        if path.exists() {
            mount(
                Some(&null),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("masking /proc/{name}: {e}"))?;
        }
    }
    Ok(())
}

/// The init keeps no stdio of the launcher: its output would go to the host caller.
fn close_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}
