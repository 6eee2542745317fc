//! `bulkhead mount BUCKET[:PREFIX] MOUNTPOINT`: mount a bucket with the S3 filesystem,
//! standalone (goofys-like).
//!
//! Credentials, in order: `--credentials-file` (with `--profile`), then `--profile` in the
//! shared credentials file, then `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (+`AWS_SESSION_TOKEN`), then the `default` profile of the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`), else anonymous requests.
//!
//! Without `-f` the process forks before any thread or runtime exists; the parent returns
//! only once the child reports that the mount is up (or why it is not), through a pipe.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bulkhead_s3fs::{Attributes, Credentials, MountConfig, MountHandle, ReadStrategy, S3Mount};
use clap::Args as ClapArgs;

/// Mount an S3 bucket (or a prefix of it) as a filesystem.
///
/// Wrong credentials, a missing bucket or an unreachable endpoint fail here, before
/// anything is mounted. Files are uploaded when closed: close() and fsync() return only once
/// the upload is complete, and return its error if it failed. Unmount with `umount
/// MOUNTPOINT` (or Ctrl-C / SIGTERM when running with -f).
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Wrong credentials, a missing bucket or an unreachable endpoint fail here, before anything is
mounted. Files are uploaded when closed: close() and fsync() return only once the upload is
complete, and return its error if it failed. Unmount with `umount MOUNTPOINT` (or Ctrl-C /
SIGTERM with -f).

ATTRIBUTES: with --attributes stored (the default), mode, owner and times are kept per object
as x-amz-meta-* (s3fs-fuse's format); a listing fetches them with up to 32 HEADs in flight
(`ls -l` of 1,000 files costs one listing and 1,000 concurrent HEADs). With --attributes
uniform, every entry shows --file-mode/--dir-mode, --uid/--gid and Last-Modified (as goofys
and mountpoint-s3 do): a listing costs no request per entry, objects are written without
metadata, chmod/chown to other values fail with EPERM, utimes change nothing, and symlinks,
fifos and device nodes are refused with EPERM.

CACHING: sizes, times and attributes are trusted for --stat-cache-ttl and file / directory /
absent for --type-cache-ttl, counted from when the whole listing or the lookup that told
them was done; the kernel caches attributes and names for --stat-cache-ttl. Changes made
through this mount show at once; changes by other clients within the TTLs. Stored
attributes are also remembered by object version (ETag, size, Last-Modified): a directory
listed again after the TTLs needs a HEAD only for the objects that changed.

READS: a sequential reader gets 8 MiB parts fetched ahead of it by concurrent ranged GETs,
a window that starts at one part and doubles up to --readahead; all readers' parts ahead
share --read-memory. Other reads are exact ranged GETs. On a server whose every ranged GET
reads the whole object (moto, LocalStack), --read-strategy streamed reads with one GET per
reader instead. Every request (retries included) fails with EIO after
--operation-timeout.

CREDENTIALS, first found: --credentials-file (profile --profile or default); --profile in
$AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials; AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
(+ AWS_SESSION_TOKEN); the default profile of the shared file; else anonymous requests.

EXAMPLES:
  bulkhead mount my-bucket /mnt/bucket
  bulkhead mount my-bucket:team/a /mnt/a --endpoint http://127.0.0.1:9000 \\
      -o allow_other --dir-mode 0777 --file-mode 0666 -f")]
pub struct Args {
    /// The bucket, optionally with a key prefix that becomes the mount's root.
    #[arg(value_name = "BUCKET[:PREFIX]")]
    pub target: String,
    /// An existing, empty directory.
    pub mountpoint: PathBuf,
    /// S3 endpoint URL (default: AWS for --region).
    #[arg(long, env = "AWS_ENDPOINT_URL", help_heading = "S3")]
    pub endpoint: Option<String>,
    /// Signing region.
    #[arg(
        long,
        env = "AWS_REGION",
        default_value = "us-east-1",
        help_heading = "S3"
    )]
    pub region: String,
    /// Profile in the credentials file.
    #[arg(long, env = "AWS_PROFILE", help_heading = "Credentials")]
    pub profile: Option<String>,
    /// A credentials file in the AWS shared format, read instead of the environment.
    #[arg(long, value_name = "FILE", help_heading = "Credentials")]
    pub credentials_file: Option<PathBuf>,
    /// How long file sizes and times are cached (e.g. 1s, 500ms, 1m).
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "Caching")]
    pub stat_cache_ttl: Duration,
    /// How long "is a file / is a directory / does not exist" is cached.
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "Caching")]
    pub type_cache_ttl: Duration,
    /// Where mode, owner and times come from: stored per object, or uniform (the four
    /// options below for every entry; no request per entry in listings).
    #[arg(long, value_enum, default_value = "stored", help_heading = "Ownership")]
    pub attributes: AttributesArg,
    /// Permission bits of directories without stored ones (every directory when uniform).
    #[arg(long, default_value = "0755", value_parser = parse_mode, help_heading = "Ownership")]
    pub dir_mode: u16,
    /// Permission bits of files without stored ones (every file when uniform).
    #[arg(long, default_value = "0644", value_parser = parse_mode, help_heading = "Ownership")]
    pub file_mode: u16,
    /// Owner of entries without a stored one (default: the user running the command).
    #[arg(long, help_heading = "Ownership")]
    pub uid: Option<u32>,
    /// Group of entries without a stored one (default: the group running the command).
    #[arg(long, help_heading = "Ownership")]
    pub gid: Option<u32>,
    /// Mount options, comma-separated: allow_other, ro, rw.
    #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
    /// Refuse every change with EROFS.
    #[arg(long)]
    pub read_only: bool,
    /// The longest one S3 request may take, retries included, before the operation fails
    /// with EIO (server-side copies and multipart completions: ten times this). A server
    /// that hangs fails calls after this long instead of holding them.
    #[arg(long, default_value = "30s", value_parser = parse_duration, help_heading = "Requests")]
    pub operation_timeout: Duration,
    /// How far ahead of a sequential reader parts are fetched (concurrent 8 MiB ranged
    /// GETs; the window starts at one part and doubles up to this).
    #[arg(long, default_value = "64MiB", value_parser = parse_size, help_heading = "Requests")]
    pub readahead: usize,
    /// How a sequential reader's data is fetched: ranged (concurrent 8 MiB ranged GETs ahead
    /// of it, for S3 and every server whose ranged GET reads only its range) or streamed (one
    /// GET per reader, for servers whose every ranged GET reads the whole object: moto,
    /// LocalStack).
    #[arg(long, value_enum, default_value = "ranged", help_heading = "Requests")]
    pub read_strategy: ReadStrategyArg,
    /// Memory all prefetched parts of the mount may hold together.
    #[arg(long, default_value = "128MiB", value_parser = parse_size, help_heading = "Requests")]
    pub read_memory: usize,
    /// Stay in the foreground (logs on stderr) instead of daemonizing.
    #[arg(short, long)]
    pub foreground: bool,
    /// In the background, append logs to this file (default: discarded).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Write the mount's counters (S3 requests, retries, failures, bytes each way) to this
    /// JSON file every 2 s and at the end (`bulkhead serve` reads it for `/metrics`).
    #[arg(long, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,
}

/// `--read-strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadStrategyArg {
    /// Concurrent ranged GETs of 8 MiB parts ahead of the reader.
    Ranged,
    /// One streamed GET per sequential reader.
    Streamed,
}

impl ReadStrategyArg {
    /// The value as `--read-strategy` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ranged => "ranged",
            Self::Streamed => "streamed",
        }
    }
}

/// `--attributes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttributesArg {
    /// Mode, owner and times stored per object (x-amz-meta-*).
    Stored,
    /// The mount's modes and owner for every entry, Last-Modified as its times.
    Uniform,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))
}

/// A size in bytes: a plain number, or with K/KiB, M/MiB, G/GiB (powers of 1024).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, ""), |i| t.split_at(i));
    let n: usize = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" | "k" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?}: use K, M or G (KiB, MiB, GiB)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

fn parse_mode(s: &str) -> Result<u16, String> {
    u16::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid mode {s:?}: expected octal like 0755"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Picks the credentials (see the module docs for the order).
fn credentials(args: &Args) -> anyhow::Result<Option<Credentials>> {
    resolve_credentials(args.profile.as_deref(), args.credentials_file.as_deref())
}

/// The credential search shared with `bulkhead serve --storage-*`: a file given by flag,
/// else a named profile, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the default
/// profile of the shared credentials file; `None` means anonymous requests.
pub(crate) fn resolve_credentials(
    profile_flag: Option<&str>,
    credentials_file: Option<&Path>,
) -> anyhow::Result<Option<Credentials>> {
    let profile = profile_flag.unwrap_or("default").to_string();
    if let Some(file) = credentials_file {
        return Ok(Some(Credentials::from_shared_file(file, &profile)?));
    }
    let shared = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    if profile_flag.is_some() {
        let file = shared.context(
            "--profile given but no credentials file: set HOME or AWS_SHARED_CREDENTIALS_FILE",
        )?;
        return Ok(Some(Credentials::from_shared_file(&file, &profile)?));
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some(Credentials::new(id, secret, env("AWS_SESSION_TOKEN"))));
    }
    if let Some(file) = shared.filter(|f| f.is_file()) {
        return Ok(Some(Credentials::from_shared_file(&file, &profile)?));
    }
    tracing::warn!("no credentials found: sending anonymous requests");
    Ok(None)
}

/// Builds the mount configuration from the arguments and the environment.
fn config(args: &Args) -> anyhow::Result<MountConfig> {
    let (bucket, prefix) = match args.target.split_once(':') {
        Some((b, p)) => (b.to_string(), p.to_string()),
        None => (args.target.clone(), String::new()),
    };
    let mut allow_other = false;
    let mut read_only = args.read_only;
    for opt in args.options.iter().flat_map(|o| o.split(',')) {
        match opt.trim() {
            "allow_other" => allow_other = true,
            "ro" => read_only = true,
            "rw" | "" => {}
            other => bail!("unsupported mount option {other:?} (supported: allow_other, ro, rw)"),
        }
    }
    let config = MountConfig {
        bucket,
        prefix,
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        credentials: credentials(args)?,
        stat_cache_ttl: args.stat_cache_ttl,
        type_cache_ttl: args.type_cache_ttl,
        attributes: match args.attributes {
            AttributesArg::Stored => Attributes::Stored,
            AttributesArg::Uniform => Attributes::Uniform,
        },
        dir_mode: args.dir_mode,
        file_mode: args.file_mode,
        uid: args.uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw()),
        gid: args.gid.unwrap_or_else(|| nix::unistd::getegid().as_raw()),
        allow_other,
        read_only,
        operation_timeout: args.operation_timeout,
        readahead: args.readahead,
        read_memory: args.read_memory,
        read_strategy: match args.read_strategy {
            ReadStrategyArg::Ranged => ReadStrategy::Ranged,
            ReadStrategyArg::Streamed => ReadStrategy::Streamed,
        },
        ..MountConfig::default()
    };
    config.validate().context("invalid mount settings")?;
    Ok(config)
}

/// Runs `bulkhead mount`.
#[allow(unsafe_code)]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let config = config(&args)?;
    // Part buffers are megabytes each and freed from other threads than the ones that
    // allocated them; a fixed mmap threshold hands them back to the kernel on free instead
    // of letting glibc's dynamic threshold park them in per-thread arenas (peak RSS).
    // Fixing it also fixes the trim threshold at 128 KiB, so every freed read piece at the
    // top of a heap went back to the kernel and the next one faulted in again, page by
    // page (a quarter of a sequential read's CPU): keep up to 16 MiB free per heap.
    // SAFETY: mallopt only tunes the allocator; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
    if !args.mountpoint.is_dir() {
        bail!(
            "mountpoint {} is not a directory",
            args.mountpoint.display()
        );
    }
    if args.foreground {
        let mount = S3Mount::mount(config, &args.mountpoint)
            .with_context(|| format!("cannot mount {}", args.target))?;
        return serve(mount, args.stats_file.as_deref());
    }
    let (read_end, write_end) = nix::unistd::pipe().context("cannot create a pipe")?;
    // SAFETY: no thread or runtime exists yet in this process (main dispatches before
    // creating any, and nothing above spawned one), so the child is a full copy that may
    // start its own threads.
    match unsafe { nix::unistd::fork() }.context("cannot fork")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write_end);
            wait_for_child(read_end)
        }
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let code = child(config, &args, write_end);
            std::process::exit(i32::from(code));
        }
    }
}

/// Parent side: the first byte is 0 when mounted; otherwise the rest is the error message.
fn wait_for_child(read_end: OwnedFd) -> anyhow::Result<u8> {
    let mut buf = Vec::new();
    std::fs::File::from(read_end)
        .read_to_end(&mut buf)
        .context("cannot read the mount status")?;
    match buf.split_first() {
        Some((0, _)) => Ok(0),
        Some((_, msg)) => bail!("{}", String::from_utf8_lossy(msg)),
        None => bail!("the mount process exited before mounting"),
    }
}

fn child(config: MountConfig, args: &Args, write_end: OwnedFd) -> u8 {
    let mut status = std::fs::File::from(write_end);
    let _ = nix::unistd::setsid();
    let mount = match S3Mount::mount(config, &args.mountpoint) {
        Ok(m) => m,
        Err(e) => {
            let msg = format!("cannot mount {}: {:#}", args.target, anyhow::Error::from(e));
            let _ = status.write_all(&[1]);
            let _ = status.write_all(msg.as_bytes());
            return 1;
        }
    };
    if let Err(e) = detach_stdio(args.log_file.as_deref()) {
        let _ = status.write_all(&[1]);
        let _ = status.write_all(format!("cannot redirect output: {e:#}").as_bytes());
        return 1;
    }
    let _ = status.write_all(&[0]);
    drop(status);
    match serve(mount, args.stats_file.as_deref()) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "mount ended with an error");
            1
        }
    }
}

/// Points stdin/stdout at /dev/null and stderr at the log file (or /dev/null), so that the
/// caller's terminal or pipe is released.
fn detach_stdio(log_file: Option<&Path>) -> anyhow::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let err = match log_file {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("cannot open log file {}", p.display()))?,
        None => null.try_clone()?,
    };
    nix::unistd::dup2(null.as_raw_fd(), 0)?;
    nix::unistd::dup2(null.as_raw_fd(), 1)?;
    nix::unistd::dup2(err.as_raw_fd(), 2)?;
    Ok(())
}

/// Serves until SIGINT/SIGTERM (then unmounts) or until unmounted from outside, writing
/// the counters to `stats_file` every 2 s.
fn serve(mount: MountHandle, stats_file: Option<&Path>) -> anyhow::Result<u8> {
    let write_stats = || {
        if let Some(p) = stats_file
            && let Err(e) = bulkhead_s3fs::stats::MountStats::now().write(p)
        {
            tracing::debug!(error = %e, path = %p.display(), "the stats file was not written");
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    let signalled = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                _ = term.recv() => return Ok::<bool, std::io::Error>(true),
                _ = int.recv() => return Ok(true),
                _ = tick.tick() => {
                    if mount.is_finished() { return Ok(false) }
                    ticks += 1;
                    if ticks % 10 == 1 { write_stats(); }
                }
            }
        }
    })?;
    if signalled {
        tracing::info!("signal received, unmounting");
    }
    let unmounted = mount.unmount().context("unmount failed");
    write_stats();
    unmounted?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_modes_parse() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("1y").is_err());
        assert_eq!(parse_mode("0777"), Ok(0o777));
        assert!(parse_mode("999").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("12MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
