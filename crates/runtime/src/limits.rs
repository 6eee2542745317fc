//! Resource limits of a sandbox and their textual forms (`512M`, `1.5` CPUs).

use serde::{Deserialize, Serialize};

/// Limits applied to one sandbox. `None` means "no limit beyond the host's".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory (RSS + page cache + tmpfs pages) in bytes; exceeding it OOM-kills inside the sandbox.
    pub memory_bytes: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids: Option<u64>,
    /// CPU quota in millicpus (1000 = one full core).
    pub cpu_millis: Option<u64>,
    /// Size of the writable layer in bytes (the sandbox's disk).
    pub disk_bytes: Option<u64>,
    /// Open files per process (`RLIMIT_NOFILE`, soft and hard); `None` =
    /// [`DEFAULT_OPEN_FILES`]. Never above the host's own hard limit.
    #[serde(default)]
    pub open_files: Option<u64>,
    /// Let set-uid and file-capability binaries of the image raise a process's rights, up
    /// to the sandbox's root and never beyond it (an unprivileged host uid whose capabilities
    /// are those of the sandbox's user namespace, cut to the bounding set), so `sudo` works
    /// as on E2B. Off (the default): every process runs with `no_new_privs` and the root
    /// filesystem is mounted `nosuid`.
    #[serde(default)]
    pub allow_setuid: bool,
}

/// Open files per sandbox process when the limits name none: a file table of 65,536
/// descriptors costs at most about 28 MiB of the sandbox's own memory, where the server's
/// own limit (often 1,048,576) let one process take 85 MB per 200,000.
pub const DEFAULT_OPEN_FILES: u64 = 65_536;

/// Signals one sandbox user may have queued (`RLIMIT_SIGPENDING`): the kernel counts them
/// per user namespace and uid (and, at the host level, per owner of the namespace: the
/// sandbox's own host uid), so this caps what one process tree of one user may queue.
pub const SIGNALS_PENDING: u64 = 1024;

/// Bytes of POSIX message queues one sandbox user may hold (`RLIMIT_MSGQUEUE`), Linux's
/// own default, for the same reason.
pub const MESSAGE_QUEUE_BYTES: u64 = 819_200;

/// A limit string that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct LimitParseError {
    /// Which limit ("memory", "cpus", ...).
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// Parses a byte size: a number with an optional binary suffix `K`, `M`, `G`, `T`
/// (also `KB`, `KiB`, case-insensitive). `512M` = 512 MiB. Zero is refused.
pub fn parse_size(what: &'static str, text: &str) -> Result<u64, LimitParseError> {
    let err = |reason| LimitParseError {
        what,
        value: text.to_string(),
        reason,
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(err("expected a number such as 512M or 2G"));
    }
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err("unknown unit (use K, M, G or T)")),
    };
    let value: f64 = num.parse().map_err(|_| err("not a number"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(err("out of range"));
    }
    Ok(bytes as u64)
}

/// Parses a CPU count such as `1`, `0.5` or `2.25` into millicpus.
pub fn parse_cpus(text: &str) -> Result<u64, LimitParseError> {
    let err = |reason| LimitParseError {
        what: "cpus",
        value: text.to_string(),
        reason,
    };
    let value: f64 = text.trim().parse().map_err(|_| err("not a number"))?;
    if !value.is_finite() || !(0.01..=4096.0).contains(&value) {
        return Err(err("must be between 0.01 and 4096"));
    }
    Ok((value * 1000.0).round() as u64)
}

/// Parses a positive integer count (pids).
pub fn parse_count(what: &'static str, text: &str) -> Result<u64, LimitParseError> {
    let err = |reason| LimitParseError {
        what,
        value: text.to_string(),
        reason,
    };
    match text.trim().parse::<u64>() {
        Ok(0) => Err(err("must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(err("not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("memory", "512M"), Ok(512 << 20));
        assert_eq!(parse_size("memory", "1g"), Ok(1 << 30));
        assert_eq!(parse_size("memory", "1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("memory", "4096"), Ok(4096));
        assert!(parse_size("memory", "12Q").is_err());
        assert!(parse_size("memory", "").is_err());
        assert!(parse_size("memory", "0").is_err());
        assert!(parse_size("memory", "M").is_err());
        let e = parse_size("memory", "12Q").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid memory \"12Q\": unknown unit (use K, M, G or T)"
        );
    }

    #[test]
    fn cpus_and_counts() {
        assert_eq!(parse_cpus("1"), Ok(1000));
        assert_eq!(parse_cpus("0.5"), Ok(500));
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("many").is_err());
        assert_eq!(parse_count("pids", "256"), Ok(256));
        assert!(parse_count("pids", "0").is_err());
        assert!(parse_count("pids", "1.5").is_err());
    }
}
