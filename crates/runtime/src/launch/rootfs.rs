//! The launcher's half of the root filesystem: id maps, idmapped layers, the writable layer,
//! the overlay and `/dev`. Runs in L's private mount namespace as host root, after C has
//! created the sandbox's user namespace and before C creates the others.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Pid, Uid, chown};

use super::failure::{At, LaunchFailure, LaunchStep};
use super::plan::LaunchPlan;
use crate::sys::idmap::{bind_for_sandbox, bind_idmapped_readonly};
use crate::sys::path::{Missing, walk_beneath};

/// Host devices bound into every sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Size of `/dev/shm` when no disk limit is given.
const SHM_SIZE: &str = "64m";

/// Writes the id maps of C's user namespace, then mounts the root filesystem at
/// `<dir>/rootfs` in L's mount namespace.
pub(crate) fn prepare(plan: &LaunchPlan, c: Pid) -> Result<(), LaunchFailure> {
    let map = format!("0 {} {}\n", plan.root_host_id, plan.id_count);
    let proc_dir = PathBuf::from(format!("/proc/{c}"));
    let maps = LaunchStep::IdMaps;
    std::fs::write(proc_dir.join("uid_map"), &map).at_with(maps, || "uid_map".into())?;
    std::fs::write(proc_dir.join("gid_map"), &map).at_with(maps, || "gid_map".into())?;
    let userns: OwnedFd = File::open(proc_dir.join("ns/user"))
        .at_with(maps, || "opening the user namespace".into())?
        .into();
    let root = Ids(plan.root_host_id);
    let dir = &plan.dir;

    // Layers: each one idmapped (host uid 0 → sandbox root) and read-only. A layer that
    // appears twice (two steps that made the same change) is stacked once, at its top-most
    // place: overlayfs refuses a layer twice (ELOOP), and the lower copy changes nothing,
    // since everything it holds (whiteouts included) is laid again above what came between.
    let mut lowers = Vec::new();
    let layers = top_most_once(&plan.spec.layers);
    for (i, layer) in layers.iter().enumerate() {
        let target = dir.join("lower").join(i.to_string());
        std::fs::create_dir_all(&target)
            .at_with(LaunchStep::Layers, || target.display().to_string())?;
        bind_idmapped_readonly(layer, &target, &userns)
            .at_with(LaunchStep::Layers, || layer.display().to_string())?;
        lowers.push(format!("lower/{i}"));
    }
    // The writable layer: a tmpfs sized by the disk limit, owned by sandbox root, or the
    // caller's host directory (bound at `rw` so that the overlay options stay relative).
    let rw = dir.join("rw");
    let step = LaunchStep::WritableLayer;
    std::fs::create_dir_all(&rw).at_with(step, || rw.display().to_string())?;
    if let Some(host) = &plan.spec.writable_dir {
        for sub in ["upper", "work"] {
            let d = host.join(sub);
            if !d.exists() {
                root.mkdir(&d, 0o755)
                    .at_with(step, || d.display().to_string())?;
            }
        }
        mount(
            Some(host.as_path()),
            &rw,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .at_with(step, || host.display().to_string())?;
    } else {
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
        .at(step)?;
        for sub in ["upper", "work"] {
            root.mkdir(&rw.join(sub), 0o755).at(step)?;
        }
    }
    // The overlay. Paths are relative to `dir` (the option string is limited to one page),
    // and overlay wants the top layer first.
    lowers.reverse();
    let rootfs = dir.join("rootfs");
    let step = LaunchStep::Overlay;
    std::fs::create_dir_all(&rootfs).at_with(step, || rootfs.display().to_string())?;
    let opts = format!(
        "lowerdir={},upperdir=rw/upper,workdir=rw/work",
        lowers.join(":")
    );
    std::env::set_current_dir(dir).at_with(step, || dir.display().to_string())?;
    // nosuid unless the sandbox lets set-uid binaries raise rights up to its own root; nodev
    // always: the overlay is mounted here, in the host's user namespace, so a device node in
    // a layer (a pulled image's, an ADD archive's) would otherwise open the host's device
    // from inside the sandbox. The sandbox's /dev is a tmpfs of its own with bound nodes.
    let flags = if plan.spec.limits.allow_setuid {
        MsFlags::MS_NODEV
    } else {
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV
    };
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .at(step)?;

    // The image is untrusted: a symlink at one of these would point L's mounts at the host.
    for (sub, mode) in [
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/tmp", 0o1777),
        ("/dev", 0o755),
    ] {
        walk_beneath(&rootfs, Path::new(sub), root.create(mode)).at(LaunchStep::MountPoints)?;
    }
    mount_dev(&rootfs.join("dev"), root)?;
    for bind in &plan.spec.binds {
        bind_into(&rootfs, bind, root, &userns)?;
    }
    write_etc(&rootfs, &plan.spec.id, root);
    Ok(())
}

/// Host ids of sandbox root, for giving created mount points the right owner.
#[derive(Clone, Copy)]
struct Ids(u32);

impl Ids {
    fn chown(self, path: &Path) -> std::io::Result<()> {
        chown(
            path,
            Some(Uid::from_raw(self.0)),
            Some(Gid::from_raw(self.0)),
        )?;
        Ok(())
    }
    fn mkdir(self, path: &Path, mode: u32) -> std::io::Result<()> {
        std::fs::create_dir(path)?;
        std::fs::set_permissions(path, PermissionsExt::from_mode(mode))?;
        self.chown(path)
    }
    /// Missing directories on a walk become sandbox root's; the last one gets `mode`.
    fn create(self, mode: u32) -> Missing {
        Missing::CreateDirs {
            owner: self.0,
            mode,
        }
    }
}

fn mount_dev(dev: &Path, root: Ids) -> Result<(), LaunchFailure> {
    let step = LaunchStep::Dev;
    let opts = format!("mode=0755,size=65536k,uid={0},gid={0}", root.0);
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some(opts.as_str()),
    )
    .at(step)?;
    // A fresh tmpfs: nothing of the image's is in it, so plain paths are safe here.
    for name in DEVICES {
        let target = dev.join(name);
        File::create(&target)
            .and_then(|_| root.chown(&target))
            .at_with(step, || target.display().to_string())?;
        let source = Path::new("/dev").join(name);
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .at_with(step, || format!("binding /dev/{name}"))?;
    }
    root.mkdir(&dev.join("pts"), 0o755)
        .at_with(step, || "/dev/pts".into())?;
    root.mkdir(&dev.join("shm"), 0o1777)
        .at_with(step, || "/dev/shm".into())?;
    let shm = format!("mode=1777,size={SHM_SIZE},uid={0},gid={0}", root.0);
    mount(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(shm.as_str()),
    )
    .at_with(step, || "mounting /dev/shm".into())?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link)).at_with(step, || format!("linking /dev/{link}"))?;
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

/// Mounts the host path `source` at `target` (inside the image) without following a symlink
/// of the image's: the mount point is resolved by [`walk_beneath`], and created (owned by
/// sandbox root) when missing, as a directory or an empty file like the source.
fn bind_into(
    rootfs: &Path,
    bind: &crate::BindMount,
    root: Ids,
    userns: &OwnedFd,
) -> Result<(), LaunchFailure> {
    let (source, target, read_only) = (&bind.source, &bind.target, bind.read_only);
    let idmap_with = bind.idmap.then_some(userns);
    let step = LaunchStep::Binds;
    let meta = source
        .metadata()
        .at_with(step, || format!("bind source {}", source.display()))?;
    let what = || format!("bind target {}", target.display());
    let dst = if meta.is_dir() {
        walk_beneath(rootfs, target, root.create(0o755)).at_with(step, what)?
    } else {
        let parent = target.parent().unwrap_or(Path::new("/"));
        walk_beneath(rootfs, parent, root.create(0o755)).at_with(step, what)?;
        let dst = walk_beneath(rootfs, target, Missing::Leave).at_with(step, what)?;
        if dst.symlink_metadata().is_err() {
            File::create(&dst)
                .and_then(|_| root.chown(&dst))
                .at_with(step, what)?;
        }
        dst
    };
    // A clone of the whole tree, nosuid and nodev whether writable or not, with the
    // sandbox's ids when asked (and the filesystem allows it).
    bind_for_sandbox(source, &dst, read_only, idmap_with).at_with(step, || {
        format!("binding {} at {}", source.display(), target.display())
    })?;
    Ok(())
}

/// `/etc/hostname` and `/etc/hosts` naming the sandbox, when the image has an `/etc`
/// (reached without following a symlink of the image's).
fn write_etc(rootfs: &Path, id: &str, root: Ids) {
    let files = [
        ("/etc/hostname", format!("{id}\n")),
        (
            "/etc/hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{id}\n"
            ),
        ),
    ];
    for (name, text) in files {
        let Ok(path) = walk_beneath(rootfs, Path::new(name), Missing::Leave) else {
            continue;
        };
        if path.parent().is_some_and(Path::is_dir) && std::fs::write(&path, text).is_ok() {
            let _ = root.chown(&path);
        }
    }
}

/// `layers` (bottom first) with each one kept only at its top-most place.
pub(crate) fn top_most_once(layers: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        if !layers[i + 1..].contains(l) {
            out.push(l.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_layer_is_kept_at_its_top_most_place() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            top_most_once(&[p("a"), p("b"), p("a"), p("c")]),
            vec![p("b"), p("a"), p("c")]
        );
        assert_eq!(top_most_once(&[p("a"), p("b")]), vec![p("a"), p("b")]);
    }
}
