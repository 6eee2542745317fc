//! `bulkhead run`: a one-shot sandbox, like `docker run --rm`.

use std::io::{Read, Write};
use std::path::PathBuf;

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
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// Maximum number of processes and threads.
    #[arg(long, value_name = "N")]
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
    let sandbox = runtime
        .create(SandboxSpec {
            id: spec::new_id(),
            layers,
            limits,
            binds: Vec::new(),
            writable_dir: None,
        })
        .context("creating the sandbox")?;
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
            let code = pump(process, signals, args.interactive);
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

/// Copies output to this process's stdout/stderr (and stdin in), forwards signals, and
/// returns the command's exit code.
fn pump(mut process: bulkhead_runtime::Process, signals: SigSet, interactive: bool) -> u8 {
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
    {
        let process = process.clone();
        std::thread::spawn(move || {
            while let Ok(sig) = signals.wait() {
                let _ = process.signal(sig as i32, true);
            }
        });
    }
    let status = process.wait();
    for t in threads {
        let _ = t.join();
    }
    match status {
        Ok(s) => s.shell_code().clamp(0, 255) as u8,
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
