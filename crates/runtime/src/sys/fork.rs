//! `fork(2)` for the runtime's single-threaded processes (the launcher, its child, the
//! sandbox init), and the two calls a forked child makes before exec or exit.

use std::io;

pub use nix::unistd::ForkResult;

/// Number of threads of the calling process, from `/proc/self/task`.
fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Forks the calling process, after checking that it has a single thread.
///
/// After a fork only the calling thread exists in the child; any lock another thread held
/// (the allocator's, stdio's) stays locked forever, so a child of a threaded process may call
/// only async-signal-safe functions. The runtime's children allocate and run ordinary code
/// before exec, so forking is refused unless the process is single-threaded:
/// the launcher (a fresh exec), its child, and the sandbox init all are.
pub fn fork() -> io::Result<ForkResult> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork a process with {threads} threads"
        )));
    }
    // SAFETY: the process has exactly one thread (checked above, and nothing between the
    // check and the fork starts one), so the child may run arbitrary code.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// Ends the calling process at once with `code`: no atexit handlers, no flushing of buffers
/// shared with the parent. For a forked child whose exec failed.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and does not return; skipping Rust's and libc's exit
    // handlers is the point (they belong to the parent's copy of the state).
    unsafe { libc::_exit(code) }
}

/// Restores the default disposition of `SIGPIPE` (the Rust runtime ignores it, and programs
/// started from a Rust process would inherit that).
pub fn default_sigpipe() -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_DFL sets no handler code, so no handler can run in an unsafe
    // context.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(|_| ())
}
