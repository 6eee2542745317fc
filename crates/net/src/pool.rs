//! The sandbox address pool: one /31 per sandbox (host end, sandbox end), a lock file so
//! two servers never share a pool, and the check against the host's routes.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::cidr::Cidr;
use crate::error::NetError;

/// Where pool locks live.
const LOCK_DIR: &str = "/run/bulkhead-net";
/// The range automatic pools are carved from (256 pools of 2048 sandboxes), and the pool
/// tried first: many servers on one host (tests run several at once) each get their own.
pub const AUTO_RANGE: &str = "10.208.0.0/12";
const AUTO_FIRST: &str = "10.213.0.0";
const AUTO_PREFIX: u8 = 20;

/// A claimed pool.
#[derive(Debug)]
pub(crate) struct Pool {
    pub net: Cidr,
    /// Link name prefix owned by this pool: `bh` + 4 hex digits + `-`.
    pub prefix: String,
    used: Vec<bool>,
    next: usize,
    _lock: Flock<File>,
}

/// A 16-bit tag naming the pool in link and table names.
fn tag(net: &Cidr) -> u16 {
    let b = u32::from(net.first());
    let h = (b ^ (b >> 16)).wrapping_mul(0x9e37) ^ u32::from(net.prefix()).wrapping_mul(0x85eb);
    (h ^ (h >> 16)) as u16
}

/// A route of the host: destination, device.
fn host_routes() -> Vec<(Cidr, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // /proc/net/route prints the network-order value as a native integer.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            Some((Cidr::new(dest, prefix)?, f[0].to_string()))
        })
        .collect()
}

impl Pool {
    /// Claims `net`, or (when `None`) the first free /20 of [`AUTO_RANGE`] from 10.213.0.0/20
    /// on (wrapping around). Refuses a pool
    /// that overlaps a host route other than the default route or this pool's own leftover
    /// links, and one another server holds.
    pub(crate) fn claim(net: Option<Cidr>) -> Result<Self, NetError> {
        std::fs::create_dir_all(LOCK_DIR).map_err(|source| NetError::Host {
            step: "creating the pool lock directory",
            source,
        })?;
        match net {
            Some(net) => Self::try_claim(net)?.ok_or_else(|| {
                NetError::NoPool(format!("{net} is used by another bulkhead server"))
            }),
            None => {
                let range: Cidr = AUTO_RANGE
                    .parse()
                    .map_err(|_| NetError::NoPool(format!("bad built-in range {AUTO_RANGE}")))?;
                let step = 1u64 << (32 - AUTO_PREFIX);
                let count = range.size() / step;
                let first = AUTO_FIRST
                    .parse::<Ipv4Addr>()
                    .map(|a| u64::from(u32::from(a) - u32::from(range.first())) / step)
                    .unwrap_or(0);
                let mut last = None;
                for i in 0..count {
                    let at = ((first + i) % count) * step;
                    let Some(net) = range.nth(at).and_then(|a| Cidr::new(a, AUTO_PREFIX)) else {
                        break;
                    };
                    match Self::try_claim(net) {
                        Ok(Some(p)) => return Ok(p),
                        Ok(None) => {}
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    NetError::NoPool(format!(
                        "every /{AUTO_PREFIX} of {AUTO_RANGE} is used by another bulkhead server; set --sandbox-cidr"
                    ))
                }))
            }
        }
    }

    fn try_claim(net: Cidr) -> Result<Option<Self>, NetError> {
        if net.prefix() > 30 || net.prefix() < 12 {
            return Err(NetError::NoPool(format!(
                "{net}: the prefix length must be between 12 and 30"
            )));
        }
        let path = PathBuf::from(LOCK_DIR).join(format!("{}-{}.lock", net.first(), net.prefix()));
        let file = File::create(&path).map_err(|source| NetError::Host {
            step: "creating the pool lock",
            source,
        })?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err(_) => return Ok(None),
        };
        let prefix = format!("bh{:04x}-", tag(&net));
        for (route, device) in host_routes() {
            if route.prefix() == 0 || device.starts_with(&prefix) {
                continue;
            }
            if route.overlaps(&net) {
                return Err(NetError::PoolOverlap {
                    pool: net.to_string(),
                    route: route.to_string(),
                    device,
                });
            }
        }
        let slots = (net.size() / 2) as usize;
        Ok(Some(Self {
            net,
            prefix,
            used: vec![false; slots],
            next: 0,
            _lock: lock,
        }))
    }

    /// A free slot, or `None` when all are taken.
    pub(crate) fn take(&mut self) -> Option<usize> {
        let n = self.used.len();
        for i in 0..n {
            let s = (self.next + i) % n;
            if !self.used[s] {
                self.used[s] = true;
                self.next = (s + 1) % n;
                return Some(s);
            }
        }
        None
    }

    /// Returns a slot.
    pub(crate) fn give_back(&mut self, slot: usize) {
        if let Some(u) = self.used.get_mut(slot) {
            *u = false;
        }
    }

    /// Number of slots in use.
    pub(crate) fn in_use(&self) -> usize {
        self.used.iter().filter(|u| **u).count()
    }

    /// (host end, sandbox end) of `slot`.
    pub(crate) fn addresses(&self, slot: usize) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(self.net.first()) + 2 * slot as u32;
        (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
    }

    /// The host-side link name of `slot`.
    pub(crate) fn link_name(&self, slot: usize) -> String {
        format!("{}{slot:x}", self.prefix)
    }

    /// Host links of this pool that exist now (leftovers of a previous run).
    pub(crate) fn existing_links(&self) -> Vec<String> {
        std::fs::read_dir(Path::new("/sys/class/net"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}
