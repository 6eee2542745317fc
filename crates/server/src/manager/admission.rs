//! Admission control: whether a create may start a sandbox, decided before any work is done,
//! so that one key cannot take the host (or one team the others' share) and a host running
//! short refuses new sandboxes with E2B's 429 instead of failing in the middle of a launch.
//!
//! | rule | default | refused with | test |
//! |---|---|---|---|
//! | sandboxes on the server (running and paused, creates in flight included) | 1,000 | 429 | `admission_limits_refuse_with_429_and_leave_nothing` (serve_api) |
//! | sandboxes of one team | none | 429 naming the limit | same; `api::admission` |
//! | creates per team, per second (token bucket, burst of the same size) | none | 429 | `tests::the_bucket_refills_at_its_rate` |
//! | the host's free memory (`MemAvailable`) | at least 5 % of `MemTotal`, 256 MiB at least | 429 | `tests::host_figures_parse` |
//! | the host's tasks (`/proc/loadavg`) | at most 75 % of `min(pid_max, threads-max)` | 429 | same |
//!
//! The host figures are read at each create (a few small procfs files): cheap, and what the
//! host has now rather than a sum of limits that sandboxes rarely reach. They guard creates;
//! `bulkhead serve` also gives the task budget to the kernel (`Runtime::set_pids_budget`:
//! `pids.max` of the sandboxes' parent cgroup), so sandboxes that fork after admission stop
//! there together (`hostile::sandboxes_together_cannot_take_the_hosts_pids`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bulkhead_store::TeamId;

/// Limits a create must pass (operator settings; `None` = no limit of that kind).
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionConfig {
    /// Sandboxes on the server.
    pub max_sandboxes: Option<usize>,
    /// Sandboxes of one team.
    pub max_per_team: Option<usize>,
    /// Creates per second per team (also the burst).
    pub creates_per_second: Option<f64>,
    /// Refuse when the host's available memory is below this, bytes.
    pub min_free_memory: Option<u64>,
    /// Refuse when the host runs more tasks than this.
    pub max_host_tasks: Option<u64>,
}

impl Default for AdmissionConfig {
    /// The defaults of `bulkhead serve`, from this host's figures.
    fn default() -> Self {
        let host = HostFigures::read();
        Self {
            max_sandboxes: Some(1000),
            max_per_team: None,
            creates_per_second: None,
            min_free_memory: host.as_ref().map(|h| (h.mem_total / 20).max(256 << 20)),
            max_host_tasks: host.as_ref().map(|h| h.task_limit * 3 / 4),
        }
    }
}

/// Why a create was refused (each a 429: the client may retry later).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The server holds its maximum.
    #[error("this server runs its maximum of {0} sandboxes; kill one or try again later")]
    ServerFull(usize),
    /// The team holds its maximum.
    #[error(
        "you have reached the maximum number of concurrent sandboxes ({0}); kill one or try again later"
    )]
    TeamFull(usize),
    /// The team creates faster than its rate.
    #[error("more than {0} sandbox creates per second; slow down and try again")]
    Rate(f64),
    /// The host is short of memory.
    #[error(
        "the host is short of memory ({available_mib} MiB available, {reserve_mib} MiB kept free); try again later"
    )]
    Memory {
        /// MemAvailable, MiB.
        available_mib: u64,
        /// The reserve, MiB.
        reserve_mib: u64,
    },
    /// The host runs too many tasks.
    #[error("the host runs {tasks} tasks, over its budget of {budget}; try again later")]
    Tasks {
        /// Tasks now.
        tasks: u64,
        /// The budget.
        budget: u64,
    },
}

/// The host's figures an admission looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFigures {
    /// `MemTotal`, bytes.
    pub mem_total: u64,
    /// `MemAvailable`, bytes.
    pub mem_available: u64,
    /// Tasks (threads) that exist now.
    pub tasks: u64,
    /// `min(kernel.pid_max, kernel.threads-max)`.
    pub task_limit: u64,
}

impl HostFigures {
    /// Reads them from procfs; `None` when one cannot be read (the checks are then skipped).
    pub fn read() -> Option<Self> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
        let num = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        let (mem_total, mem_available) = parse_meminfo(&meminfo)?;
        Some(Self {
            mem_total,
            mem_available,
            tasks: parse_loadavg_tasks(&loadavg)?,
            task_limit: num("/proc/sys/kernel/pid_max")?.min(num("/proc/sys/kernel/threads-max")?),
        })
    }
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, bytes.
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        let v: u64 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(v << 10)
    };
    Some((kib("MemTotal:")?, kib("MemAvailable:")?))
}

/// The task count of `/proc/loadavg` ("0.1 0.2 0.3 2/345 678": 345).
fn parse_loadavg_tasks(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// A token bucket: `rate` tokens a second, at most `rate` (at least 1) held.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        let cap = rate.max(1.0);
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The admission state of one manager.
#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    /// Creates admitted and not finished, per team (they count against the limits).
    in_flight: Mutex<HashMap<TeamId, usize>>,
    buckets: Mutex<HashMap<TeamId, Bucket>>,
}

/// A create admitted: it counts against the limits until dropped (its sandbox is registered
/// by then, or it failed).
pub(crate) struct Ticket<'a> {
    admission: &'a Admission,
    team: TeamId,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut map = self
            .admission
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.team) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.team);
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            in_flight: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a create of `team`, given the sandboxes registered now (`total`, and `team_count`
    /// of the team's), or says why not.
    pub(crate) fn admit(
        &self,
        team: &TeamId,
        total: usize,
        team_count: usize,
    ) -> Result<Ticket<'_>, Refusal> {
        let c = &self.config;
        if let Some(rate) = c.creates_per_second {
            let now = Instant::now();
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let bucket = buckets.entry(team.clone()).or_insert(Bucket {
                tokens: rate.max(1.0),
                at: now,
            });
            if !bucket.take(rate, now) {
                return Err(Refusal::Rate(rate));
            }
        }
        if let Some(h) = HostFigures::read() {
            if let Some(reserve) = c.min_free_memory
                && h.mem_available < reserve
            {
                return Err(Refusal::Memory {
                    available_mib: h.mem_available >> 20,
                    reserve_mib: reserve >> 20,
                });
            }
            if let Some(budget) = c.max_host_tasks
                && h.tasks > budget
            {
                return Err(Refusal::Tasks {
                    tasks: h.tasks,
                    budget,
                });
            }
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let mine = in_flight.get(team).copied().unwrap_or(0);
        if let Some(max) = c.max_sandboxes
            && total + in_flight.values().sum::<usize>() >= max
        {
            return Err(Refusal::ServerFull(max));
        }
        if let Some(max) = c.max_per_team
            && team_count + mine >= max
        {
            return Err(Refusal::TeamFull(max));
        }
        *in_flight.entry(team.clone()).or_insert(0) += 1;
        Ok(Ticket {
            admission: self,
            team: team.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn team(s: &str) -> TeamId {
        TeamId::new(s)
    }

    fn limits(max: Option<usize>, per_team: Option<usize>) -> AdmissionConfig {
        AdmissionConfig {
            max_sandboxes: max,
            max_per_team: per_team,
            creates_per_second: None,
            min_free_memory: None,
            max_host_tasks: None,
        }
    }

    #[test]
    fn creates_in_flight_count_against_both_limits_until_they_end() {
        let a = Admission::new(limits(Some(3), Some(2)));
        let t1 = a.admit(&team("a"), 0, 0).expect("first");
        let t2 = a.admit(&team("a"), 0, 0).expect("second");
        assert_eq!(a.admit(&team("a"), 0, 0).err(), Some(Refusal::TeamFull(2)));
        let t3 = a.admit(&team("b"), 0, 0).expect("another team");
        assert_eq!(
            a.admit(&team("c"), 0, 0).err(),
            Some(Refusal::ServerFull(3))
        );
        drop((t1, t2, t3));
        assert!(
            a.admit(&team("a"), 1, 1).is_ok(),
            "finished creates no longer count"
        );
        assert_eq!(
            a.admit(&team("a"), 3, 0).err(),
            Some(Refusal::ServerFull(3))
        );
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 2.0,
            at: t0,
        };
        assert!(b.take(2.0, t0) && b.take(2.0, t0), "the burst");
        assert!(!b.take(2.0, t0), "then empty");
        assert!(
            b.take(2.0, t0 + Duration::from_millis(500)),
            "one token in 0.5 s"
        );
        assert!(!b.take(2.0, t0 + Duration::from_millis(500)));
        assert!(b.take(2.0, t0 + Duration::from_secs(60)));
        assert!(
            b.take(2.0, t0 + Duration::from_secs(60)),
            "two held after a long pause"
        );
        assert!(!b.take(2.0, t0 + Duration::from_secs(60)), "and not more");
    }

    #[test]
    fn host_figures_parse() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((24_000_000 << 10, 12_000_000 << 10))
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(
            parse_loadavg_tasks("0.52 0.58 0.59 3/457 12345\n"),
            Some(457)
        );
        assert_eq!(parse_loadavg_tasks("garbage"), None);
        let h = HostFigures::read().expect("this host's figures");
        assert!(h.mem_total >= h.mem_available && h.tasks > 0 && h.task_limit > h.tasks);
    }

    #[test]
    fn a_short_host_refuses() {
        let mut c = limits(None, None);
        c.min_free_memory = Some(u64::MAX);
        let a = Admission::new(c);
        assert!(matches!(
            a.admit(&team("a"), 0, 0).err(),
            Some(Refusal::Memory { .. })
        ));
        let mut c = limits(None, None);
        c.max_host_tasks = Some(0);
        let a = Admission::new(c);
        assert!(matches!(
            a.admit(&team("a"), 0, 0).err(),
            Some(Refusal::Tasks { .. })
        ));
    }
}
