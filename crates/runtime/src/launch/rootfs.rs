//! The launcher's half of the root filesystem: id maps, idmapped layers, the writable layer,
//! the overlay and `/dev`. Runs in L's private mount namespace as host root, after C has
//! created the sandbox's user namespace and before C creates the others.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Pid, Uid, chown};

use super::plan::LaunchPlan;
use crate::sys::idmap::bind_idmapped_readonly;

/// Host devices bound into every sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Size of `/dev/shm` when no disk limit is given.
const SHM_SIZE: &str = "64m";

fn err<E: std::fmt::Display>(what: String) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Writes the id maps of C's user namespace, then mounts the root filesystem at
/// `<dir>/rootfs` in L's mount namespace.
pub(crate) fn prepare(plan: &LaunchPlan, c: Pid) -> Result<(), String> {
    let map = format!("0 {} {}\n", plan.root_host_id, plan.id_count);
    let proc_dir = PathBuf::from(format!("/proc/{c}"));
    std::fs::write(proc_dir.join("uid_map"), &map).map_err(err("writing uid_map".into()))?;
    std::fs::write(proc_dir.join("gid_map"), &map).map_err(err("writing gid_map".into()))?;
    let userns: OwnedFd = File::open(proc_dir.join("ns/user"))
        .map_err(err("opening the user namespace".into()))?
        .into();
    let root = Ids(plan.root_host_id);
    let dir = &plan.dir;

    // Layers: each one idmapped (host uid 0 → sandbox root) and read-only.
    let mut lowers = Vec::new();
    for (i, layer) in plan.spec.layers.iter().enumerate() {
        let target = dir.join("lower").join(i.to_string());
        std::fs::create_dir_all(&target).map_err(err(format!("creating {}", target.display())))?;
        bind_idmapped_readonly(layer, &target, &userns)
            .map_err(err(format!("idmapping layer {}", layer.display())))?;
        lowers.push(format!("lower/{i}"));
    }
    // The writable layer: a tmpfs sized by the disk limit, owned by sandbox root.
    let rw = dir.join("rw");
    std::fs::create_dir_all(&rw).map_err(err("creating the writable layer".into()))?;
    let size = plan
        .spec
        .limits
        .disk_bytes
        .map(|b| format!(",size={b}"))
        .unwrap_or_default();
    let opts = format!("mode=0755,uid={0},gid={0}{size}", root.0);
    mount(
        Some("tmpfs"),
        &rw,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(err("mounting the writable layer".into()))?;
    for sub in ["upper", "work"] {
        root.mkdir(&rw.join(sub), 0o755)?;
    }
    // The overlay. Paths are relative to `dir` (the option string is limited to one page),
    // and overlay wants the top layer first.
    lowers.reverse();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(err("creating the rootfs mount point".into()))?;
    let opts = format!(
        "lowerdir={},upperdir=rw/upper,workdir=rw/work",
        lowers.join(":")
    );
    std::env::set_current_dir(dir).map_err(err("entering the sandbox directory".into()))?;
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .map_err(err("mounting the overlay root".into()))?;

    // The image is untrusted: a symlink at one of these would point L's mounts at the host.
    for (sub, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("dev", 0o755),
    ] {
        root.ensure_dir(&safe_join(&rootfs, Path::new(sub))?, mode)?;
    }
    mount_dev(&rootfs.join("dev"), root)?;
    for bind in &plan.spec.binds {
        bind_into(&rootfs, &bind.source, &bind.target, bind.read_only, root)?;
    }
    write_etc(&rootfs, &plan.spec.id, root);
    Ok(())
}

/// Host ids of sandbox root, for giving created mount points the right owner.
#[derive(Clone, Copy)]
struct Ids(u32);

impl Ids {
    fn chown(self, path: &Path) -> Result<(), String> {
        chown(
            path,
            Some(Uid::from_raw(self.0)),
            Some(Gid::from_raw(self.0)),
        )
        .map_err(err(format!("chown {}", path.display())))
    }
    fn mkdir(self, path: &Path, mode: u32) -> Result<(), String> {
        std::fs::create_dir(path).map_err(err(format!("mkdir {}", path.display())))?;
        std::fs::set_permissions(path, PermissionsExt::from_mode(mode))
            .map_err(err(format!("chmod {}", path.display())))?;
        self.chown(path)
    }
    /// Creates `path` (owned by sandbox root) unless it exists.
    fn ensure_dir(self, path: &Path, mode: u32) -> Result<(), String> {
        if path.symlink_metadata().is_ok() {
            return Ok(());
        }
        if let Some(parent) = path.parent()
            && parent.symlink_metadata().is_err()
        {
            self.ensure_dir(parent, 0o755)?;
        }
        self.mkdir(path, mode)
    }
    fn ensure_file(self, path: &Path) -> Result<(), String> {
        if path.symlink_metadata().is_ok() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.ensure_dir(parent, 0o755)?;
        }
        File::create(path).map_err(err(format!("creating {}", path.display())))?;
        self.chown(path)
    }
}

fn mount_dev(dev: &Path, root: Ids) -> Result<(), String> {
    let opts = format!("mode=0755,size=65536k,uid={0},gid={0}", root.0);
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some(opts.as_str()),
    )
    .map_err(err("mounting /dev".into()))?;
    for name in DEVICES {
        let target = dev.join(name);
        root.ensure_file(&target)?;
        let source = Path::new("/dev").join(name);
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err(format!("binding /dev/{name}")))?;
    }
    root.mkdir(&dev.join("pts"), 0o755)?;
    root.mkdir(&dev.join("shm"), 0o1777)?;
    let shm = format!("mode=1777,size={SHM_SIZE},uid={0},gid={0}", root.0);
    mount(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(shm.as_str()),
    )
    .map_err(err("mounting /dev/shm".into()))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link)).map_err(err(format!("linking /dev/{link}")))?;
        let _ = nix::unistd::fchownat(
            None,
            &dev.join(link),
            Some(Uid::from_raw(root.0)),
            Some(Gid::from_raw(root.0)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

/// Resolves `target` (absolute, inside the sandbox) under `rootfs` without following
/// symlinks out of it: components must be plain names, and an existing symlink on the way is
/// refused, since the image is untrusted.
fn safe_join(rootfs: &Path, target: &Path) -> Result<PathBuf, String> {
    let mut path = rootfs.to_path_buf();
    for comp in target.components() {
        match comp {
            std::path::Component::RootDir => {}
            std::path::Component::Normal(name) => {
                path.push(name);
                if path
                    .symlink_metadata()
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false)
                {
                    return Err(format!(
                        "bind target {} crosses a symlink in the image",
                        target.display()
                    ));
                }
            }
            std::path::Component::CurDir => {}
            _ => {
                return Err(format!(
                    "bind target {} must be absolute and normalised",
                    target.display()
                ));
            }
        }
    }
    Ok(path)
}

fn bind_into(
    rootfs: &Path,
    source: &Path,
    target: &Path,
    read_only: bool,
    root: Ids,
) -> Result<(), String> {
    let meta = source
        .metadata()
        .map_err(err(format!("bind source {}", source.display())))?;
    let dst = safe_join(rootfs, target)?;
    if meta.is_dir() {
        root.ensure_dir(&dst, 0o755)?
    } else {
        root.ensure_file(&dst)?
    }
    mount(
        Some(source),
        &dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err(format!(
        "binding {} at {}",
        source.display(),
        target.display()
    )))?;
    if read_only {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV;
        mount(None::<&str>, &dst, None::<&str>, flags, None::<&str>)
            .map_err(err(format!("making {} read-only", target.display())))?;
    }
    Ok(())
}

/// `/etc/hostname` and `/etc/hosts` naming the sandbox, when the image has an `/etc`.
fn write_etc(rootfs: &Path, id: &str, root: Ids) {
    let etc = rootfs.join("etc");
    if !etc.is_dir()
        || etc
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(true)
    {
        return;
    }
    let files = [
        ("hostname", format!("{id}\n")),
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{id}\n"
            ),
        ),
    ];
    for (name, text) in files {
        let path = etc.join(name);
        if path
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            continue;
        }
        if std::fs::write(&path, text).is_ok() {
            let _ = root.chown(&path);
        }
    }
}
