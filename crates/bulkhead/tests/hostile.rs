//! Hostile code: every test runs an attack inside a real sandbox and asserts it fails.
//! The attacks live in tests/probe/probe.py (bind-mounted read-only at /probe.py).

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use bulkhead_runtime::{ExecSpec, Limits, Sandbox, seccomp};
use common::*;
use nix::libc;

fn debian(t: &TestRuntime, limits: Limits) -> Sandbox {
    let mut spec = t.spec("debian");
    spec.limits = limits;
    spec.binds.push(probe());
    t.create(spec)
}

#[test]
fn fork_bomb_is_stopped_by_the_pids_limit() {
    let t = TestRuntime::new();
    let sb = debian(
        &t,
        Limits {
            pids: Some(64),
            ..Default::default()
        },
    );
    let v = assert_refused(&sb, &["fork-bomb"]);
    assert_eq!(v["errno"], libc::EAGAIN, "{v}");
    assert!(sb.stats().pids <= 64);
    // The host is fine: it can still start processes.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    sb.destroy().unwrap();
}

/// However many sandboxes fork up to their own limits, together they stop at the runtime's
/// budget (`pids.max` of their parent cgroup), so the host keeps its pid space.
#[test]
fn sandboxes_together_cannot_take_the_hosts_pids() {
    let t = TestRuntime::new();
    t.runtime.set_pids_budget(Some(200)).expect("budget");
    let limits = Limits {
        pids: Some(1024),
        ..Default::default()
    };
    let a = debian(&t, limits.clone());
    let b = debian(&t, limits);
    let v = assert_refused(&a, &["fork-bomb"]);
    assert_eq!(v["errno"], libc::EAGAIN, "{v}");
    let together = a.stats().pids + b.stats().pids;
    assert!(together <= 200, "{together} tasks under a budget of 200");
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success(),
        "the host still starts processes"
    );
    // The budget is shared: once the bomb's tasks are gone, the other sandbox runs again.
    a.destroy().unwrap();
    assert_eq!(sh(&b, "echo ok").stdout, "ok\n");
    b.destroy().unwrap();
}

/// The per-process limits every sandbox process inherits hold, and root inside cannot raise
/// them (that needs CAP_SYS_RESOURCE on the host): one process cannot fill the host's file
/// table, nor take the queued-signal and message-queue counts host root shares.
#[test]
fn per_process_limits_hold_and_cannot_be_raised() {
    let t = TestRuntime::new();
    let sb = debian(
        &t,
        Limits {
            open_files: Some(4096),
            pids: Some(500),
            ..Default::default()
        },
    );
    let bash = |script: &str| run_spec(&sb, ExecSpec::command(["bash", "-c", script]));
    let out = bash("ulimit -Sn; ulimit -Hn; ulimit -Hi; ulimit -Hq; ulimit -Hu");
    assert_eq!(out.stdout, "4096\n4096\n1024\n819200\n500\n", "{out:?}");
    for raise in [
        "ulimit -Hn 5000",
        "ulimit -Hi 2048",
        "ulimit -Hq 1000000",
        "ulimit -Hu 1000",
    ] {
        let out = bash(raise);
        assert_ne!(
            out.code, 0,
            "root inside raised a hard limit: {raise}: {out:?}"
        );
    }
    let out = sh(
        &sb,
        "python3 -c 'import os\nfds=[]\ntry:\n  while True: fds.append(os.open(\"/dev/null\", 0))\nexcept OSError as e: print(len(fds) < 4096, e.errno)'",
    );
    assert_eq!(out.stdout, format!("True {}\n", libc::EMFILE), "{out:?}");
    sb.destroy().unwrap();
}

/// Holds as many inotify instances as the kernel gives one unprivileged process, in the
/// background, after writing how many it got and the errno that stopped it.
const HOARD_INOTIFY: &str = r#"
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
open("/tmp/hoard", "w").write(f"{len(fds)} {ctypes.get_errno()}")
time.sleep(120)
"#;

/// One sandbox's processes take every inotify instance the kernel gives them; host root and
/// another sandbox still get theirs. The sandbox's user namespace is owned by its own host
/// uid, so the kernel charges its counters there, not to host root, which every sandbox's
/// processes were charged to before (one sandbox then took all 128 instances from the host
/// and every other sandbox).
#[test]
fn one_sandbox_cannot_take_the_hosts_per_user_kernel_counters() {
    let t = TestRuntime::new();
    let a = debian(&t, Limits::default());
    let b = debian(&t, Limits::default());
    let out = sh(
        &a,
        &format!(
            "cat > /tmp/hoard.py <<'EOF'\n{HOARD_INOTIFY}\nEOF\n\
             setsid su -s /bin/sh nobody -c 'python3 /tmp/hoard.py' </dev/null >/dev/null 2>&1 &\n\
             for i in $(seq 100); do [ -s /tmp/hoard ] && break; sleep 0.1; done; cat /tmp/hoard"
        ),
    );
    let got: Vec<i64> = out
        .stdout
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(got.len(), 2, "{out:?}");
    assert_eq!(got[1], i64::from(libc::EMFILE), "{out:?}");
    assert!(got[0] > 0, "{out:?}");
    // Host root (this test) can still make one.
    // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    let errno = std::io::Error::last_os_error();
    assert!(fd >= 0, "host root's inotify_init1 failed: {errno}");
    // SAFETY: `fd` is the descriptor just made, owned here and closed once.
    unsafe { libc::close(fd) };
    // So can the other sandbox, its root and its user.
    for user in ["root", "nobody"] {
        let out = sh(
            &b,
            &format!(
                "su -s /bin/sh {user} -c \"python3 -c 'import ctypes; print(ctypes.CDLL(None).inotify_init1(0) >= 0)'\""
            ),
        );
        assert_eq!(out.stdout, "True\n", "{user} in another sandbox: {out:?}");
    }
    a.destroy().unwrap();
    b.destroy().unwrap();
}

#[test]
fn memory_bomb_is_oom_killed_inside_its_own_cgroup() {
    let t = TestRuntime::new();
    let sb = debian(
        &t,
        Limits {
            memory_bytes: Some(128 << 20),
            ..Default::default()
        },
    );
    let out = run_spec(
        &sb,
        ExecSpec::command(["python3", "/probe.py", "memory-bomb"]),
    );
    // Either the kernel's OOM killer ended it (SIGKILL) or allocation failed inside.
    assert!(
        out.code == 137 || out.stdout.contains("\"ok\": false"),
        "{out:?}"
    );
    if out.code == 137 {
        assert!(sb.stats().oom_kills >= 1, "{:?}", sb.stats());
    }
    // The sandbox itself (its init) survived, and so did the test process.
    assert_eq!(sh(&sb, "echo alive").stdout, "alive\n");
    sb.destroy().unwrap();
}

#[test]
fn disk_fill_hits_enospc_inside() {
    let t = TestRuntime::new();
    let sb = debian(
        &t,
        Limits {
            disk_bytes: Some(16 << 20),
            ..Default::default()
        },
    );
    let v = assert_refused(&sb, &["disk-fill", "/tmp/fill"]);
    assert_eq!(v["errno"], libc::ENOSPC, "{v}");
    let written: u64 = v["detail"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        written <= 16 << 20,
        "wrote {written} bytes past a 16 MiB disk"
    );
    sb.destroy().unwrap();
}

#[test]
fn host_files_are_out_of_reach() {
    let t = TestRuntime::new();
    let secret = t.state.path().join("host-secret.txt");
    std::fs::write(&secret, "TOP-SECRET").unwrap();
    let sb = debian(&t, Limits::default());
    let path = secret.to_str().unwrap();
    for p in [
        path.to_string(),
        format!("/proc/1/root{path}"),
        format!("/../../..{path}"),
        "/proc/1/root/../../../etc/shadow".into(),
    ] {
        let v = probe_run(&sb, &["read", &p]);
        assert!(
            v["ok"] == false || !v["detail"].as_str().unwrap_or("").contains("TOP-SECRET"),
            "{p}: {v}"
        );
    }
    // Symlinks resolve inside the sandbox's root.
    let out = sh(
        &sb,
        &format!(
            "ln -s / /tmp/up && cat /tmp/up/../..{path} 2>&1; ls /proc/1/root/ | head -3; grep -rl TOP-SECRET /var /tmp /root 2>/dev/null | head -1"
        ),
    );
    assert!(!out.stdout.contains("TOP-SECRET"), "{out:?}");
    // /proc/1/root is the sandbox's own root (its /etc/hostname names the sandbox).
    let v = probe_run(&sb, &["read", "/proc/1/root/etc/hostname"]);
    assert!(
        v["ok"] == false || v["detail"].as_str().unwrap().starts_with(sb.id()),
        "{v}"
    );
    sb.destroy().unwrap();
}

#[test]
fn kernel_interfaces_are_read_only() {
    let t = TestRuntime::new();
    let sb = debian(&t, Limits::default());
    for p in [
        "/proc/sys/vm/drop_caches",
        "/proc/sys/kernel/core_pattern",
        "/proc/sysrq-trigger",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/fs/cgroup/cgroup.procs",
    ] {
        assert_refused(&sb, &["write", p]);
    }
    // Host firmware and hardware state is masked: empty, and nothing can be created there.
    let out = sh(
        &sb,
        "find /proc/acpi /proc/scsi /sys/firmware -mindepth 1 2>/dev/null | wc -l; \
         touch /sys/firmware/x 2>/dev/null && echo created || echo refused",
    );
    assert_eq!(out.stdout, "0\nrefused\n", "{out:?}");
    sb.destroy().unwrap();
}

/// Every row of the seccomp policy table (`bulkhead_runtime::seccomp::POLICY`), tried from
/// inside a real sandbox: the probe gets the table as JSON and calls each syscall by the number
/// in it, with arguments its rule refuses.
#[test]
fn dangerous_syscalls_fail() {
    let t = TestRuntime::new();
    let sb = debian(&t, Limits::default());
    let table = serde_json::to_string(seccomp::POLICY).unwrap();
    let out = run_spec(
        &sb,
        ExecSpec::command(["python3", "/probe.py", "syscalls", &table]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let verdicts: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for rule in seccomp::POLICY {
        let action = format!("syscall:{}", rule.name);
        let tried: Vec<_> = verdicts.iter().filter(|v| v["action"] == action).collect();
        assert!(!tried.is_empty(), "{} was not tried: {out:?}", rule.name);
        for v in tried {
            assert_eq!(v["ok"], false, "sandboxed code called {}: {v}", rule.name);
            assert_eq!(v["errno"], rule.errno, "{}: {v}", rule.name);
        }
    }
    // New user namespaces (to regain capabilities) through the libc and util-linux doors.
    assert_refused(&sb, &["unshare-user"]);
    let out = sh(&sb, "unshare -U true 2>&1; echo rc=$?");
    assert!(!out.stdout.contains("rc=0"), "{out:?}");
    sb.destroy().unwrap();
}

/// amicontained-style: every syscall number up to the probed maximum that is not on the
/// allow-list (and every row the deny table refuses outright) is called from inside a real
/// sandbox, and each fails with its expected error; so do the x32 aliases of a few (the
/// number with bit 30 set), which a deny-list of plain numbers would have let through. And
/// the calls the deny-list once missed (`open_tree_attr`, `listmount`, `statmount`, the
/// `lsm_*` and `*xattrat` calls, `mseal`, `pidfd_getfd`) are in the blocked set.
#[test]
fn every_syscall_outside_the_allow_list_is_refused() {
    let t = TestRuntime::new();
    let sb = debian(&t, Limits::default());
    let mut pairs = seccomp::blocked();
    for nr in [165, 101, 272, 321, 428, 438] {
        pairs.push((nr | 0x4000_0000, libc::ENOSYS));
    }
    let blocked: std::collections::BTreeSet<i64> = pairs.iter().map(|p| p.0).collect();
    for nr in [467, 457, 458, 459, 460, 461, 463, 464, 465, 466, 462, 438] {
        assert!(blocked.contains(&nr), "syscall {nr} is not blocked");
    }
    let json = serde_json::to_string(&pairs).unwrap();
    for user in [None, Some("nobody")] {
        let cmd: Vec<String> = match user {
            None => vec![
                "python3".into(),
                "/probe.py".into(),
                "numbers".into(),
                json.clone(),
            ],
            Some(u) => vec![
                "su".into(),
                "-s".into(),
                "/bin/sh".into(),
                u.into(),
                "-c".into(),
                format!("python3 /probe.py numbers '{json}'"),
            ],
        };
        let out = run_spec(&sb, ExecSpec::command(cmd));
        assert_eq!(out.code, 0, "{out:?}");
        let verdicts: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(verdicts.len(), pairs.len(), "{user:?}: {out:?}");
        for v in &verdicts {
            assert_eq!(v["ok"], false, "{user:?}: a blocked syscall ran: {v}");
            assert_eq!(v["errno"], v["expected"], "{user:?}: {v}");
        }
    }
    // uretprobe and uprobe, which the kernel lets past every filter, refuse a caller outside
    // a probe's trampoline themselves: SIGILL and ENXIO.
    let call = |nr: i64| {
        sh(
            &sb,
            &format!(
                "python3 -c 'import ctypes; l = ctypes.CDLL(None, use_errno=True); \
                 print(l.syscall({nr}, 0, 0, 0, 0, 0, 0), ctypes.get_errno())'; echo rc=$?"
            ),
        )
    };
    let out = call(335);
    assert!(out.stdout.contains("rc=132"), "uretprobe: {out:?}");
    let out = call(336);
    assert!(
        out.stdout.starts_with(&format!("-1 {}", libc::ENXIO))
            || out.stdout.starts_with(&format!("-1 {}", libc::ENOSYS)),
        "uprobe: {out:?}"
    );
    // Allowed calls still reach the kernel.
    let out = sh(
        &sb,
        "python3 -c 'import os; print(os.getpid() > 0, os.uname().sysname)'",
    );
    assert_eq!(out.stdout, "True Linux\n", "{out:?}");
    sb.destroy().unwrap();
}

#[test]
fn no_raw_sockets_and_no_route_to_the_host() {
    let t = TestRuntime::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sb = debian(&t, Limits::default());
    assert_refused(&sb, &["raw-socket"]);
    assert_refused(&sb, &["connect", &port]);
    // Loopback inside works.
    let out = sh(
        &sb,
        "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); c=socket.create_connection(s.getsockname()); print(\"ok\")'",
    );
    assert_eq!(out.stdout.trim(), "ok", "{out:?}");
    sb.destroy().unwrap();
}

#[test]
fn host_processes_are_invisible_and_unreachable() {
    let t = TestRuntime::new();
    let sb = debian(&t, Limits::default());
    let me = std::process::id().to_string();
    let out = sh(&sb, "ls /proc | grep -E '^[0-9]+$' | wc -l");
    let visible: usize = out.stdout.trim().parse().unwrap();
    assert!(visible <= 6, "sandbox sees {visible} processes: {out:?}");
    assert_refused(&sb, &["kill", &me]);
    assert_refused(&sb, &["ptrace", &me]);
    assert_refused(&sb, &["ptrace", "1"]);
    assert_refused(&sb, &["read", "/proc/1/environ"]);
    sb.destroy().unwrap();
}

#[test]
fn sandboxes_cannot_see_or_signal_each_other() {
    let t = TestRuntime::new();
    let a = debian(&t, Limits::default());
    let b = debian(&t, Limits::default());
    let victim = a
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command(["sleep", "1000"])
        })
        .unwrap();
    assert_eq!(
        sh(&a, "echo private > /tmp/a-only; echo done").stdout,
        "done\n"
    );
    // b sees neither a's files nor its process; signalling the same pid number hits b's own
    // namespace, never a's process.
    assert_eq!(
        sh(&b, "cat /tmp/a-only 2>/dev/null || echo absent").stdout,
        "absent\n"
    );
    let out = sh(&b, "ps -eo args | grep -c '^sleep 1000' || true");
    assert_eq!(out.stdout.trim(), "0");
    let _ = probe_run(&b, &["kill", &victim.pid.to_string()]);
    let a_host = a.root_path();
    assert!(a_host.join("tmp/a-only").exists());
    assert_eq!(
        sh(&a, "ps -eo args | grep -c '^sleep 1000'").stdout.trim(),
        "1",
        "a's process was killed from b"
    );
    assert_ne!(
        a.root_host_id(),
        b.root_host_id(),
        "sandboxes share a uid range"
    );
    a.destroy().unwrap();
    b.destroy().unwrap();
}

#[test]
fn root_inside_is_an_unprivileged_uid_outside() {
    let t = TestRuntime::new();
    let sb = debian(&t, Limits::default());
    assert_eq!(
        sh(&sb, "echo x > /root/made-by-root && id -u").stdout,
        "0\n"
    );
    let meta = std::fs::metadata(sb.root_path().join("root/made-by-root")).unwrap();
    assert_eq!(meta.uid(), sb.root_host_id());
    assert_eq!(meta.gid(), sb.root_host_id());
    assert!(sb.root_host_id() >= 65536);
    // The init process itself runs as that uid on the host.
    let status = std::fs::read_to_string(format!("/proc/{}/status", sb.init_pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.contains(&sb.root_host_id().to_string()),
        "{uid_line}"
    );
    // The read-only bind (the probe) cannot be modified.
    assert_refused(&sb, &["write", "/probe.py"]);
    sb.destroy().unwrap();
}

/// With `allow_setuid` (the server's default, so `sudo` works as on E2B), a set-uid-root
/// binary raises an unprivileged process to the sandbox's root, and no further: as that
/// root, every refused syscall is still refused, new user namespaces too, the process is the
/// sandbox's unprivileged host uid, and host files stay out of reach. Without it, the same
/// binary gives nothing (no_new_privs and a nosuid root).
#[test]
fn setuid_raises_a_user_to_sandbox_root_and_no_further() {
    let t = TestRuntime::new();
    let elevate = "cp \"$(readlink -f \"$(command -v python3)\")\" /usr/local/bin/pyroot \
                   && chmod 4755 /usr/local/bin/pyroot && echo ready";
    let as_nobody = |sb: &Sandbox, script: &str| {
        run_spec(
            sb,
            ExecSpec {
                user: Some("nobody".into()),
                ..ExecSpec::command(["sh", "-c", script])
            },
        )
    };
    // Off: no_new_privs and nosuid, the set-uid bit gives nothing.
    let plain = debian(&t, Limits::default());
    assert_eq!(sh(&plain, elevate).stdout, "ready\n");
    let out = as_nobody(
        &plain,
        "/usr/local/bin/pyroot -c 'import os; print(os.geteuid())'",
    );
    assert_eq!(out.stdout, "65534\n", "{out:?}");
    plain.destroy().unwrap();

    let sb = debian(
        &t,
        Limits {
            allow_setuid: true,
            ..Default::default()
        },
    );
    assert_eq!(sh(&sb, elevate).stdout, "ready\n");
    let out = as_nobody(
        &sb,
        "/usr/local/bin/pyroot -c 'import os; os.setuid(0); print(os.getuid(), os.geteuid()); print(open(\"/proc/self/status\").read())'",
    );
    assert!(out.stdout.starts_with("0 0\n"), "{out:?}");
    // The raised process holds no more than the sandbox's root: the bounding set.
    let cap_bnd = out
        .stdout
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .to_string();
    let plain_root = sh(&sb, "grep CapBnd: /proc/self/status").stdout;
    assert_eq!(format!("{cap_bnd}\n"), plain_root);
    // As that root: the deny table and every blocked number, then a new user namespace.
    let raised = |probe_args: &str| {
        as_nobody(
            &sb,
            &format!(
                "/usr/local/bin/pyroot -c 'import os, sys; os.setuid(0); \
                 os.execv(sys.executable, [\"python3\", \"/probe.py\"] + {probe_args})'"
            ),
        )
    };
    let table = serde_json::to_string(seccomp::POLICY).unwrap();
    let pairs = serde_json::to_string(&seccomp::blocked()).unwrap();
    for (what, arg) in [("syscalls", table), ("numbers", pairs)] {
        std::fs::write(sb.root_path().join("tmp/arg"), arg).unwrap();
        let out = raised(&format!("[\"{what}\", open(\"/tmp/arg\").read()]"));
        assert_eq!(out.code, 0, "{what}: {out:?}");
        let lines: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() > 10, "{what}: {out:?}");
        for v in lines {
            assert_eq!(v["ok"], false, "raised root made a refused call: {v}");
            assert_eq!(v["errno"], v["expected"], "{v}");
        }
    }
    let out = raised("[\"unshare-user\"]");
    let v: serde_json::Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    // On the host, the raised process is the sandbox's unprivileged uid.
    let mut p = sb
        .exec(ExecSpec {
            user: Some("nobody".into()),
            ..ExecSpec::command([
                "/usr/local/bin/pyroot",
                "-c",
                "import os, time; os.setuid(0); print('up', flush=True); time.sleep(5)",
            ])
        })
        .unwrap();
    let mut first = [0u8; 3];
    std::io::Read::read_exact(p.stdout.as_mut().unwrap(), &mut first).unwrap();
    let host_uids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|st| st.lines().next() == Some("Name:\tpyroot"))
        .filter_map(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(host_uids.len(), 1, "{host_uids:?}");
    let want = sb.root_host_id().to_string();
    assert!(
        host_uids[0].split_whitespace().skip(1).all(|u| u == want),
        "{host_uids:?} (sandbox root is host uid {want})"
    );
    let _ = p.signal(libc::SIGKILL, true);
    let _ = p.wait();
    sb.destroy().unwrap();
}

/// A device node in an image layer (a pulled image's, an ADD archive's) cannot be opened in
/// the sandbox: the overlay the host mounts is `nodev`, where it would otherwise give the
/// host's device (here `/dev/zero`'s 1:5; a disk's would give the disk).
#[test]
fn device_nodes_in_a_layer_cannot_be_opened() {
    let t = TestRuntime::new();
    let layer = tempfile::tempdir().unwrap();
    nix::sys::stat::mknod(
        &layer.path().join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .unwrap();
    std::fs::set_permissions(
        layer.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut spec = t.spec("debian");
    spec.layers.push(layer.path().to_path_buf());
    spec.binds.push(probe());
    let sb = t.create(spec);
    let out = sh(
        &sb,
        "ls -l /zero; head -c 4 /zero | od -An -tx1; echo rc=$?",
    );
    assert!(out.stdout.starts_with("crw"), "{out:?}");
    assert!(
        !out.stdout.contains("00 00 00 00"),
        "the layer's device node opened: {out:?}"
    );
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    sb.destroy().unwrap();
}

#[test]
fn host_stays_responsive_under_a_fork_bomb() {
    let t = TestRuntime::new();
    let sb = debian(
        &t,
        Limits {
            pids: Some(32),
            cpu_millis: Some(500),
            ..Default::default()
        },
    );
    let _bomb = sb
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command(["sh", "-c", ":(){ :|:& };:"])
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    assert!(sb.stats().pids <= 32);
    sb.destroy().unwrap();
}

/// One sandbox opening terminals until it cannot: it stops at its own devpts limit (256),
/// and another sandbox still gets one (#13: one sandbox held 3,071 ptys and every other
/// sandbox's PTY failed with ENOSPC).
#[test]
fn one_sandbox_cannot_take_every_pty() {
    let t = TestRuntime::new();
    let hog = debian(&t, Limits::default());
    let script = "import os\nfds=[]\ntry:\n    while len(fds) < 5000:\n        fds.append(os.openpty())\nexcept OSError as e:\n    print(len(fds), e.errno, flush=True)\nimport time\ntime.sleep(30)\n";
    let mut spec = ExecSpec::command(["python3", "-c", script]);
    spec.detach = true;
    let p = hog.exec(spec).unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(p.stdout.as_ref().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut it = line.split_whitespace();
    let held: usize = it.next().unwrap().parse().unwrap();
    assert!(held <= 256, "one sandbox held {held} ptys: {line}");
    let other = debian(&t, Limits::default());
    let out = sh(
        &other,
        "python3 -c 'import os; os.openpty(); print(\"ok\")'",
    );
    assert_eq!(out.stdout, "ok\n", "{out:?}");
    other.destroy().unwrap();
    hog.destroy().unwrap();
}
