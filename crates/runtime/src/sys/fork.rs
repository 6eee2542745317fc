//! `fork(2)` for the runtime's single-threaded launch processes (the launcher and its child).
//! Processes inside a sandbox are started by `bulkhead_spawn`.

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
/// before exec, so forking is refused unless the process is single-threaded, as
/// the launcher (a fresh exec) and its child are.
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
