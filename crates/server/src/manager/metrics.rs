//! Metrics over time: a sample of every running sandbox every [`SAMPLE_EVERY`], kept for
//! the sandbox's life in a bounded history, answered for a `start`..`end` window as E2B's
//! `GET /sandboxes/{id}/metrics` does.
//!
//! The history holds at most [`MAX_SAMPLES`] per sandbox (about 40 bytes each). When it is
//! full, every second sample is dropped and from then on only every second tick is kept, so
//! a sandbox that lives for a day still has its whole life covered, at a coarser step (at
//! most 20 KiB per sandbox whatever its lifetime). A paused sandbox is not sampled.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_runtime::cgroup::CgroupStats;
use bulkhead_store::{SandboxRecord, SandboxStatus, TeamId};

use super::{Entry, Invalid, Manager, ManagerError};
use crate::clock::{self, Timestamp};

/// How often every running sandbox is sampled (E2B's step is 5 s too).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples kept per sandbox before the history halves its resolution.
pub const MAX_SAMPLES: usize = 512;

/// Sandboxes `GET /sandboxes/metrics` answers for in one request.
pub const MAX_SANDBOXES_PER_REQUEST: usize = 100;

/// One sample of a sandbox's resource use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample {
    /// When it was taken.
    pub at: Timestamp,
    /// vCPUs.
    pub cpu_count: u32,
    /// CPU used since the previous sample, 0..=100 % of `cpu_count`.
    pub cpu_used_pct: f64,
    /// Memory in use, bytes (page cache included).
    pub mem_used: u64,
    /// Of that, page cache (files and the writable layer's tmpfs), bytes.
    pub mem_cache: u64,
    /// Memory limit, bytes.
    pub mem_total: u64,
    /// Bytes used on the writable layer.
    pub disk_used: u64,
    /// Size of the writable layer, bytes.
    pub disk_total: u64,
}

/// A `start`..`end` window (unix seconds, both inclusive, either open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsWindow {
    /// First second wanted.
    pub start: Option<i64>,
    /// Last second wanted.
    pub end: Option<i64>,
}

impl MetricsWindow {
    fn holds(&self, unix: i64) -> bool {
        self.start.is_none_or(|s| unix >= s) && self.end.is_none_or(|e| unix <= e)
    }
}

/// One sandbox's samples, oldest first.
#[derive(Debug, Default)]
pub(crate) struct MetricsHistory {
    samples: VecDeque<MetricSample>,
    /// Keep one tick in `stride` (doubles each time the history is compacted).
    stride: u32,
    /// Ticks seen since the last kept one.
    skipped: u32,
    /// The CPU counter at the previous tick, for the next percentage.
    last_cpu: Option<(Instant, u64)>,
}

impl MetricsHistory {
    /// The CPU share between the previous tick and `(at, cpu_ns)`, over `cpus` CPUs;
    /// 0 for the first sample.
    fn cpu_pct(&self, at: Instant, cpu_ns: u64, cpus: u32) -> f64 {
        match self.last_cpu {
            Some((t, ns)) if at > t => {
                let wall = at.duration_since(t).as_nanos() as f64 * f64::from(cpus.max(1));
                (cpu_ns.saturating_sub(ns) as f64 / wall * 100.0).clamp(0.0, 100.0)
            }
            _ => 0.0,
        }
    }

    /// Records a tick: its CPU counter always, the sample when the stride keeps it.
    fn record(&mut self, at: Instant, cpu_ns: u64, sample: MetricSample) {
        self.last_cpu = Some((at, cpu_ns));
        let stride = self.stride.max(1);
        self.skipped += 1;
        if self.skipped < stride && !self.samples.is_empty() {
            return;
        }
        self.skipped = 0;
        if self.samples.len() >= MAX_SAMPLES {
            let mut keep = false;
            self.samples.retain(|_| {
                keep = !keep;
                keep
            });
            self.stride = stride * 2;
        }
        self.samples.push_back(sample);
    }

    /// The samples inside `w`.
    fn window(&self, w: MetricsWindow) -> Vec<MetricSample> {
        self.samples
            .iter()
            .filter(|s| w.holds(s.at.timestamp()))
            .copied()
            .collect()
    }

    /// How many samples are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.samples.len()
    }
}

/// Reads a sandbox's counters (blocking: cgroup files and a statfs).
fn read(entry: &Entry) -> (CgroupStats, Option<(u64, u64)>) {
    let sb = entry.sandbox();
    (sb.stats(), sb.writable_layer_usage())
}

/// A sample from counters just read, for the sandbox of `rec` (read before the history's
/// lock is taken: the entry's lock is one and the same).
fn sample_of(
    rec: &SandboxRecord,
    hist: &MetricsHistory,
    at: Instant,
    now: Timestamp,
    (stats, disk): (CgroupStats, Option<(u64, u64)>),
) -> MetricSample {
    let disk_total = u64::from(rec.disk_mb) << 20;
    MetricSample {
        at: now,
        cpu_count: rec.cpu_count,
        cpu_used_pct: hist.cpu_pct(at, stats.cpu_ns, rec.cpu_count),
        mem_used: stats.memory_bytes,
        mem_cache: stats.memory_cache_bytes,
        mem_total: u64::from(rec.memory_mb) << 20,
        disk_used: disk.map_or(0, |(used, _)| used),
        disk_total: disk.map_or(disk_total, |(_, total)| total.min(disk_total).max(1)),
    }
}

impl Manager {
    /// Runs forever: samples every running sandbox every [`SAMPLE_EVERY`].
    pub async fn sample_metrics(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let running: Vec<Arc<Entry>> = self
                .read()
                .values()
                .filter(|e| e.status() == SandboxStatus::Running)
                .cloned()
                .collect();
            if running.is_empty() {
                continue;
            }
            // One blocking task for the whole round: a few small reads per sandbox.
            let _ = tokio::task::spawn_blocking(move || {
                for e in running {
                    let counters = read(&e);
                    let rec = e.record();
                    let (at, now) = (Instant::now(), clock::now());
                    e.with_metrics(|h| {
                        let s = sample_of(&rec, h, at, now, counters);
                        h.record(at, counters.0.cpu_ns, s);
                    });
                }
            })
            .await;
        }
    }

    /// The sandbox's samples inside `window`, oldest first, one per second at most; while it
    /// runs and the window reaches now, a sample of now ends the list (so a sandbox younger
    /// than one sampling step has one too) unless the sampler took one this second.
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`]; [`Invalid::MetricsWindow`] when `start` is after
    /// `end`.
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn metrics(
        &self,
        team: &TeamId,
        id: &str,
        window: MetricsWindow,
    ) -> Result<Vec<MetricSample>, ManagerError> {
        if let (Some(s), Some(e)) = (window.start, window.end)
            && s > e
        {
            return Err(Invalid::MetricsWindow { start: s, end: e }.into());
        }
        let entry = self.owned(team, id)?;
        let mut samples = entry.with_metrics(|h| h.window(window));
        let now = clock::now();
        // Timestamps are whole seconds: a sampler tick in this same second already is now.
        let fresh = samples
            .last()
            .is_none_or(|s| s.at.timestamp() < now.timestamp());
        if entry.status() == SandboxStatus::Running && window.holds(now.timestamp()) && fresh {
            samples.push(live_sample(entry, now).await?);
        }
        Ok(samples)
    }

    /// The latest sample of each of `ids` that `team` owns and that runs; the others are
    /// left out, as E2B leaves them.
    ///
    /// # Errors
    /// [`Invalid::SandboxIdCount`] for no ids or more than
    /// [`MAX_SANDBOXES_PER_REQUEST`].
    pub async fn metrics_of(
        &self,
        team: &TeamId,
        ids: &[String],
    ) -> Result<Vec<(String, MetricSample)>, ManagerError> {
        if ids.is_empty() || ids.len() > MAX_SANDBOXES_PER_REQUEST {
            return Err(Invalid::SandboxIdCount {
                given: ids.len(),
                max: MAX_SANDBOXES_PER_REQUEST,
            }
            .into());
        }
        let mut out = Vec::new();
        for id in ids {
            let Ok(entry) = self.owned(team, id) else {
                continue;
            };
            if entry.status() != SandboxStatus::Running {
                continue;
            }
            out.push((id.clone(), live_sample(entry, clock::now()).await?));
        }
        Ok(out)
    }
}

/// A sample of now, measured against the last stored tick without replacing it.
async fn live_sample(entry: Arc<Entry>, now: Timestamp) -> Result<MetricSample, ManagerError> {
    Ok(tokio::task::spawn_blocking(move || {
        let counters = read(&entry);
        let rec = entry.record();
        let at = Instant::now();
        entry.with_metrics(|h| sample_of(&rec, h, at, now, counters))
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(unix: i64) -> MetricSample {
        MetricSample {
            at: chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default(),
            cpu_count: 1,
            cpu_used_pct: 0.0,
            mem_used: 0,
            mem_cache: 0,
            mem_total: 0,
            disk_used: 0,
            disk_total: 0,
        }
    }

    #[test]
    fn a_full_history_halves_its_resolution_and_keeps_the_whole_life() {
        let mut h = MetricsHistory::default();
        let t0 = Instant::now();
        let ticks = MAX_SAMPLES as i64 * 6;
        for i in 0..ticks {
            h.record(t0, 0, sample(i * 5));
        }
        assert!(h.len() <= MAX_SAMPLES, "{} samples held", h.len());
        let all = h.window(MetricsWindow::default());
        assert_eq!(all.first().map(|s| s.at.timestamp()), Some(0));
        let last = all.last().map_or(0, |s| s.at.timestamp());
        assert!(
            last >= (ticks - 8) * 5,
            "the newest sample is recent: {last}"
        );
        assert!(all.windows(2).all(|w| w[0].at < w[1].at), "in order");
    }

    #[test]
    fn a_window_holds_its_ends_and_nothing_outside() {
        let mut h = MetricsHistory::default();
        for i in 0..10 {
            h.record(Instant::now(), 0, sample(100 + i));
        }
        let w = MetricsWindow {
            start: Some(102),
            end: Some(104),
        };
        let got: Vec<i64> = h.window(w).iter().map(|s| s.at.timestamp()).collect();
        assert_eq!(got, [102, 103, 104]);
        let after = MetricsWindow {
            start: Some(200),
            end: None,
        };
        assert!(h.window(after).is_empty());
    }

    #[test]
    fn the_cpu_share_is_over_the_time_between_ticks_and_all_cpus() {
        let mut h = MetricsHistory::default();
        let t0 = Instant::now();
        assert_eq!(h.cpu_pct(t0, 5, 2), 0.0, "the first sample has no share");
        h.record(t0, 0, sample(0));
        let t1 = t0 + Duration::from_secs(1);
        let pct = h.cpu_pct(t1, 1_000_000_000, 2);
        assert!((pct - 50.0).abs() < 1e-9, "{pct}");
        assert_eq!(h.cpu_pct(t1, 10_000_000_000, 2), 100.0, "clamped");
    }
}
