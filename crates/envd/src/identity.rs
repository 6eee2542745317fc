//! Acting as the request's user. envd runs as root in the sandbox, but a file operation for
//! `user` must have `user`'s rights: a link `~/report.txt -> /etc/passwd` planted by the user's
//! code must not let `files.write("/home/user/report.txt")` replace `/etc/passwd`, and
//! `files.read("/root/secret")` as `user` must fail. E2B's envd acts with the permissions of
//! the request's user; so does this one.
//!
//! How: the blocking thread that performs the operation takes the user's filesystem uid, gid
//! and supplementary groups for the operation's duration (per-thread credentials, the way
//! NFS servers act for their clients). The kernel then checks permissions, resolves symlinks
//! (`fs.protected_symlinks` included) and gives new files their owner exactly as it would for
//! the user's own process; a non-zero fsuid also drops the thread's file capabilities
//! (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`, `CAP_CHOWN`, ...), which come back when it returns to 0.
//! Everything else of envd (its sockets, its other threads) keeps root's rights.
//!
//! Only for synchronous work on one thread (inside `spawn_blocking`): never hold an
//! [`ActingAs`] across an `.await`.

use crate::sys;
use crate::users::User;

/// While alive, the calling thread acts as a user for filesystem access. Dropping it gives
/// the thread envd's own identity back.
#[must_use]
pub struct ActingAs {
    saved: Option<Saved>,
}

struct Saved {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<u32>,
}

/// The calling thread acts as `user` until the guard drops. A no-op for root and when envd
/// itself is not root (it then has no other rights than its own anyway).
pub fn act_as(user: &User) -> std::io::Result<ActingAs> {
    if user.uid == 0 || !nix::unistd::geteuid().is_root() {
        return Ok(ActingAs { saved: None });
    }
    let groups = sys::thread_groups()?;
    let mut wanted = user.groups.clone();
    if !wanted.contains(&user.gid) {
        wanted.insert(0, user.gid);
    }
    sys::set_thread_groups(&wanted)?;
    let fsgid = sys::set_thread_fsgid(user.gid);
    let fsuid = sys::set_thread_fsuid(user.uid);
    // setfsuid reports no failure: ask again, the answer is the current value.
    if sys::set_thread_fsuid(user.uid) != user.uid || sys::set_thread_fsgid(user.gid) != user.gid {
        restore(fsuid, fsgid, &groups);
        return Err(std::io::Error::other(format!(
            "could not act as uid {} gid {}",
            user.uid, user.gid
        )));
    }
    Ok(ActingAs {
        saved: Some(Saved {
            fsuid,
            fsgid,
            groups,
        }),
    })
}

fn restore(fsuid: u32, fsgid: u32, groups: &[u32]) {
    sys::set_thread_fsuid(fsuid);
    sys::set_thread_fsgid(fsgid);
    if sys::set_thread_groups(groups).is_err() || sys::set_thread_fsuid(fsuid) != fsuid {
        // A pooled thread left with a user's identity would serve the next request with the
        // wrong rights; root can always return to its own ids, so this is unreachable in
        // practice, and if it ever happens, stopping is the only safe answer.
        tracing::error!("could not give a filesystem thread its own identity back; exiting");
        std::process::abort();
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        if let Some(s) = self.saved.take() {
            restore(s.fsuid, s.fsgid, &s.groups);
        }
    }
}
