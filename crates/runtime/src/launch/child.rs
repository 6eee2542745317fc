//! The sandbox side of a launch: C (creates the namespaces) and I (becomes PID 1).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{pivot_root, sethostname};

use super::failure::{At, LaunchFailure, LaunchStep};
use super::launcher::Pipes;
use super::plan::LaunchPlan;
use crate::sys;
use crate::sys::fork::{ForkResult, fork};

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

/// The sandbox's own `/dev/pts`: a new instance with at most 256 terminals, so
/// that one sandbox cannot take the host's whole pty budget (`kernel.pty.max`, 4096 by
/// default), which every other sandbox's `pty.create` draws from too.
const PTS_OPTIONS: &str = "newinstance,ptmxmode=0666,mode=0620,gid=5,max=256";

/// Directories hidden behind an empty read-only tmpfs (host firmware tables and hardware
/// state: ACPI, the memory map, SCSI), relative to the root; absent ones are skipped.
const MASKED_DIRS: &[&str] = &["proc/acpi", "proc/scsi", "sys/firmware"];

/// C: runs in the forked child of L. Returns the exit code of C.
pub(crate) fn run_intermediate(plan: &LaunchPlan, pipes: &Pipes, listener: OwnedFd) -> i32 {
    let mut status = std::fs::File::from(match pipes.status.1.try_clone() {
        Ok(fd) => fd,
        Err(_) => return 1,
    });
    match intermediate(plan, pipes, listener, &mut status) {
        Ok(()) => 0,
        Err(e) => {
            write_failure(&mut status, &e);
            1
        }
    }
}

/// Reports a failure to L on the status pipe (L reads it after the pipe closes).
fn write_failure(status: &mut std::fs::File, failure: &LaunchFailure) {
    if let Ok(json) = serde_json::to_vec(failure) {
        let _ = status.write_all(&json);
    }
}

fn intermediate(
    plan: &LaunchPlan,
    pipes: &Pipes,
    listener: OwnedFd,
    status: &mut std::fs::File,
) -> Result<(), LaunchFailure> {
    // C keeps only its own pipe ends.
    let mut c2l = std::fs::File::from(pipes.c2l.1.try_clone().at(LaunchStep::Handshake)?);
    let mut l2c = std::fs::File::from(pipes.l2c.0.try_clone().at(LaunchStep::Handshake)?);
    // The user namespace comes first and alone: L must write its id maps (which needs host
    // privileges C is about to lose) and idmap the layers with it before anything else.
    //
    // It is created with the sandbox's own host uid as its effective uid, which makes that
    // uid its owner: the kernel charges the per-user counters of everything inside (inotify
    // instances and watches, queued signals, message queues, user namespaces) at the host
    // level to the owner, so one sandbox's processes exhaust only that sandbox's share
    // (`fs.inotify.max_user_instances` and the rest, per sandbox) instead of host root's,
    // which every other sandbox and the host itself drew from. Real and saved uid stay 0 for
    // the one step below that still needs them (none does after the unshare: C has every
    // capability in the namespace it creates).
    let owner = nix::unistd::Uid::from_raw(plan.root_host_id);
    let host_root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(host_root, owner, host_root)
        .at_with(LaunchStep::UserNamespace, || {
            "taking the sandbox's host uid to own its user namespace".into()
        })?;
    unshare(CloneFlags::CLONE_NEWUSER).at(LaunchStep::UserNamespace)?;
    c2l.write_all(&[1])
        .at_with(LaunchStep::Handshake, || "signalling the launcher".into())?;
    let mut go = [0u8; 1];
    l2c.read_exact(&mut go).map_err(|_| {
        LaunchFailure::new(
            LaunchStep::Handshake,
            "the launcher gave up preparing the root filesystem",
        )
    })?;
    // The maps exist now. Until this point C still runs as host uid 0 (only its capabilities
    // are confined to the new namespace); become the namespace's root, which is the sandbox's
    // unprivileged host uid, and drop host root's supplementary groups.
    nix::unistd::setgroups(&[]).at_with(LaunchStep::DropHostIds, || "setgroups".into())?;
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .at_with(LaunchStep::DropHostIds, || "setresgid".into())?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .at_with(LaunchStep::DropHostIds, || "setresuid".into())?;
    // Now the other namespaces, owned by the new user namespace. The mount namespace is a copy
    // of L's, so it holds the overlay and /dev mounted there (locked together, which is fine).
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    unshare(flags).at(LaunchStep::Namespaces)?;
    // C is single-threaded (forked from the single-threaded L).
    match fork().at(LaunchStep::ForkInit)? {
        ForkResult::Child => {
            drop(c2l);
            drop(l2c);
            let code = match become_init(plan, listener, status) {
                Ok(never) => match never {},
                Err(e) => {
                    write_failure(status, &e);
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            c2l.write_all(&child.as_raw().to_le_bytes())
                .at_with(LaunchStep::Handshake, || "reporting the init pid".into())?;
            Ok(())
        }
    }
}

/// Per-process limits every sandbox process inherits from the init (lowering a limit needs
/// no privilege; raising a hard one needs `CAP_SYS_RESOURCE` on the host, which no
/// sandbox process has).
///
/// | limit | value | test |
/// |---|---|---|
/// | `RLIMIT_NOFILE` | `open_files`, default [`DEFAULT_OPEN_FILES`](crate::limits::DEFAULT_OPEN_FILES), at most the host's hard limit | `hostile::per_process_limits_hold_and_cannot_be_raised` |
/// | `RLIMIT_SIGPENDING` | [`SIGNALS_PENDING`](crate::limits::SIGNALS_PENDING) | same |
/// | `RLIMIT_MSGQUEUE` | [`MESSAGE_QUEUE_BYTES`](crate::limits::MESSAGE_QUEUE_BYTES) | same |
/// | `RLIMIT_NPROC` | the sandbox's `pids` limit, where it has one | same |
///
/// The counters behind `RLIMIT_SIGPENDING`, `RLIMIT_MSGQUEUE`, `RLIMIT_NPROC` and the inotify
/// limits are the kernel's per user namespace and uid, and at the host level per owner of the
/// user namespace: the sandbox's own host uid (see [`intermediate`]), never host root's.
fn apply_rlimits(limits: &crate::Limits) -> Result<(), LaunchFailure> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let step = LaunchStep::Init;
    let cap = |resource: Resource, want: u64| -> Result<(), LaunchFailure> {
        let (_, hard) = getrlimit(resource).at_with(step, || "getrlimit".into())?;
        let limit = hard.min(want);
        setrlimit(resource, limit, limit).at_with(step, || format!("setrlimit {resource:?}"))
    };
    cap(
        Resource::RLIMIT_NOFILE,
        limits
            .open_files
            .unwrap_or(crate::limits::DEFAULT_OPEN_FILES),
    )?;
    cap(Resource::RLIMIT_SIGPENDING, crate::limits::SIGNALS_PENDING)?;
    cap(
        Resource::RLIMIT_MSGQUEUE,
        crate::limits::MESSAGE_QUEUE_BYTES,
    )?;
    // Tasks per user of the sandbox: the same figure as the sandbox's `pids.max`, so a
    // user's fork bomb fails with EAGAIN at fork as well as at the cgroup.
    if let Some(pids) = limits.pids {
        cap(Resource::RLIMIT_NPROC, pids)?;
    }
    Ok(())
}

fn become_init(
    plan: &LaunchPlan,
    listener: OwnedFd,
    status: &mut std::fs::File,
) -> Result<std::convert::Infallible, LaunchFailure> {
    let rootfs = plan.dir.join("rootfs");
    // Kept by the init before the host's tree is detached: it holds the writable layer's
    // mount alive and reachable for the host's snapshots (the init is non-dumpable, so the
    // sandbox itself cannot reach it through /proc/1/fd).
    let writable = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(plan.dir.join("rw"))
            .ok()
            .map(OwnedFd::from)
    };
    setup_mounts(&rootfs)?;
    apply_rlimits(&plan.spec.limits)?;
    let pivot = LaunchStep::PivotRoot;
    std::env::set_current_dir(&rootfs).at_with(pivot, || "entering the root".into())?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves the
    // sandbox with no path back to the host's filesystem.
    pivot_root(".", ".").at_with(pivot, || "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).at_with(pivot, || "detaching the host root".into())?;
    std::env::set_current_dir("/").at_with(pivot, || "chdir /".into())?;
    sethostname(&plan.spec.id).at_with(LaunchStep::Network, || "sethostname".into())?;
    sys::net::loopback_up().at_with(LaunchStep::Network, || "bringing up loopback".into())?;
    // Non-dumpable: sandboxed processes (even root inside) cannot open /proc/1/fd or ptrace
    // the init to reach the control socket.
    sys::proc::set_non_dumpable().at_with(LaunchStep::Init, || "prctl".into())?;
    let init = crate::init::Init::new(listener, writable, plan.spec.limits.allow_setuid)
        .map_err(|e| LaunchFailure::new(LaunchStep::Init, e.to_string()))?;
    status
        .write_all(b"READY")
        .at_with(LaunchStep::Init, || "reporting readiness".into())?;
    let _ = status.flush();
    close_stdio();
    init.run()
        .map_err(|e| LaunchFailure::new(LaunchStep::Init, e))
}

/// Mounts that need the sandbox's own pid/net namespaces: /proc, /sys, /dev/pts, and the
/// masks over /proc. Done before pivot_root: in a user namespace, a new proc mount is only
/// allowed while a fully visible proc (the host's) is still in the mount namespace.
fn setup_mounts(rootfs: &Path) -> Result<(), LaunchFailure> {
    let step = LaunchStep::KernelMounts;
    // Mounts copied from L's namespace are locked in ours, and pivot_root refuses a locked new
    // root: a recursive bind of the root onto itself makes an unlocked mount on top.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .at_with(step, || "binding the root onto itself".into())?;
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = rootfs.join("proc");
    mount(Some("proc"), &proc_dir, Some("proc"), nse, None::<&str>)
        .at_with(step, || "mounting /proc".into())?;
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
        Some(PTS_OPTIONS),
    )
    .at_with(step, || "mounting /dev/pts".into())?;
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
            .at_with(step, || format!("binding /proc/{name}"))?;
            mount(
                None::<&str>,
                &path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nse,
                None::<&str>,
            )
            .at_with(step, || format!("making /proc/{name} read-only"))?;
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
            .at_with(step, || format!("masking /proc/{name}"))?;
        }
    }
    for dir in MASKED_DIRS {
        let path = rootfs.join(dir);
        if path.is_dir() {
            mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                nse | MsFlags::MS_RDONLY,
                Some("size=0,mode=0555"),
            )
            .at_with(step, || format!("masking /{dir}"))?;
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
