//! Why a launch failed: the step, the errno, and who is to blame. The launcher and the
//! sandbox-side processes report a [`LaunchFailure`] (JSON, on the launcher's stdout and on the
//! status pipe from C and I), and [`crate::RuntimeError::Launch`] carries its parts.

use serde::{Deserialize, Serialize};

/// A step of a launch, in the order they run (see [`crate::launch`] for who runs which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchStep {
    /// The host started the launcher and exchanged the plan and the answer with it.
    Launcher,
    /// L joins the sandbox's cgroups.
    JoinCgroup,
    /// L creates its private mount namespace.
    MountNamespace,
    /// L binds the control socket.
    ControlSocket,
    /// L forks C, or creates the pipes between them.
    Fork,
    /// C creates the user namespace.
    UserNamespace,
    /// L and C signal each other over their pipes.
    Handshake,
    /// L writes C's uid and gid maps.
    IdMaps,
    /// L idmaps the read-only layers.
    Layers,
    /// L mounts the writable layer (a tmpfs).
    WritableLayer,
    /// L mounts the overlay root.
    Overlay,
    /// L creates the mount points the sandbox needs in the image (`/proc`, `/sys`, `/tmp`, `/dev`).
    MountPoints,
    /// L mounts `/dev`.
    Dev,
    /// L mounts the caller's bind mounts.
    Binds,
    /// C drops host root's groups and becomes the namespace's root.
    DropHostIds,
    /// C creates the mount, pid, network, uts, ipc and cgroup namespaces.
    Namespaces,
    /// C forks I, the sandbox init.
    ForkInit,
    /// I mounts `/proc`, `/sys`, `/dev/pts` and the masks over `/proc`.
    KernelMounts,
    /// I pivots into the root and detaches the host's.
    PivotRoot,
    /// I sets the hostname and brings up loopback.
    Network,
    /// I becomes non-dumpable and sets up its signal handling and seccomp filters.
    Init,
}

impl LaunchStep {
    /// What the step does, for messages ("mounting the overlay root").
    pub fn doing(self) -> &'static str {
        match self {
            LaunchStep::Launcher => "running the launcher",
            LaunchStep::JoinCgroup => "joining the sandbox cgroup",
            LaunchStep::MountNamespace => "creating the launcher mount namespace",
            LaunchStep::ControlSocket => "binding the control socket",
            LaunchStep::Fork => "forking the sandbox process",
            LaunchStep::UserNamespace => "creating the user namespace",
            LaunchStep::Handshake => "handing over between the launcher and the sandbox",
            LaunchStep::IdMaps => "writing the uid and gid maps",
            LaunchStep::Layers => "idmapping the image layers",
            LaunchStep::WritableLayer => "mounting the writable layer",
            LaunchStep::Overlay => "mounting the overlay root",
            LaunchStep::MountPoints => "creating mount points in the image",
            LaunchStep::Dev => "mounting /dev",
            LaunchStep::Binds => "mounting the bind mounts",
            LaunchStep::DropHostIds => "dropping host ids",
            LaunchStep::Namespaces => "creating the sandbox namespaces",
            LaunchStep::ForkInit => "forking the sandbox init",
            LaunchStep::KernelMounts => "mounting /proc, /sys and /dev/pts",
            LaunchStep::PivotRoot => "entering the sandbox root",
            LaunchStep::Network => "setting the hostname and loopback",
            LaunchStep::Init => "starting the sandbox init",
        }
    }
}

impl std::fmt::Display for LaunchStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.doing())
    }
}

/// Who can fix a failed sandbox start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request is invalid (an id, a layer path, a bind mount): the caller.
    Request,
    /// The root filesystem image cannot hold a sandbox (a symlink or a file where a mount
    /// point must be): whoever built the image.
    Image,
    /// The host lacks a kernel feature, a permission or a setting: the operator.
    Host,
    /// The host ran out of something (memory, processes, namespaces, uid ranges); retrying
    /// later may work.
    Resource,
}

impl FailureKind {
    /// A short phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            FailureKind::Request => "invalid request",
            FailureKind::Image => "the root filesystem image is unusable",
            FailureKind::Host => "the host cannot start sandboxes",
            FailureKind::Resource => "the host is out of resources",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// A failed launch step, as the launcher reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}: {detail}")]
pub struct LaunchFailure {
    /// The step that failed.
    pub step: LaunchStep,
    /// The errno of the failed call, when there was one.
    pub errno: Option<i32>,
    /// What failed, naming the path or value at fault and the error text.
    pub detail: String,
}

impl LaunchFailure {
    /// A failure of `step` with no errno.
    pub fn new(step: LaunchStep, detail: impl Into<String>) -> Self {
        Self {
            step,
            errno: None,
            detail: detail.into(),
        }
    }

    /// Who can fix it: errnos of exhaustion are resources whatever the step; a failure to
    /// make mount points in the image, or a bind target that runs into a symlink or a file
    /// in the image, is the image's; anything else is the host's.
    pub fn kind(&self) -> FailureKind {
        kind_of(self.step, self.errno)
    }
}

/// The classification behind [`LaunchFailure::kind`].
pub(crate) fn kind_of(step: LaunchStep, errno: Option<i32>) -> FailureKind {
    const EXHAUSTED: &[i32] = &[
        libc::EAGAIN,
        libc::ENOMEM,
        libc::ENOSPC,
        libc::EMFILE,
        libc::ENFILE,
        libc::EDQUOT,
        libc::EUSERS,
    ];
    const IMAGE_SHAPE: &[i32] = &[libc::ELOOP, libc::ENOTDIR, libc::EEXIST];
    match (step, errno) {
        (_, Some(e)) if EXHAUSTED.contains(&e) => FailureKind::Resource,
        (LaunchStep::MountPoints, _) => FailureKind::Image,
        (LaunchStep::Binds, Some(e)) if IMAGE_SHAPE.contains(&e) => FailureKind::Image,
        _ => FailureKind::Host,
    }
}

/// An error that may carry an errno.
pub(crate) trait Errno: std::fmt::Display {
    fn errno(&self) -> Option<i32>;
}

impl Errno for std::io::Error {
    fn errno(&self) -> Option<i32> {
        self.raw_os_error()
    }
}

impl Errno for nix::Error {
    fn errno(&self) -> Option<i32> {
        Some(*self as i32)
    }
}

impl Errno for crate::sys::path::WalkError {
    fn errno(&self) -> Option<i32> {
        crate::sys::path::WalkError::errno(self)
    }
}

/// Turns an error into a failure of a step.
pub(crate) trait At<T> {
    /// The error of `step`, its text as the detail.
    fn at(self, step: LaunchStep) -> Result<T, LaunchFailure>;
    /// The error of `step`, with `what` (the object acted on) before its text.
    fn at_with(self, step: LaunchStep, what: impl FnOnce() -> String) -> Result<T, LaunchFailure>;
}

impl<T, E: Errno> At<T> for Result<T, E> {
    fn at(self, step: LaunchStep) -> Result<T, LaunchFailure> {
        self.map_err(|e| LaunchFailure {
            step,
            errno: e.errno(),
            detail: e.to_string(),
        })
    }

    fn at_with(self, step: LaunchStep, what: impl FnOnce() -> String) -> Result<T, LaunchFailure> {
        self.map_err(|e| LaunchFailure {
            step,
            errno: e.errno(),
            detail: format!("{}: {e}", what()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let f = |step, errno| LaunchFailure {
            step,
            errno,
            detail: String::new(),
        };
        assert_eq!(
            f(LaunchStep::Fork, Some(libc::EAGAIN)).kind(),
            FailureKind::Resource
        );
        assert_eq!(
            f(LaunchStep::UserNamespace, Some(libc::ENOSPC)).kind(),
            FailureKind::Resource
        );
        assert_eq!(
            f(LaunchStep::MountPoints, Some(libc::ELOOP)).kind(),
            FailureKind::Image
        );
        assert_eq!(
            f(LaunchStep::Binds, Some(libc::ENOTDIR)).kind(),
            FailureKind::Image
        );
        assert_eq!(
            f(LaunchStep::Binds, Some(libc::EPERM)).kind(),
            FailureKind::Host
        );
        assert_eq!(
            f(LaunchStep::Overlay, Some(libc::EINVAL)).kind(),
            FailureKind::Host
        );
        assert_eq!(f(LaunchStep::Launcher, None).kind(), FailureKind::Host);
    }

    #[test]
    fn round_trips_as_json() {
        let f = LaunchFailure {
            step: LaunchStep::IdMaps,
            errno: Some(libc::EPERM),
            detail: "writing uid_map: EPERM".into(),
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<LaunchFailure>(&json).unwrap(), f);
    }
}
