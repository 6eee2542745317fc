//! Capability sets for processes started in a sandbox.

use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities a sandboxed root process keeps: Docker's default set without NET_RAW
/// (no raw sockets) and without AUDIT_WRITE. Everything else is dropped from the bounding set,
/// so not even a setuid binary or file capability can bring it back.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
];

/// Drops every capability outside [`DEFAULT_CAPS`] from the bounding set of the calling
/// thread. Must run while the thread still holds CAP_SETPCAP (before switching uid).
pub fn drop_bounding() -> Result<(), caps::errors::CapsError> {
    for cap in caps::all() {
        if !DEFAULT_CAPS.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    Ok(())
}

/// Restricts the effective, permitted and inheritable sets to [`DEFAULT_CAPS`] and clears the
/// ambient set. For a non-root uid the kernel clears effective and permitted on `setuid`.
pub fn restrict_sets() -> Result<(), caps::errors::CapsError> {
    let keep: CapsHashSet = DEFAULT_CAPS.iter().copied().collect();
    caps::clear(None, CapSet::Ambient)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    Ok(())
}
