//! Starting a process: identity, environment, working directory, pipes or a PTY, output
//! readers and the waiter that reaps it and publishes its end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bulkhead_spawn::{ChildSetup, Identity, WinSize};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

use super::error::ProcessError;
use super::messages::{DataEvent, EndEvent, ProcessConfig, Size};
use super::table::{Ending, InputSink, ProcHandle, Subscription};
use crate::state::SharedState;
use crate::users::User;

/// How long output readers may still run after the process exited (a background grandchild
/// can hold the pipes open forever; its later output is not part of this process).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);

/// Everything needed to start one process.
#[derive(Debug)]
pub struct SpawnSpec {
    /// The request's process config (reported by `List`).
    pub config: ProcessConfig,
    /// Tag.
    pub tag: Option<String>,
    /// PTY size, when a PTY is wanted.
    pub pty: Option<Size>,
    /// Open a stdin pipe.
    pub stdin: bool,
    /// Who runs it.
    pub user: User,
    /// Resolved working directory.
    pub cwd: PathBuf,
    /// Kill the process (group) after this long.
    pub deadline: Option<Duration>,
}

/// The environment of a process: the baseline every starter gives (`bulkhead_spawn::env`:
/// PATH, HOME, USER, LOGNAME, SHELL, LANG, and TERM with a PTY), then the sandbox's
/// variables, then the request's (later wins).
pub fn environment(
    state: &SharedState,
    user: &User,
    pty: bool,
    request: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = bulkhead_spawn::env::baseline(user, &state.config.path_env, pty);
    env.extend(state.settings().env_vars);
    env.extend(request.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Starts the process, registers it and returns its handle plus a subscription that sees all
/// of its output from the first byte.
pub fn spawn(
    state: &SharedState,
    spec: SpawnSpec,
) -> Result<(Arc<ProcHandle>, Subscription), ProcessError> {
    if !spec.cwd.is_dir() {
        return Err(ProcessError::CwdMissing(spec.cwd));
    }
    let env = environment(state, &spec.user, spec.pty.is_some(), &spec.config.envs);
    let mut setup = ChildSetup::new().controlling_tty(spec.pty.is_some());
    if needs_switch(&spec.user) {
        setup = setup.identity(&Identity::from(&spec.user));
    }
    let spawn_err = |source| ProcessError::Spawn {
        cmd: spec.config.cmd.clone(),
        source,
    };

    let pty = match spec.pty {
        Some(size) => Some(open_pty(size).map_err(ProcessError::Pty)?),
        None => None,
    };
    // The command (and with it the parent's copies of the PTY slave) is dropped at the end
    // of this block, so the master sees EOF once the child side closes.
    let mut child = {
        let mut cmd = std::process::Command::new(&spec.config.cmd);
        cmd.args(&spec.config.args)
            .env_clear()
            .envs(&env)
            .current_dir(&spec.cwd);
        match &pty {
            Some((_, slave)) => {
                let fd = |f: &File| f.try_clone().map(Stdio::from).map_err(ProcessError::Pty);
                cmd.stdin(fd(slave)?).stdout(fd(slave)?).stderr(fd(slave)?);
            }
            None => {
                cmd.stdin(if spec.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        setup.install(&mut cmd);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(false);
        cmd.spawn().map_err(spawn_err)?
    };
    let Some(pid) = child.id() else {
        return Err(spawn_err(std::io::Error::other(
            "process exited before its pid was read",
        )));
    };

    // Everything that can fail is done before the process is registered, so a registered
    // process always has a waiter.
    let pty_reader = match &pty {
        Some((m, _)) => match m.try_clone() {
            Ok(r) => Some(r),
            Err(e) => {
                let _ = child.start_kill();
                return Err(ProcessError::Pty(e));
            }
        },
        None => None,
    };
    let master = pty.map(|(m, _slave)| Arc::new(m));
    let input = match (&master, child.stdin.take()) {
        (Some(m), _) => InputSink::Pty(m.clone()),
        (None, Some(stdin)) => InputSink::Pipe(tokio::sync::Mutex::new(Some(stdin))),
        (None, None) => InputSink::None,
    };
    let handle = Arc::new(ProcHandle::new(
        pid,
        spec.config,
        spec.tag,
        input,
        state.config.max_stream_buffer,
    ));
    // Subscribe before any reader starts: the caller must not miss the first bytes.
    let rx = handle.subscribe();
    state.processes.insert(handle.clone());

    let mut readers: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(read_pipe(
            out,
            handle.clone(),
            DataEvent::Stdout,
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(read_pipe(
            err,
            handle.clone(),
            DataEvent::Stderr,
        )));
    }
    if let Some(r) = pty_reader {
        readers.push(read_pty(r, handle.clone()));
    }
    tracing::info!(pid, user = %spec.user.name, "process started");

    let state = state.clone();
    let waiter_handle = handle.clone();
    tokio::spawn(async move {
        let (status, timed_out) = match spec.deadline {
            Some(d) => tokio::select! {
                s = child.wait() => (s, false),
                () = tokio::time::sleep(d) => {
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    (child.wait().await, true)
                }
            },
            None => (child.wait().await, false),
        };
        let drain = futures_util::future::join_all(readers.iter_mut());
        if tokio::time::timeout(DRAIN_AFTER_EXIT, drain).await.is_err() {
            readers.iter().for_each(|r| r.abort());
        }
        let ending = match status {
            _ if timed_out => Ending::DeadlineExceeded,
            Ok(status) => Ending::Exited(end_event(status)),
            Err(e) => Ending::Exited(EndEvent {
                exit_code: -1,
                exited: false,
                status: "unknown".to_owned(),
                error: Some(format!("waiting for process: {e}")),
            }),
        };
        tracing::info!(pid, ?ending, "process ended");
        waiter_handle.finish(ending);
        state.processes.mark_finished(pid);
    });
    Ok((handle, rx))
}

fn needs_switch(user: &User) -> bool {
    let euid = nix::unistd::geteuid().as_raw();
    euid == 0 || euid != user.uid
}

/// Opens a PTY pair (both ends close-on-exec) with the given size: (master, slave).
fn open_pty(size: Size) -> std::io::Result<(File, File)> {
    let pty = bulkhead_spawn::pty::open(win_size(size))?;
    Ok((File::from(pty.master), File::from(pty.slave)))
}

/// The protocol's size as a window size (0 is treated as 1; values are clamped to u16).
fn win_size(size: Size) -> WinSize {
    WinSize {
        cols: WinSize::dimension(size.cols),
        rows: WinSize::dimension(size.rows),
    }
}

/// Sets the PTY size (0 is treated as 1; values are clamped to u16).
pub fn resize(master: &File, size: Size) -> std::io::Result<()> {
    bulkhead_spawn::pty::set_size(master.as_fd(), win_size(size))
}

async fn read_pipe<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    handle: Arc<ProcHandle>,
    wrap: fn(Vec<u8>) -> DataEvent,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => handle.publish(wrap(buf[..n].to_vec())),
        }
    }
}

/// Reads the PTY master on a thread (blocking reads; EIO means every slave fd is closed).
fn read_pty(mut file: File, handle: Arc<ProcHandle>) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => handle.publish(DataEvent::Pty(buf[..n].to_vec())),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
}

/// The end event for an exit status, worded as Go's `ProcessState.String()`.
pub fn end_event(status: ExitStatus) -> EndEvent {
    if let Some(code) = status.code() {
        let text = format!("exit status {code}");
        return EndEvent {
            exit_code: code,
            exited: true,
            error: (code != 0).then(|| text.clone()),
            status: text,
        };
    }
    let sig = status.signal().unwrap_or(0);
    let mut text = format!("signal: {}", signal_name(sig));
    if status.core_dumped() {
        text.push_str(" (core dumped)");
    }
    EndEvent {
        exit_code: -1,
        exited: false,
        error: Some(text.clone()),
        status: text,
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "hangup".into(),
        libc::SIGINT => "interrupt".into(),
        libc::SIGQUIT => "quit".into(),
        libc::SIGABRT => "aborted".into(),
        libc::SIGKILL => "killed".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        libc::SIGPIPE => "broken pipe".into(),
        libc::SIGTERM => "terminated".into(),
        libc::SIGUSR1 => "user defined signal 1".into(),
        libc::SIGUSR2 => "user defined signal 2".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_events_match_go_wording() {
        let ok = end_event(ExitStatus::from_raw(0));
        assert_eq!(
            (ok.exit_code, ok.exited, ok.status.as_str(), ok.error),
            (0, true, "exit status 0", None)
        );
        let three = end_event(ExitStatus::from_raw(3 << 8));
        assert_eq!(
            (three.exit_code, three.error.as_deref()),
            (3, Some("exit status 3"))
        );
        let killed = end_event(ExitStatus::from_raw(libc::SIGKILL));
        assert_eq!(
            (killed.exit_code, killed.exited, killed.status.as_str()),
            (-1, false, "signal: killed")
        );
    }
}
