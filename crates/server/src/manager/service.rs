//! A template's service: the `start_cmd` that was still running when its build took the
//! snapshot. A filesystem snapshot holds no process, so the command is started again in
//! every sandbox while it is pooled (as root, in the image's `WORKDIR`, with its `ENV`), and
//! the sandbox joins the pool only once the service is ready: `ready_cmd` exits 0 (polled
//! every 100 ms), or, with no `ready_cmd`, the command listens on a TCP port.

use std::time::{Duration, Instant};

use bulkhead_runtime::{ExecSpec, Sandbox};

use super::ServiceCmd;

/// How long a service may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(100);

/// Ports of Bulkhead's own servers, which do not count as the service listening.
const OWN_PORTS: [u16; 2] = [bulkhead_envd::ENVD_PORT, super::interpreter::PORT];

/// Starts the service (detached) and waits until it is ready. Blocking.
pub(crate) fn start(sandbox: &Sandbox, cmd: &ServiceCmd) -> Result<(), String> {
    let spec = ExecSpec {
        detach: true,
        cwd: cmd.workdir.clone(),
        env: cmd.env.clone(),
        ..ExecSpec::command(["/bin/sh", "-c", cmd.start_cmd.as_str()])
    };
    let process = sandbox
        .exec(spec)
        .map_err(|e| format!("starting the template's start_cmd: {e}"))?;
    drop(process);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ready(sandbox, cmd) {
            return Ok(());
        }
        if !sandbox.is_running() {
            return Err("the sandbox stopped while its start_cmd was starting".into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the template's start_cmd was not ready after {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn ready(sandbox: &Sandbox, cmd: &ServiceCmd) -> bool {
    match &cmd.ready_cmd {
        Some(check) => run_ok(sandbox, cmd, check),
        None => listening(sandbox, cmd),
    }
}

fn run_ok(sandbox: &Sandbox, cmd: &ServiceCmd, check: &str) -> bool {
    let spec = ExecSpec {
        cwd: cmd.workdir.clone(),
        env: cmd.env.clone(),
        ..ExecSpec::command(["/bin/sh", "-c", check])
    };
    sandbox
        .exec(spec)
        .and_then(|p| p.wait())
        .is_ok_and(|s| s.code == Some(0))
}

/// Whether anything but Bulkhead's own servers listens on TCP, read from the host's
/// `/proc/<init>/net/tcp{,6}` (the sockets of the sandbox's network namespace).
fn listening(sandbox: &Sandbox, _cmd: &ServiceCmd) -> bool {
    let pid = sandbox.init_pid();
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}"))
            .map(|t| listening_ports(&t).any(|p| !OWN_PORTS.contains(&p)))
            .unwrap_or(false)
    })
}

/// Local ports of the sockets in LISTEN state (`0A`) of a `/proc/net/tcp` table.
fn listening_ports(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1)?;
        let state = f.nth(1)?;
        if state != "0A" {
            return None;
        }
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_reads_only_listen_sockets() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 00000000:C34F 00000000:0000 0A 00000000:00000000\n   1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000\n   2: 00000000:1F90 00000000:0000 0A 00000000:00000000\n";
        assert_eq!(listening_ports(t).collect::<Vec<_>>(), vec![0xC34F, 8080]);
    }
}
