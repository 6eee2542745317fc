//! `GET /metrics`: resource usage as the reference envd reports it to the orchestrator
//! (not used by the SDKs). Values come from `/proc` and `statvfs("/")` as seen inside the
//! sandbox; without lxcfs, memory figures are the host's, so a control plane that enforces
//! cgroup limits should prefer its cgroup statistics.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The `/metrics` body.
#[derive(Debug, Serialize)]
pub struct Metrics {
    /// Unix seconds.
    pub ts: i64,
    /// CPUs available to envd.
    pub cpu_count: u32,
    /// CPU busy percentage over a 100 ms sample.
    pub cpu_used_pct: f32,
    /// Memory total, bytes.
    pub mem_total: u64,
    /// Memory in use (total − available), bytes.
    pub mem_used: u64,
    /// Page cache, bytes.
    pub mem_cache: u64,
    /// Memory total, MiB.
    pub mem_total_mib: u64,
    /// Memory in use, MiB.
    pub mem_used_mib: u64,
    /// Disk used on `/`, bytes.
    pub disk_used: u64,
    /// Disk size of `/`, bytes.
    pub disk_total: u64,
}

/// Handler: 200 with [`Metrics`], 500 if `/proc` is unreadable.
pub async fn metrics() -> Response {
    let first = cpu_times();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = cpu_times();
    match tokio::task::spawn_blocking(move || collect(first, second)).await {
        Ok(Some(m)) => Json(m).into_response(),
        _ => {
            let body = serde_json::json!({ "code": 500, "message": "reading /proc failed" });
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

/// (busy, total) jiffies from the aggregate `cpu` line of `/proc/stat`.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn collect(first: Option<(u64, u64)>, second: Option<(u64, u64)>) -> Option<Metrics> {
    let cpu_used_pct = match (first, second) {
        (Some((b1, t1)), Some((b2, t2))) if t2 > t1 => {
            (b2.saturating_sub(b1)) as f32 * 100.0 / (t2 - t1) as f32
        }
        _ => 0.0,
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let mem_total = field("MemTotal");
    let mem_used = mem_total.saturating_sub(field("MemAvailable"));
    let disk = nix::sys::statvfs::statvfs("/").ok()?;
    let frsize = disk.fragment_size();
    let disk_total = disk.blocks() * frsize;
    let disk_used = disk.blocks().saturating_sub(disk.blocks_free()) * frsize;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Some(Metrics {
        ts,
        cpu_count: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        cpu_used_pct,
        mem_total,
        mem_used,
        mem_cache: field("Cached") + field("Buffers"),
        mem_total_mib: mem_total >> 20,
        mem_used_mib: mem_used >> 20,
        disk_used,
        disk_total,
    })
}
