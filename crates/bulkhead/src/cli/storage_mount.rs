//! The storage bucket of `bulkhead serve`, mounted by a `bulkhead mount` process of its own.
//!
//! Why a separate process: the FUSE daemon must outlive the server. Sandboxes kept across a
//! restart (`--keep-sandboxes`, or a crash) hold bind mounts of it; had it lived in the
//! server, their `/opt/sentient` would be a dead mount after any restart. The next start
//! finds the live mount (same configuration, recorded beside it) and reuses it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use bulkhead_store::DataDir;
use serde::{Deserialize, Serialize};

use super::mount::ReadStrategyArg;
use super::serve::Args;

/// What the running mount was started with; a change means a new mount.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    region: String,
    read_only: bool,
    /// `--attributes` of the mount (a mount recorded without it predates uniform ones).
    attributes: String,
    /// `--read-strategy` of the mount (one recorded without it read in ranges).
    #[serde(default = "ranged")]
    read_strategy: String,
}

fn ranged() -> String {
    "ranged".into()
}

fn is_live_fuse_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    let listed = info.lines().any(|l| {
        let mut f = l.split(' ');
        let mp = f.nth(4).unwrap_or("");
        let fstype = l
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        mp == target && fstype.starts_with("fuse")
    });
    // A mount whose daemon died answers ENOTCONN.
    listed && std::fs::read_dir(path).is_ok()
}

/// One bucket mount: what `bulkhead mount` is started with.
pub struct MountSpec<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Key prefix inside it ("" = the whole bucket).
    pub prefix: &'a str,
    /// An S3-compatible endpoint.
    pub endpoint: Option<&'a str>,
    /// Region.
    pub region: &'a str,
    /// Mount read-only.
    pub read_only: bool,
    /// A profile of the shared credentials file.
    pub profile: Option<&'a str>,
    /// A credentials file (shared credentials format).
    pub credentials_file: Option<&'a Path>,
    /// `--read-strategy` of the mount.
    pub read_strategy: ReadStrategyArg,
}

/// Makes sure the bucket is mounted at `<data-dir>/mounts/<bucket>` by a live daemon with
/// this configuration, starting one when needed. Returns the mount point.
pub fn ensure(args: &Args, layout: &DataDir, bucket: &str) -> anyhow::Result<PathBuf> {
    let spec = MountSpec {
        bucket,
        prefix: &args.storage_prefix,
        endpoint: args.storage_endpoint.as_deref(),
        region: &args.storage_region,
        read_only: args.storage_read_only,
        profile: args.storage_profile.as_deref(),
        credentials_file: args.storage_credentials_file.as_deref(),
        read_strategy: args.storage_read_strategy,
    };
    ensure_named(layout, bucket, &spec)
}

/// [`ensure`] for any bucket, mounted at `<data-dir>/mounts/<name>` (a template's storage
/// is `template-<id>`).
pub fn ensure_named(layout: &DataDir, name: &str, spec: &MountSpec<'_>) -> anyhow::Result<PathBuf> {
    let bucket = spec.bucket;
    let mountpoint = layout.mounts().join(name);
    let record_path = layout.mounts().join(format!("{name}.json"));
    let wanted = Recorded {
        bucket: bucket.to_string(),
        prefix: spec.prefix.to_string(),
        endpoint: spec.endpoint.map(str::to_string),
        region: spec.region.to_string(),
        read_only: spec.read_only,
        attributes: "uniform".into(),
        read_strategy: spec.read_strategy.name().into(),
    };
    std::fs::create_dir_all(&mountpoint)
        .with_context(|| format!("creating {}", mountpoint.display()))?;
    if is_live_fuse_mount(&mountpoint) {
        let recorded: Option<Recorded> = std::fs::read(&record_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if recorded.as_ref() == Some(&wanted) {
            tracing::info!(bucket, mountpoint = %mountpoint.display(), "reusing the running storage mount");
            return Ok(mountpoint);
        }
        tracing::warn!(
            bucket,
            "the storage configuration changed: remounting (kept sandboxes keep the old mount)"
        );
    }
    // A dead mount (its daemon was killed) or another configuration: detach it first.
    let _ = nix::mount::umount2(&mountpoint, nix::mount::MntFlags::MNT_DETACH);
    let target = if spec.prefix.is_empty() {
        bucket.to_string()
    } else {
        format!("{bucket}:{}", spec.prefix)
    };
    let exe = std::env::current_exe().context("locating the bulkhead binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("mount").arg(&target).arg(&mountpoint);
    // Sandboxes run as their own host uids: like the seed's goofys mount, every file is open
    // to them (the bucket holds nothing but their shared files). Uniform attributes: no
    // per-file owner to keep between sandboxes of different uids, and listings of busy
    // directories cost no request per entry.
    cmd.args([
        "--attributes",
        "uniform",
        "--dir-mode",
        "0777",
        "--file-mode",
        "0666",
        "--uid",
        "0",
        "--gid",
        "0",
        "-o",
        "allow_other",
    ]);
    cmd.args(["--region", spec.region]);
    cmd.args(["--read-strategy", spec.read_strategy.name()]);
    cmd.arg("--log-file")
        .arg(layout.mounts().join(format!("{name}.log")));
    cmd.arg("--stats-file").arg(layout.mounts().join(format!(
        "{name}{}",
        bulkhead_server::prometheus::MOUNT_STATS_SUFFIX
    )));
    if let Some(e) = spec.endpoint {
        cmd.args(["--endpoint", e]);
    }
    if spec.read_only {
        cmd.arg("--read-only");
    }
    if let Some(p) = spec.profile {
        cmd.args(["--profile", p]);
    }
    if let Some(f) = spec.credentials_file {
        cmd.arg("--credentials-file").arg(f);
    }
    // Background mode returns once the mount is up, or with the reason it is not.
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("starting bulkhead mount")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "mounting bucket {bucket} failed: {}",
            err.trim().trim_start_matches("bulkhead: ")
        );
    }
    std::fs::write(&record_path, serde_json::to_vec(&wanted)?)
        .with_context(|| format!("writing {}", record_path.display()))?;
    tracing::info!(bucket, mountpoint = %mountpoint.display(), "storage bucket mounted");
    Ok(mountpoint)
}

/// Unmounts the bucket at a clean stop; its daemon exits with it.
pub fn release(mountpoint: &Path) {
    if let Err(e) = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
        tracing::warn!(error = %e, mountpoint = %mountpoint.display(), "unmounting the storage bucket failed");
    }
}

/// Unmounts every template's bucket (`<mounts>/template-*`) at a clean stop; their daemons
/// exit with them. The next start mounts them again.
pub fn release_templates(mounts: &Path) {
    let Ok(rd) = std::fs::read_dir(mounts) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        // A dead mount (its daemon killed) is detached too; a plain directory refuses.
        if e.file_name().to_string_lossy().starts_with("template-") && !p.is_file() {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Template storage for the server: each template's bucket mounted by a `bulkhead mount`
/// process of its own at `<data-dir>/mounts/template-<id>`, with the credentials file the
/// server keeps for the template (0600, in the template's directory).
pub struct TemplateMounts(pub DataDir);

impl bulkhead_server::templates::StorageMounter for TemplateMounts {
    fn mountpoint(&self, template_id: &str) -> PathBuf {
        self.0.mounts().join(format!("template-{template_id}"))
    }

    fn mount(
        &self,
        template_id: &str,
        s: &bulkhead_server::templates::TemplateStorage,
        credentials_file: Option<&Path>,
    ) -> Result<PathBuf, String> {
        let spec = MountSpec {
            bucket: &s.bucket,
            prefix: s.prefix.as_deref().unwrap_or(""),
            endpoint: s.endpoint.as_deref(),
            region: s.region.as_deref().unwrap_or("us-east-1"),
            read_only: s.read_only,
            profile: None,
            credentials_file,
            read_strategy: ReadStrategyArg::Ranged,
        };
        std::fs::create_dir_all(self.0.mounts()).map_err(|e| e.to_string())?;
        ensure_named(&self.0, &format!("template-{template_id}"), &spec)
            .map_err(|e| format!("{e:#}"))
    }
}
