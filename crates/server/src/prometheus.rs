//! `GET /metrics`: the server's figures in the OpenMetrics text format that Prometheus
//! scrapes (`prometheus-client` encodes them).
//!
//! Events are counted where they happen (creates in the manager, builds in the template
//! store, executions in the edge proxy, API errors where they are answered) into one
//! process-wide set, [`METRICS`]: a process serves one server. What is a state rather than an
//! event (sandboxes by template and state, warm pool sizes) is read from the manager at
//! scrape time. Label values are only ever template ids the server knows and fixed words,
//! never a value a client chose, so a hostile client cannot grow the label space.
//!
//! | family | kind | labels |
//! |---|---|---|
//! | `bulkhead_sandboxes` | gauge | template, state |
//! | `bulkhead_pool_ready` | gauge | template |
//! | `bulkhead_sandbox_creates_total` | counter | template, outcome (`created`, `refused`, `invalid`, `failed`) |
//! | `bulkhead_sandbox_create_seconds` | histogram | pool (`hit`, `miss`) |
//! | `bulkhead_template_builds_total` | counter | outcome (`built`, `failed`) |
//! | `bulkhead_template_build_seconds` | histogram | |
//! | `bulkhead_executions_total` | counter | kind (`run_code`, `command`) |
//! | `bulkhead_execution_seconds` | histogram | kind |
//! | `bulkhead_api_errors_total` | counter | status |
//! | `bulkhead_egress_refused_total` | counter | |
//! | `bulkhead_sandbox_egress_refused` | gauge (refusals so far) | sandbox_id (live sandboxes only) |
//! | `bulkhead_envd_restarts_total` | counter | |
//! | `bulkhead_mount_requests_total`, `_retries_total`, `_errors_total` | counter | mount |
//! | `bulkhead_mount_bytes_total` | counter | mount, direction (`up`, `down`) |
//! | `bulkhead_mount_inodes` | gauge (held now) | mount |
//!
//! The mount figures come from the storage mounts' own processes (`bulkhead mount
//! --stats-file`, one file per mount in the data dir's `mounts/`, written every 2 s); a mount
//! process that restarts starts from 0, which is taken as a counter reset.
//!
//! The test that scrapes and parses it: `tests/sdk/test_metrics.py`.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::manager::Manager;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TemplateState {
    template: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TemplateLabel {
    template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CreateOutcome {
    template: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SandboxLabel {
    sandbox_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabel {
    mount: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountBytes {
    mount: String,
    direction: &'static str,
}

/// The name ending of a mount's stats file in the mounts directory (`<name>` + this).
pub const MOUNT_STATS_SUFFIX: &str = ".stats.json";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 1 ms to about 65 s.
fn short_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Seconds from 1 s to about 68 min (builds).
fn long_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// How a create ended.
#[derive(Debug, Clone, Copy)]
pub enum CreateResult {
    /// Handed over; `pool_hit` when a warm sandbox was taken.
    Created {
        /// A warm sandbox was taken from the pool.
        pool_hit: bool,
    },
    /// Refused by admission control (429).
    Refused,
    /// A bad request (unknown template, bad value).
    Invalid,
    /// Anything else (no capacity, an internal failure).
    Failed,
}

/// What kind of execution a proxied request is.
#[derive(Debug, Clone, Copy)]
pub enum ExecutionKind {
    /// `POST /execute` on the code interpreter.
    RunCode,
    /// envd's `process.Process/Start`.
    Command,
}

impl ExecutionKind {
    fn label(self) -> &'static str {
        match self {
            Self::RunCode => "run_code",
            Self::Command => "command",
        }
    }
}

/// The server's counters and histograms.
pub struct ServerMetrics {
    registry: Registry,
    sandboxes: Family<TemplateState, Gauge>,
    pool_ready: Family<TemplateLabel, Gauge>,
    creates: Family<CreateOutcome, Counter>,
    create_seconds: HistogramFamily<PoolLabel>,
    builds: Family<OutcomeLabel, Counter>,
    build_seconds: Histogram,
    executions: Family<KindLabel, Counter>,
    execution_seconds: HistogramFamily<KindLabel>,
    api_errors: Family<StatusLabel, Counter>,
    egress_refused: Counter,
    envd_restarts: Counter,
    sandbox_refused: Family<SandboxLabel, Gauge>,
    mount_requests: Family<MountLabel, Counter>,
    mount_retries: Family<MountLabel, Counter>,
    mount_errors: Family<MountLabel, Counter>,
    mount_bytes: Family<MountBytes, Counter>,
    mount_inodes: Family<MountLabel, Gauge>,
    /// Where the mounts' stats files are, once the server says.
    mounts_dir: std::sync::OnceLock<std::path::PathBuf>,
    /// The last value read per (mount, figure), to add only what is new.
    mount_seen: std::sync::Mutex<std::collections::HashMap<(String, &'static str), u64>>,
    /// One scrape at a time (the state gauges are cleared and refilled).
    scrape: std::sync::Mutex<()>,
}

/// The process's metrics.
pub static METRICS: LazyLock<ServerMetrics> = LazyLock::new(ServerMetrics::new);

impl ServerMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("bulkhead");
        let sandboxes = Family::<TemplateState, Gauge>::default();
        let pool_ready = Family::<TemplateLabel, Gauge>::default();
        let creates = Family::<CreateOutcome, Counter>::default();
        let create_seconds: HistogramFamily<PoolLabel> =
            Family::new_with_constructor(short_histogram);
        let builds = Family::<OutcomeLabel, Counter>::default();
        let build_seconds = long_histogram();
        let executions = Family::<KindLabel, Counter>::default();
        let execution_seconds: HistogramFamily<KindLabel> =
            Family::new_with_constructor(short_histogram);
        let api_errors = Family::<StatusLabel, Counter>::default();
        let egress_refused = Counter::default();
        let envd_restarts = Counter::default();
        let sandbox_refused = Family::<SandboxLabel, Gauge>::default();
        registry.register(
            "sandbox_egress_refused",
            "Connections of each live sandbox refused so far (firewall and egress proxy)",
            sandbox_refused.clone(),
        );
        let mount_requests = Family::<MountLabel, Counter>::default();
        let mount_retries = Family::<MountLabel, Counter>::default();
        let mount_errors = Family::<MountLabel, Counter>::default();
        let mount_bytes = Family::<MountBytes, Counter>::default();
        let mount_inodes = Family::<MountLabel, Gauge>::default();
        registry.register(
            "mount_inodes",
            "Inodes each storage mount holds now (what the kernel has not forgotten)",
            mount_inodes.clone(),
        );
        registry.register(
            "mount_requests",
            "S3 requests of the storage mounts (each attempt)",
            mount_requests.clone(),
        );
        registry.register(
            "mount_retries",
            "S3 attempts the storage mounts repeated after a transient failure",
            mount_retries.clone(),
        );
        registry.register(
            "mount_errors",
            "S3 requests of the storage mounts that failed in the end",
            mount_errors.clone(),
        );
        registry.register(
            "mount_bytes",
            "Object bytes the storage mounts sent (up) and received (down)",
            mount_bytes.clone(),
        );
        registry.register(
            "sandboxes",
            "Sandboxes by template and state",
            sandboxes.clone(),
        );
        registry.register(
            "pool_ready",
            "Warm sandboxes ready for hand-over, by template",
            pool_ready.clone(),
        );
        registry.register(
            "sandbox_creates",
            "Sandbox creates by template and outcome",
            creates.clone(),
        );
        registry.register(
            "sandbox_create_seconds",
            "Time of a successful create, by whether a warm sandbox was taken",
            create_seconds.clone(),
        );
        registry.register(
            "template_builds",
            "Template builds by outcome",
            builds.clone(),
        );
        registry.register(
            "template_build_seconds",
            "Time of a template build",
            build_seconds.clone(),
        );
        registry.register(
            "executions",
            "Code cells (run_code) and commands started through the edge proxy",
            executions.clone(),
        );
        registry.register(
            "execution_seconds",
            "Time from an execution's request to the end of its streamed answer",
            execution_seconds.clone(),
        );
        registry.register(
            "api_errors",
            "API answers with a status of 400 or more, by status",
            api_errors.clone(),
        );
        registry.register(
            "egress_refused",
            "Sandbox connections refused, by the firewall (logged ones) and the egress proxy",
            egress_refused.clone(),
        );
        registry.register(
            "envd_restarts",
            "envd processes that died in a running sandbox and were started again",
            envd_restarts.clone(),
        );
        Self {
            registry,
            sandboxes,
            pool_ready,
            creates,
            create_seconds,
            builds,
            build_seconds,
            executions,
            execution_seconds,
            api_errors,
            egress_refused,
            envd_restarts,
            sandbox_refused,
            mount_requests,
            mount_retries,
            mount_errors,
            mount_bytes,
            mount_inodes,
            mounts_dir: std::sync::OnceLock::new(),
            mount_seen: std::sync::Mutex::new(std::collections::HashMap::new()),
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// Counts an envd started again after it died in a running sandbox.
    pub fn envd_restart(&self) {
        self.envd_restarts.inc();
    }

    /// Counts a create of `template` (an id the server knows, or `None`) that took `secs`.
    pub fn create(&self, template: Option<&str>, result: CreateResult, secs: f64) {
        let outcome = match result {
            CreateResult::Created { pool_hit } => {
                self.create_seconds
                    .get_or_create(&PoolLabel {
                        pool: if pool_hit { "hit" } else { "miss" },
                    })
                    .observe(secs);
                "created"
            }
            CreateResult::Refused => "refused",
            CreateResult::Invalid => "invalid",
            CreateResult::Failed => "failed",
        };
        self.creates
            .get_or_create(&CreateOutcome {
                template: template.unwrap_or("(unknown)").to_string(),
                outcome,
            })
            .inc();
    }

    /// Counts a build that took `secs`.
    pub fn build(&self, ok: bool, secs: f64) {
        self.builds
            .get_or_create(&OutcomeLabel {
                outcome: if ok { "built" } else { "failed" },
            })
            .inc();
        self.build_seconds.observe(secs);
    }

    /// Counts an execution as it starts; the returned guard records its time when dropped.
    pub fn execution(&'static self, kind: ExecutionKind) -> ExecutionTimer {
        self.executions
            .get_or_create(&KindLabel { kind: kind.label() })
            .inc();
        ExecutionTimer {
            kind,
            start: Instant::now(),
        }
    }

    /// Reads the storage mounts' stats files in `dir` at every scrape (set once).
    pub fn watch_mounts(&self, dir: std::path::PathBuf) {
        let _ = self.mounts_dir.set(dir);
    }

    /// Adds what each mount's stats file counted since the last scrape.
    fn read_mounts(&self) {
        let Some(dir) = self.mounts_dir.get() else {
            return;
        };
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut seen = self.mount_seen.lock().unwrap_or_else(|p| p.into_inner());
        for e in rd.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(MOUNT_STATS_SUFFIX) else {
                continue;
            };
            let Some(st) = bulkhead_s3fs::stats::MountStats::read(&e.path()) else {
                continue;
            };
            let mut add = |figure: &'static str, now: u64, counter: &Counter| {
                let last = seen.entry((name.to_string(), figure)).or_insert(0);
                // Fewer than last time: the mount process restarted from 0.
                let new = if now >= *last { now - *last } else { now };
                *last = now;
                counter.inc_by(new);
            };
            let m = MountLabel {
                mount: name.to_string(),
            };
            add(
                "requests",
                st.requests,
                &self.mount_requests.get_or_create(&m),
            );
            add("retries", st.retries, &self.mount_retries.get_or_create(&m));
            add("errors", st.errors, &self.mount_errors.get_or_create(&m));
            self.mount_inodes
                .get_or_create(&m)
                .set(i64::try_from(st.inodes).unwrap_or(i64::MAX));
            for (direction, now) in [("up", st.bytes_uploaded), ("down", st.bytes_downloaded)] {
                let c = self
                    .mount_bytes
                    .get_or_create(&MountBytes {
                        mount: name.to_string(),
                        direction,
                    })
                    .clone();
                add(direction, now, &c);
            }
        }
    }

    /// Counts an API answer with status `status` (400 or more).
    pub fn api_error(&self, status: u16) {
        self.api_errors.get_or_create(&StatusLabel { status }).inc();
    }

    /// The OpenMetrics text of everything, with the state read from `manager` now.
    pub fn render(&self, manager: &Manager) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.sandboxes.clear();
        self.pool_ready.clear();
        let configs = manager.template_configs();
        let owned: std::collections::HashSet<&str> = configs
            .iter()
            .filter(|t| t.owner.is_some())
            .map(|t| t.id.as_str())
            .collect();
        for t in configs.iter().filter(|t| t.owner.is_none()) {
            // Every template of the server's shows, with 0 running.
            self.sandboxes
                .get_or_create(&TemplateState {
                    template: t.id.clone(),
                    state: "running",
                })
                .set(0);
        }
        for e in manager.entries() {
            let rec = e.record();
            let state = match e.status() {
                crate::manager::SandboxStatus::Running => "running",
                crate::manager::SandboxStatus::Paused => "paused",
            };
            let template = if owned.contains(rec.template_id.as_str()) {
                "(team)".to_string()
            } else {
                rec.template_id
            };
            self.sandboxes
                .get_or_create(&TemplateState { template, state })
                .inc();
        }
        for (template, ready) in manager.pool_sizes() {
            self.pool_ready
                .get_or_create(&TemplateLabel { template })
                .set(i64::try_from(ready).unwrap_or(i64::MAX));
        }
        self.read_mounts();
        self.sandbox_refused.clear();
        for (sandbox_id, n) in bulkhead_net::refused_by_sandbox() {
            self.sandbox_refused
                .get_or_create(&SandboxLabel { sandbox_id })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let refused = bulkhead_net::refused_connections();
        let seen = self.egress_refused.get();
        if refused > seen {
            self.egress_refused.inc_by(refused - seen);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Records an execution's time when dropped (its answer ended, or the client left).
pub struct ExecutionTimer {
    kind: ExecutionKind,
    start: Instant,
}

impl Drop for ExecutionTimer {
    fn drop(&mut self) {
        METRICS
            .execution_seconds
            .get_or_create(&KindLabel {
                kind: self.kind.label(),
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_in_the_openmetrics_text_format() {
        let m = ServerMetrics::new();
        m.create(
            Some("base"),
            CreateResult::Created { pool_hit: true },
            0.002,
        );
        m.create(None, CreateResult::Invalid, 0.0);
        m.build(true, 3.0);
        m.api_error(404);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap_or_default();
        for want in [
            "bulkhead_sandbox_creates_total{template=\"base\",outcome=\"created\"} 1",
            "bulkhead_sandbox_creates_total{template=\"(unknown)\",outcome=\"invalid\"} 1",
            "bulkhead_sandbox_create_seconds_count{pool=\"hit\"} 1",
            "bulkhead_template_builds_total{outcome=\"built\"} 1",
            "bulkhead_api_errors_total{status=\"404\"} 1",
            "# EOF",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
    }
}
