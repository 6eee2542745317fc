//! [`S3Mount`]: check access, mount, and run the FUSE session on its own threads;
//! [`MountHandle`]: unmount it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, MountOption, SessionACL};

use crate::client::S3Client;
use crate::config::MountConfig;
use crate::error::MountError;
use crate::fs::S3Fs;
use crate::fuse::FuseAdapter;
use crate::journal::Journal;

/// Mounts buckets.
#[derive(Debug)]
pub struct S3Mount;

/// A live mount. Dropping it unmounts (lazily if files are still open); prefer
/// [`MountHandle::unmount`] to see errors.
#[derive(Debug)]
pub struct MountHandle {
    session: Option<BackgroundSession>,
    runtime: Option<tokio::runtime::Runtime>,
    mountpoint: PathBuf,
}

impl S3Mount {
    /// Validates `config`, checks that the bucket can be listed with the credentials (so
    /// wrong credentials, a missing bucket or an unreachable endpoint fail here, not at the
    /// first read), mounts at `mountpoint` and starts serving on `config.fuse_threads`
    /// threads plus an I/O runtime of its own.
    ///
    /// Blocking: call it from a plain thread (or `spawn_blocking`), never from inside an
    /// async task. Must not be called between `fork` and `exec` of a threaded process.
    ///
    /// # Errors
    /// [`MountError::Config`], [`MountError::Bucket`] (with the S3 cause: access denied,
    /// no such bucket, unreachable), [`MountError::Fuse`] when the kernel mount fails.
    pub fn mount(config: MountConfig, mountpoint: &Path) -> Result<MountHandle, MountError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3fs-io")
            .enable_all()
            .build()
            .map_err(MountError::Runtime)?;
        let endpoint = config.endpoint_url();
        let client = {
            // reqwest needs a runtime context to build its connection pool's timers.
            let _guard = runtime.enter();
            S3Client::new(
                &endpoint,
                &config.bucket,
                &config.region,
                config.credentials.clone(),
                config.request_timeout,
            )
            .map_err(MountError::Client)?
            .with_operation_timeout(config.operation_timeout)
        };
        let prefix = config.key_prefix();
        runtime
            .block_on(client.list_page(&prefix, Some("/"), None, 1))
            .map_err(|source| MountError::Bucket {
                bucket: config.bucket.clone(),
                endpoint: endpoint.clone(),
                source,
            })?;
        let journal = if config.read_only {
            None
        } else {
            let dir = config.state_dir.clone().unwrap_or_else(|| {
                std::env::temp_dir()
                    .join(format!("bulkhead-s3fs-{}", nix::unistd::geteuid().as_raw()))
            });
            let scope = (endpoint.as_str(), config.bucket.as_str(), prefix.as_str());
            match runtime.block_on(Journal::open(&dir, scope, &client)) {
                Ok(j) => Some(j),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "no upload journal: uploads of a killed mount will not be aborted");
                    None
                }
            }
        };
        let mut options = vec![
            MountOption::FSName(format!("bulkhead-s3:{}", config.bucket)),
            MountOption::Subtype("bulkhead-s3".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoAtime,
        ];
        if config.read_only {
            options.push(MountOption::RO);
        }
        let mut fuse_config = fuser::Config::default();
        fuse_config.mount_options = options;
        fuse_config.acl = if config.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        fuse_config.n_threads = Some(config.fuse_threads);
        fuse_config.clone_fd = true;
        let bucket = config.bucket.clone();
        let fs = Arc::new(S3Fs::new(client, config, journal));
        S3Fs::spawn_dir_times_flusher(&fs, runtime.handle());
        let adapter = FuseAdapter::new(fs, runtime.handle().clone());
        let session = fuser::spawn_mount(adapter, mountpoint, &fuse_config).map_err(|source| {
            MountError::Fuse {
                mountpoint: mountpoint.to_path_buf(),
                source,
            }
        })?;
        tracing::info!(%bucket, prefix = %prefix, mountpoint = %mountpoint.display(), "bucket mounted");
        raise_kernel_readahead(mountpoint);
        Ok(MountHandle {
            session: Some(session),
            runtime: Some(runtime),
            mountpoint: mountpoint.to_path_buf(),
        })
    }
}

/// Readahead the kernel does on the mount, in KiB: a FUSE read request carries at most 1 MiB.
const KERNEL_READAHEAD_KIB: u32 = 1024;

/// Raises the kernel's readahead on the new mount to [`KERNEL_READAHEAD_KIB`].
///
/// A FUSE mount starts with the readahead of a block device (128 KiB), and the kernel clamps
/// the `max_readahead` asked for at INIT to it, so a sequential reader sends a request every
/// 128 KiB. The mount's backing device (`/sys/class/bdi/MAJ:MIN`) takes a larger value
/// after the mount; only root may write it, so anyone else keeps 128 KiB (logged).
fn raise_kernel_readahead(mountpoint: &Path) {
    let Some(dev) = mount_device(mountpoint) else {
        tracing::debug!(mountpoint = %mountpoint.display(), "mount not found in mountinfo: kernel readahead left as it is");
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&path, format!("{KERNEL_READAHEAD_KIB}\n")) {
        Ok(()) => tracing::debug!(path, kib = KERNEL_READAHEAD_KIB, "kernel readahead raised"),
        Err(e) => {
            tracing::info!(path, error = %e, "kernel readahead stays at its default (128 KiB): reads come in smaller requests")
        }
    }
}

/// The `MAJ:MIN` of the last mount at `mountpoint` in this process's mountinfo.
fn mount_device(mountpoint: &Path) -> Option<String> {
    let want = std::fs::canonicalize(mountpoint).ok()?;
    let want = want.to_str()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let dev = fields.nth(2)?;
        let point = fields.nth(1)?;
        (unescape_mountinfo(point) == want).then(|| dev.to_string())
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl MountHandle {
    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the FUSE session ended (unmounted from outside, e.g. `umount`).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts and waits for the session threads. When files are still open (`EBUSY`) the
    /// mount is detached lazily instead: it disappears from the namespace at once and the
    /// kernel drops it when the last file closes.
    ///
    /// # Errors
    /// [`MountError::Unmount`] when neither a normal nor a lazy unmount worked.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let result = if session.guard.is_finished() {
            session.join().map(drop)
        } else {
            match nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::empty()) {
                Ok(()) => session.join().map(drop),
                Err(nix::errno::Errno::EINVAL) if session.guard.is_finished() => Ok(()),
                Err(_) => {
                    // Busy: detach now, and let the session thread end when the kernel
                    // lets go of the connection.
                    let r = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)
                        .map_err(std::io::Error::from);
                    drop(session);
                    r
                }
            }
        };
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so it is safe even when called from async code.
            rt.shutdown_background();
        }
        tracing::info!(mountpoint = %self.mountpoint.display(), "bucket unmounted");
        result.map_err(|source| MountError::Unmount {
            mountpoint: self.mountpoint.clone(),
            source,
        })
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!(error = %crate::fuse::chain(&e), "unmount on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/x\\134y"), "/x\\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/bad\\9"), "/bad\\9");
    }

    #[test]
    fn the_root_mount_has_a_device() {
        assert!(mount_device(Path::new("/")).is_some_and(|d| d.contains(':')));
    }
}
