//! Sandbox lifecycle: create, exec, kill, destroy, pools, and that nothing is left behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bulkhead_runtime::{ExecError, ExecFailure, ExecSpec, Pool, PoolKey, Stdio, WinSize};
use common::*;

#[test]
fn runs_a_command_with_a_clean_environment() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    let out = sh(&sb, "echo out; echo err >&2; hostname; env | sort; exit 7");
    assert_eq!(out.code, 7);
    assert!(out.stdout.starts_with("out\n"), "{out:?}");
    assert_eq!(out.stderr, "err\n");
    assert!(
        out.stdout.contains(&format!("\n{}\n", sb.id())),
        "hostname is the id: {out:?}"
    );
    assert!(out.stdout.contains("PATH=/usr/local/sbin:"), "{out:?}");
    assert!(out.stdout.contains("HOME=/root"), "{out:?}");
    assert!(out.stdout.contains("LANG=C.UTF-8"), "{out:?}");
    // Nothing leaks in from the host environment (the test runner sets CARGO_* variables).
    assert!(
        !out.stdout.contains("CARGO"),
        "host environment leaked: {out:?}"
    );
    sb.destroy().unwrap();
}

#[test]
fn env_cwd_and_user_are_applied() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    let spec = ExecSpec {
        env: vec![
            ("GREETING".into(), "hi there".into()),
            ("PATH".into(), "/bin".into()),
        ],
        cwd: Some("/tmp".into()),
        user: Some("user".into()),
        ..ExecSpec::command([
            "sh",
            "-c",
            "echo $GREETING; pwd; id -u; id -g; echo $PATH $HOME; touch f; ls -ln f",
        ])
    };
    let out = run_spec(&sb, spec);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..5],
        ["hi there", "/tmp", "1000", "1000", "/bin /home/user"]
    );
    assert!(
        lines[5].contains(" 1000 ") && lines[5].contains(" 1000 "),
        "{lines:?}"
    );
    sb.destroy().unwrap();
}

#[test]
fn exec_failures_are_typed() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    let not_found = sb.exec(ExecSpec::command(["no-such-command"])).unwrap_err();
    assert!(
        matches!(
            not_found,
            ExecError::Failed {
                kind: ExecFailure::NotFound,
                ..
            }
        ),
        "{not_found:?}"
    );
    assert_eq!(ExecFailure::NotFound.exit_code(), 127);
    let user = sb
        .exec(ExecSpec {
            user: Some("mallory".into()),
            ..ExecSpec::command(["true"])
        })
        .unwrap_err();
    assert!(
        matches!(&user, ExecError::Failed { kind: ExecFailure::UnknownUser, message } if message.contains("mallory")),
        "{user:?}"
    );
    let cwd = sb
        .exec(ExecSpec {
            cwd: Some("/nope".into()),
            ..ExecSpec::command(["true"])
        })
        .unwrap_err();
    assert!(
        matches!(
            cwd,
            ExecError::Failed {
                kind: ExecFailure::BadCwd,
                ..
            }
        ),
        "{cwd:?}"
    );
    let not_exec = sb.exec(ExecSpec::command(["/etc/passwd"])).unwrap_err();
    assert!(
        matches!(
            not_exec,
            ExecError::Failed {
                kind: ExecFailure::NotExecutable,
                ..
            }
        ),
        "{not_exec:?}"
    );
    let empty = sb
        .exec(ExecSpec::command(Vec::<String>::new()))
        .unwrap_err();
    assert!(
        matches!(
            empty,
            ExecError::Failed {
                kind: ExecFailure::Invalid,
                ..
            }
        ),
        "{empty:?}"
    );
    // The sandbox still works after all of that.
    assert_eq!(sh(&sb, "true").code, 0);
    sb.destroy().unwrap();
}

#[test]
fn stdin_signals_and_pty() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    // stdin
    let mut p = sb
        .exec(ExecSpec {
            stdio: Stdio::Pipes { stdin: true },
            ..ExecSpec::command(["tr", "a-z", "A-Z"])
        })
        .unwrap();
    let mut stdin = p.stdin.take().unwrap();
    stdin.write_all(b"hello sandbox\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(out, "HELLO SANDBOX\n");
    assert_eq!(p.wait().unwrap().code, Some(0));
    // signal
    let p = sb.exec(ExecSpec::command(["sleep", "100"])).unwrap();
    p.signal(15, false).unwrap();
    let st = p.wait().unwrap();
    assert_eq!((st.code, st.signal), (None, Some(15)));
    assert_eq!(st.shell_code(), 143);
    // PTY: a terminal of the requested size, and it is the controlling terminal
    let mut p = sb
        .exec(ExecSpec {
            stdio: Stdio::Pty {
                size: WinSize {
                    cols: 101,
                    rows: 33,
                },
            },
            ..ExecSpec::command(["sh", "-c", "stty size; tty"])
        })
        .unwrap();
    let mut pty = p.pty.take().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = pty.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(text.contains("33 101"), "{text:?}");
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert_eq!(p.wait().unwrap().code, Some(0));
    sb.destroy().unwrap();
}

#[test]
fn closing_the_connection_kills_the_process_unless_detached() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    drop(
        sb.exec(ExecSpec::command(["sh", "-c", "sleep 1000"]))
            .unwrap(),
    );
    let detached = sb
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command(["sh", "-c", "exec sleep 999"])
        })
        .unwrap();
    drop(detached);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = sh(&sb, "ps -o args | grep -c '^sleep 1000' || true");
        if out.stdout.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "attached process survived its connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The detached one lives on (polled: under load its shell may not have exec'd yet).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = sh(&sb, "ps -o args | grep -c '^sleep 999' || true");
        if out.stdout.trim() == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the detached process did not survive its connection: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sb.destroy().unwrap();
}

#[test]
fn kill_and_destroy_end_everything() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    let _bg = sb
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command(["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(sb.stats().pids >= 4, "{:?}", sb.stats());
    assert!(sb.is_running());
    sb.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sb.is_running() {
        assert!(Instant::now() < deadline, "sandbox survived kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        sb.exec(ExecSpec::command(["true"])),
        Err(ExecError::NotRunning(_))
    ));
    sb.destroy().unwrap();
    assert_eq!(t.cgroup_children(), 0);
}

#[test]
fn pool_hands_out_ready_sandboxes() {
    let t = TestRuntime::new();
    let key = PoolKey {
        layers: vec![rootfs("busybox")],
        limits: Default::default(),
        binds: vec![],
    };
    let pool = Pool::new(t.runtime.clone(), key, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.ready() < 2 {
        assert!(
            Instant::now() < deadline,
            "pool did not fill: {:?}",
            pool.last_error()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let a = pool.take().expect("a pooled sandbox");
    let b = pool.create().expect("second");
    assert_ne!(a.id(), b.id());
    assert_eq!(sh(&a, "hostname").stdout.trim(), a.id());
    a.destroy().unwrap();
    b.destroy().unwrap();
    pool.shutdown();
    assert_eq!(t.cgroup_children(), 0);
    assert_eq!(
        std::fs::read_dir(t.state.path().join("sandboxes"))
            .unwrap()
            .count(),
        0
    );
}

/// Host mounts under `dir` (other tests and services may mount elsewhere concurrently).
fn host_mounts(dir: &std::path::Path) -> usize {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir))
        .count()
}

fn children_of_self() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().nth(1) == Some(me.as_str()))
                })
                .unwrap_or(false)
        })
        .count()
}

fn loop_devices() -> usize {
    std::fs::read_dir("/sys/block")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("size"))
                        .map(|s| s.trim() != "0")
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// 100 create/destroy cycles leave no mount, cgroup, directory, process, uid claim or loop
/// device behind.
#[test]
fn hundred_cycles_leave_nothing_behind() {
    let t = TestRuntime::new();
    let before = (
        host_mounts(t.state.path()),
        children_of_self(),
        loop_devices(),
    );
    for i in 0..100 {
        let sb = t.create(t.spec("busybox"));
        if i % 10 == 0 {
            assert_eq!(sh(&sb, "echo $((6*7))").stdout, "42\n");
        }
        sb.destroy().unwrap();
    }
    let after = (
        host_mounts(t.state.path()),
        children_of_self(),
        loop_devices(),
    );
    assert_eq!(
        before, after,
        "(mounts, child processes, loop devices) changed"
    );
    assert_eq!(t.cgroup_children(), 0, "sandbox cgroups left");
    assert_eq!(
        std::fs::read_dir(t.state.path().join("sandboxes"))
            .unwrap()
            .count(),
        0,
        "sandbox dirs left"
    );
    assert_eq!(t.runtime.uid_claims(), 0, "uid claims left");
}

#[test]
fn bad_specs_are_refused_without_leftovers() {
    let t = TestRuntime::new();
    let mut spec = t.spec("busybox");
    spec.id = "Not-Valid".into();
    assert!(t.runtime.create(spec).is_err());
    let mut spec = t.spec("busybox");
    spec.layers = vec!["/nonexistent/rootfs".into()];
    let err = t.runtime.create(spec).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/rootfs"), "{err}");
    let mut spec = t.spec("busybox");
    spec.binds = vec![bulkhead_runtime::BindMount {
        source: "/etc".into(),
        target: "relative".into(),
        read_only: true,
        idmap: false,
    }];
    assert!(t.runtime.create(spec).is_err());
    assert_eq!(t.cgroup_children(), 0);
    assert_eq!(
        std::fs::read_dir(t.state.path().join("sandboxes"))
            .unwrap()
            .count(),
        0
    );
}

/// Nothing is left of a sandbox whose launch failed: no cgroup, directory or uid claim.
fn assert_no_leftovers(t: &TestRuntime) {
    assert_eq!(t.cgroup_children(), 0);
    let left = std::fs::read_dir(t.state.path().join("sandboxes"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "sandboxes left behind");
    assert_eq!(t.runtime.uid_claims(), 0, "uid claims left behind");
}

#[test]
fn launch_failures_name_their_step_and_who_can_fix_them() {
    use bulkhead_runtime::{FailureKind, LaunchStep, RuntimeError};
    // An image whose /proc is a symlink to the host's root: the launcher refuses to mount
    // through it, and blames the image.
    let t = TestRuntime::new();
    let layer = tempfile::tempdir_in("/var/tmp").unwrap();
    std::os::unix::fs::symlink("/", layer.path().join("proc")).unwrap();
    let mut spec = t.spec("busybox");
    spec.layers.push(layer.path().to_path_buf());
    let err = t.runtime.create(spec).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Image, "{err}");
    assert!(
        matches!(
            err,
            RuntimeError::Launch {
                step: LaunchStep::MountPoints,
                errno: Some(libc::ELOOP),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("/proc is a symlink"), "{text}");
    assert!(text.contains("image"), "{text}");
    assert_no_leftovers(&t);
    // A launcher that is not a bulkhead binary: the host's configuration is at fault.
    let t = TestRuntime::with_launcher(std::path::Path::new("/bin/true"));
    let err = t.runtime.create(t.spec("busybox")).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Host, "{err}");
    assert!(
        matches!(
            err,
            RuntimeError::Launch {
                step: LaunchStep::Launcher,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("the host cannot start sandboxes"),
        "{err}"
    );
    assert_no_leftovers(&t);
}

#[test]
fn debian_rootfs_runs_python() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("debian"));
    let out = run_spec(
        &sb,
        ExecSpec::command([
            "python3",
            "-c",
            "import os, socket; print(os.getuid(), socket.gethostname())",
        ]),
    );
    assert_eq!(out.stdout.trim(), format!("0 {}", sb.id()), "{out:?}");
    // Files from the image are owned by root inside, thanks to the idmapped layers.
    assert_eq!(
        sh(&sb, "stat -c '%U:%G' /usr/bin/python3 /etc/passwd").stdout,
        "root:root\nroot:root\n"
    );
    sb.destroy().unwrap();
}

/// The host reaches a server listening on the sandbox's loopback (what the edge proxy does),
/// although the sandbox cannot reach the host.
#[test]
fn host_connects_into_the_sandbox_network() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("debian"));
    let server = sb
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command([
                "python3",
                "-c",
                "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', 8123)); s.listen(); print('ready', flush=True); c,_=s.accept(); c.sendall(b'hello from inside ' + socket.gethostname().encode())",
            ])
        })
        .unwrap();
    let mut ready = [0u8; 6];
    server
        .stdout
        .as_ref()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    let host_ns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let mut stream = sb.connect_tcp(8123, Duration::from_secs(2)).unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    assert_eq!(got, format!("hello from inside {}", sb.id()));
    assert!(
        sb.connect_tcp(8124, Duration::from_secs(2)).is_err(),
        "nothing listens on 8124"
    );
    // Our own thread is still in the host's network namespace.
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        host_ns
    );
    sb.destroy().unwrap();
}

/// Pause keeps state (processes frozen, files intact); resume continues where it stopped.
#[test]
fn freeze_and_thaw_keep_state() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    let counter = sb
        .exec(ExecSpec {
            detach: true,
            ..ExecSpec::command([
                "sh",
                "-c",
                // Written aside and renamed, so a read never sees the file truncated and empty.
                "i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.01; done",
            ])
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    sb.set_frozen(true).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let frozen_at = std::fs::read_to_string(sb.root_path().join("tmp/count")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(sb.root_path().join("tmp/count")).unwrap(),
        frozen_at,
        "a frozen sandbox kept running"
    );
    let cpu_frozen = sb.stats().cpu_ns;
    assert!(cpu_frozen > 0);
    sb.set_frozen(false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let after: u64 = std::fs::read_to_string(sb.root_path().join("tmp/count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        after > frozen_at.trim().parse::<u64>().unwrap(),
        "thawed sandbox did not continue"
    );
    assert!(sb.stats().memory_bytes > 0);
    drop(counter);
    sb.destroy().unwrap();
}

/// A new process (a restarted server) finds a running sandbox from its state file.
#[test]
fn a_sandbox_is_adopted_from_its_state_file() {
    let t = TestRuntime::new();
    let sb = t.create(t.spec("busybox"));
    let id = sb.id().to_string();
    let pid = sb.init_pid();
    drop(sb);
    let adopted =
        bulkhead_runtime::Sandbox::adopt(&t.runtime, &id).expect("adopt a running sandbox");
    assert_eq!(adopted.init_pid(), pid);
    assert_eq!(sh(&adopted, "hostname").stdout.trim(), id);
    adopted.destroy().unwrap();
    assert!(
        bulkhead_runtime::Sandbox::adopt(&t.runtime, &id).is_none(),
        "a destroyed sandbox was adopted"
    );
    assert_eq!(t.cgroup_children(), 0);
}

/// After a crash of the host process (its sandboxes' handles lost, some inits dead), a new
/// process removes every leftover completely.
#[test]
fn leftovers_of_a_crashed_host_are_removed() {
    let t = TestRuntime::new();
    let alive = t.create(t.spec("busybox"));
    let dead = t.create(t.spec("busybox"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dead.init_pid()),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(dead.init_pid()), None);
    let (alive_pid, ids) = (
        alive.init_pid(),
        [alive.id().to_string(), dead.id().to_string()],
    );
    drop(alive);
    drop(dead);
    let mut on_disk = t.runtime.sandbox_ids_on_disk();
    on_disk.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(on_disk, expected);
    for id in &on_disk {
        t.runtime.remove_leftover(id).unwrap();
    }
    assert!(t.runtime.sandbox_ids_on_disk().is_empty());
    assert_eq!(t.cgroup_children(), 0);
    assert_eq!(t.runtime.uid_claims(), 0);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(alive_pid), None);
    assert!(
        !std::path::Path::new(&format!("/proc/{alive_pid}")).exists(),
        "the live sandbox survived"
    );
}

/// A host directory attached to a running sandbox (what storage mounts with a per-sandbox
/// prefix use): visible at the target, writable or read-only as asked, and a planted symlink
/// on the target path is refused.
#[test]
fn host_directories_attach_to_running_sandboxes() {
    let t = TestRuntime::new();
    let shared = t.state.path().join("shared");
    std::fs::create_dir_all(shared.join("sub")).unwrap();
    std::fs::write(shared.join("sub/hello.txt"), "from the host").unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        shared.join("sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let sb = t.create(t.spec("busybox"));
    sb.attach(
        &shared.join("sub"),
        std::path::Path::new("/opt/data"),
        false,
    )
    .unwrap();
    assert_eq!(sh(&sb, "cat /opt/data/hello.txt").stdout, "from the host");
    assert_eq!(
        sh(&sb, "echo back > /opt/data/reply.txt && echo ok").stdout,
        "ok\n"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("sub/reply.txt")).unwrap(),
        "back\n"
    );
    // Writable or not, no set-uid binary or device node works through an attached tree.
    let opts = sh(&sb, "grep ' /opt/data ' /proc/self/mountinfo").stdout;
    assert!(opts.contains("nosuid") && opts.contains("nodev"), "{opts}");
    sb.attach(&shared, std::path::Path::new("/mnt/ro"), true)
        .unwrap();
    assert_eq!(sh(&sb, "cat /mnt/ro/sub/hello.txt").stdout, "from the host");
    let out = sh(&sb, "touch /mnt/ro/nope 2>&1; echo rc=$?");
    assert!(out.stdout.contains("Read-only file system"), "{out:?}");
    // Sandboxed code plants a symlink pointing at a host path: the attach must not follow it.
    assert_eq!(sh(&sb, "ln -s /etc /tmp/evil && echo ok").stdout, "ok\n");
    assert!(
        sb.attach(&shared, std::path::Path::new("/tmp/evil/x"), false)
            .is_err()
    );
    sb.destroy().unwrap();
}

/// Two runtimes with state directories of their own (two servers on one host, or a server and
/// `bulkhead run`) never hand one uid range to two live sandboxes: ranges are claimed
/// host-wide. Two slots of a range no other test uses, shared by both runtimes.
#[test]
fn two_runtimes_never_share_a_uid_range() {
    let make = || {
        let state = tempfile::Builder::new()
            .prefix("bulkhead-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let mut config =
            bulkhead_runtime::RuntimeConfig::new(state.path(), env!("CARGO_BIN_EXE_bulkhead"));
        config.cgroup_parent = format!("bulkhead-test-{}", bulkhead_runtime::spec::new_id());
        config.uid_base = 3 << 30;
        config.uid_slots = 2;
        (bulkhead_runtime::Runtime::new(config).unwrap(), state)
    };
    let ((a, _sa), (b, _sb)) = (make(), make());
    let spec = || bulkhead_runtime::SandboxSpec {
        id: bulkhead_runtime::spec::new_id(),
        layers: vec![rootfs("busybox")],
        limits: bulkhead_runtime::Limits::default(),
        binds: vec![],
        writable_dir: None,
    };
    let first = a.create(spec()).unwrap();
    let second = b.create(spec()).unwrap();
    assert_ne!(first.root_host_id(), second.root_host_id());
    let third = a.create(spec());
    assert!(
        matches!(third, Err(bulkhead_runtime::RuntimeError::UidsExhausted(2))),
        "a third sandbox got a range both runtimes hold: {third:?}"
    );
    first.destroy().unwrap();
    second.destroy().unwrap();
    assert_eq!(a.uid_claims() + b.uid_claims(), 0);
}
