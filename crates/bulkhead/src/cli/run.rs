//! `bulkhead run`: a one-shot sandbox, like `docker run --rm`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::Context;
use bulkhead_runtime::{
    ExecError, ExecSpec, Limits, Runtime, RuntimeConfig, SandboxSpec, Stdio, WinSize, limits, spec,
};
use clap::Args as ClapArgs;
use nix::sys::signal::{SigSet, Signal};

/// Exit code when Bulkhead itself fails (bad flag value, sandbox did not start), as
/// `docker run` does.
const EXIT_RUNTIME_FAILED: u8 = 125;

/// Run one command in a fresh sandbox and remove the sandbox afterwards.
///
/// The exit code is the command's (128 + N when killed by signal N), 127 when the command is
/// not found in the sandbox, 126 when it is not executable, 125 when the sandbox could not be
/// started.
#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Example:\n  bulkhead run --rootfs /var/cache/bulkhead/rootfs/debian --memory 512M -- python3 -c 'print(1)'"
)]
pub struct Args {
    /// Root filesystem directory (read-only; writes go to a private layer). Repeat to stack
    /// layers, bottom first.
    #[arg(long, required = true, value_name = "DIR")]
    rootfs: Vec<PathBuf>,
    /// Memory limit, e.g. 512M or 2G.
    #[arg(long, value_name = "SIZE", default_value = "1G")]
    memory: Option<String>,
    /// Maximum number of processes and threads.
    #[arg(long, value_name = "N", default_value = "1024")]
    pids: Option<String>,
    /// CPU quota in cores, e.g. 1 or 0.5.
    #[arg(long, value_name = "CPUS")]
    cpus: Option<String>,
    /// Size of the writable layer, e.g. 1G.
    #[arg(long, value_name = "SIZE")]
    disk: Option<String>,
    /// Environment variable for the command (repeatable). Nothing is inherited from the host.
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Working directory inside the sandbox.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User inside the sandbox: a name from its /etc/passwd, a uid, or uid:gid.
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Forward this terminal's stdin to the command.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give the command a pseudo-terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// State directory for the sandbox's control files.
    #[arg(
        long,
        env = "BULKHEAD_DATA_DIR",
        default_value = "/var/lib/bulkhead",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

fn limits_from(args: &Args) -> anyhow::Result<Limits> {
    Ok(Limits {
        memory_bytes: args
            .memory
            .as_deref()
            .map(|m| limits::parse_size("memory", m))
            .transpose()?,
        pids: args
            .pids
            .as_deref()
            .map(|p| limits::parse_count("pids", p))
            .transpose()?,
        cpu_millis: args.cpus.as_deref().map(limits::parse_cpus).transpose()?,
        disk_bytes: args
            .disk
            .as_deref()
            .map(|d| limits::parse_size("disk", d))
            .transpose()?,
        open_files: None,
        // `bulkhead run` keeps no_new_privs: a one-off command has no sudo to serve.
        allow_setuid: false,
    })
}

fn env_from(args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    args.env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("invalid environment variable {kv:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<u8> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            Ok(EXIT_RUNTIME_FAILED)
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<u8> {
    let limits = limits_from(&args)?;
    let env = env_from(&args)?;
    for dir in &args.rootfs {
        anyhow::ensure!(
            dir.is_dir(),
            "root filesystem {} does not exist or is not a directory",
            dir.display()
        );
    }
    let layers = args
        .rootfs
        .iter()
        .map(|d| {
            d.canonicalize()
                .with_context(|| format!("resolving {}", d.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Signals are handled by a dedicated thread (and forwarded to the command), so they must
    // be blocked before any thread exists.
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        signals.add(s);
    }
    signals.thread_block().context("blocking signals")?;

    let exe = std::env::current_exe().context("locating the bulkhead binary")?;
    let runtime =
        Runtime::new(RuntimeConfig::new(&args.data_dir, exe)).context("starting the runtime")?;
    remove_orphans(&runtime);
    let sandbox = runtime
        .create(SandboxSpec {
            id: spec::new_id(),
            layers,
            limits,
            binds: Vec::new(),
            writable_dir: None,
        })
        .context("creating the sandbox")?;
    // Marks the sandbox as this process's, so that the next run removes it should this one
    // be killed (SIGKILL gives no chance to clean up).
    if let Err(e) = std::fs::write(
        sandbox.state_dir().join(OWNER_FILE),
        owner_mark(std::process::id()),
    ) {
        let _ = sandbox.destroy();
        return Err(anyhow::Error::new(e).context("marking the sandbox as this run's"));
    }
    let sandbox = std::sync::Arc::new(sandbox);
    let stdio = if args.tty {
        Stdio::Pty {
            size: terminal_size(),
        }
    } else {
        Stdio::Pipes {
            stdin: args.interactive,
        }
    };
    let exec = ExecSpec {
        argv: args.command.clone(),
        env,
        cwd: args.workdir.clone(),
        user: args.user.clone(),
        stdio,
        detach: false,
    };
    let result = match sandbox.exec(exec) {
        Ok(process) => {
            // An interactive terminal session: our terminal goes raw so that keys reach the
            // sandbox's terminal unchanged (and echo once), and is restored afterwards.
            let raw = (args.tty && args.interactive)
                .then(RawTerminal::enter)
                .flatten();
            let code = pump(process, signals, args.interactive, &sandbox);
            drop(raw);
            Ok(code)
        }
        Err(ExecError::Failed { kind, message }) => {
            eprintln!("bulkhead: {message}");
            Ok(kind.exit_code() as u8)
        }
        Err(e) => Err(anyhow::Error::new(e).context("starting the command")),
    };
    sandbox.destroy().context("removing the sandbox")?;
    result
}

/// The file in a sandbox's state directory naming the `bulkhead run` that owns it.
const OWNER_FILE: &str = "run-owner";

/// After the command exits, how long its output may take to drain before the sandbox is
/// removed (a background child holding stdout would otherwise keep `run` waiting forever).
const DRAIN: Duration = Duration::from_millis(500);

/// After SIGTERM, SIGHUP or SIGQUIT is forwarded, how long the command has to exit before
/// the sandbox is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// `pid` and its start time (so that a reused pid is not taken for the owner).
fn owner_mark(pid: u32) -> String {
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_string)
}

/// Removes the sandboxes of earlier runs whose process is gone (killed with SIGKILL, say);
/// sandboxes without an owner mark (a server's) are never touched.
fn remove_orphans(runtime: &Runtime) {
    for id in runtime.sandbox_ids_on_disk() {
        let mark = runtime
            .config()
            .state_dir
            .join("sandboxes")
            .join(&id)
            .join(OWNER_FILE);
        let Ok(text) = std::fs::read_to_string(&mark) else {
            continue;
        };
        let alive = text
            .split_once(' ')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| owner_mark(pid) == text);
        if alive {
            continue;
        }
        match runtime.remove_leftover(&id) {
            Ok(()) => {
                eprintln!("bulkhead: removed sandbox {id}, left by an earlier run that was killed")
            }
            Err(e) => eprintln!("bulkhead: could not remove sandbox {id} of an earlier run: {e}"),
        }
    }
}

/// Copies output to this process's stdout/stderr (and stdin in), forwards signals, and
/// returns the command's exit code. A terminating signal that the command does not obey
/// within [`STOP_GRACE`] kills the sandbox; output still held open by background children
/// once the command exited is drained for [`DRAIN`], then left (the sandbox is removed).
fn pump(
    mut process: bulkhead_runtime::Process,
    signals: SigSet,
    interactive: bool,
    sandbox: &std::sync::Arc<bulkhead_runtime::Sandbox>,
) -> u8 {
    let mut threads = Vec::new();
    if let Some(mut out) = process.stdout.take() {
        threads.push(std::thread::spawn(move || {
            copy(&mut out, &mut std::io::stdout())
        }));
    }
    if let Some(mut err) = process.stderr.take() {
        threads.push(std::thread::spawn(move || {
            copy(&mut err, &mut std::io::stderr())
        }));
    }
    if let Some(pty) = process.pty.take() {
        if interactive && let Ok(mut w) = pty.try_clone() {
            std::thread::spawn(move || copy(&mut std::io::stdin(), &mut w));
        }
        let mut r = pty;
        threads.push(std::thread::spawn(move || {
            copy(&mut r, &mut std::io::stdout())
        }));
    }
    if let Some(mut stdin) = process.stdin.take() {
        // Detached: it ends when our stdin ends or the process exits.
        std::thread::spawn(move || copy(&mut std::io::stdin(), &mut stdin));
    }
    let process = std::sync::Arc::new(process);
    // The signal that made us kill the sandbox, for the exit status (128 + it).
    let killed_by = std::sync::Arc::new(AtomicI32::new(0));
    {
        let process = process.clone();
        let sandbox = sandbox.clone();
        let killed_by = killed_by.clone();
        std::thread::spawn(move || {
            while let Ok(sig) = signals.wait() {
                let _ = process.signal(sig as i32, true);
                if sig != Signal::SIGINT {
                    let sandbox = sandbox.clone();
                    let killed_by = killed_by.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(STOP_GRACE);
                        killed_by.store(sig as i32, Ordering::SeqCst);
                        sandbox.kill();
                    });
                }
            }
        });
    }
    let status = process.wait();
    let deadline = std::time::Instant::now() + DRAIN;
    for t in threads {
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
    match status {
        Ok(s) => s.shell_code().clamp(0, 255) as u8,
        Err(_) if killed_by.load(Ordering::SeqCst) != 0 => {
            (128 + killed_by.load(Ordering::SeqCst)).clamp(0, 255) as u8
        }
        Err(e) => {
            eprintln!("bulkhead: waiting for the command: {e}");
            EXIT_RUNTIME_FAILED
        }
    }
}

fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
                let _ = to.flush();
            }
        }
    }
}

/// The size of the terminal on our stdout, or 80×24 when it is not a terminal.
fn terminal_size() -> WinSize {
    use std::os::fd::AsFd;
    match bulkhead_spawn::pty::size(std::io::stdout().as_fd()) {
        Ok(size) if size.rows > 0 => size,
        _ => WinSize::DEFAULT,
    }
}

/// This terminal in raw mode until dropped.
struct RawTerminal(nix::sys::termios::Termios);

impl RawTerminal {
    fn enter() -> Option<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}
