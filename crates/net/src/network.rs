//! The host's sandbox network: the pool, the firewall, and one attachment per sandbox.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cidr::Cidr;
use crate::config::NetConfig;
use crate::error::NetError;
use crate::firewall::{Firewall, PairElem, SetChange};
use crate::inside;
use crate::link;
use crate::netlink::Socket;
use crate::policy::Policy;
use crate::pool::Pool;
use crate::proxy::{EgressProxy, RuleMap, Rules};

/// A sandbox's network as set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Host-side link name.
    pub link: String,
    /// The sandbox's address (on its `eth0`).
    pub address: Ipv4Addr,
    /// The host end: the sandbox's gateway and resolver.
    pub gateway: Ipv4Addr,
    /// The policy in force.
    pub policy: Policy,
    /// How long the setup took.
    pub setup_time: Duration,
}

#[derive(Debug)]
struct Attached {
    slot: usize,
    /// The init's pid and the inode of its network namespace: the sandbox is gone when they
    /// no longer match (pids are reused).
    pid: i32,
    netns_ino: u64,
    info: Attachment,
    allow: Vec<PairElem>,
    deny: Vec<PairElem>,
}

/// Sandbox networking on this host. Thread-safe; every method blocks for a few system calls.
#[derive(Debug)]
pub struct Network {
    pool: Mutex<Pool>,
    net: Cidr,
    firewall: Firewall,
    sandboxes: Mutex<HashMap<String, Attached>>,
    /// Domain rules per sandbox address, read by the egress proxy.
    rules: Option<RuleMap>,
    denied: Vec<Cidr>,
    /// Detaches in progress, and a signal when one gave its address back: a sandbox's
    /// DELETE answers before its network is gone (the kernel's veth teardown takes ~30 ms),
    /// so a create right after it may find the pool full for that long.
    detaching: Mutex<usize>,
    released: Condvar,
}

/// How long an attach waits for a detach in progress when the pool is full.
const RELEASE_WAIT: Duration = Duration::from_secs(3);

fn elems(addr: Ipv4Addr, nets: &[Cidr]) -> Vec<PairElem> {
    nets.iter()
        .map(|n| PairElem {
            sandbox: addr,
            dest: *n,
        })
        .collect()
}

/// The `proxied` element of a sandbox whose policy has domain rules.
fn proxied(addr: Ipv4Addr, policy: &Policy) -> Vec<Ipv4Addr> {
    if policy.allow_domains.is_empty() {
        Vec::new()
    } else {
        vec![addr]
    }
}

/// Logs and counts one refusal the firewall reported.
fn log_refusal(r: crate::nflog::Refused) {
    let id = crate::refusals::sandbox_at(r.source);
    crate::refusals::count(id.as_deref());
    tracing::info!(
        sandbox_id = id.as_deref().unwrap_or(""),
        source = %r.source,
        destination = %r.destination,
        port = r.port.unwrap_or(0),
        protocol = r.protocol,
        rule = %r.rule,
        "egress connection refused"
    );
}

impl Network {
    /// Claims the pool, removes links a previous run of this pool left, installs the
    /// firewall table (replacing an old one), and enables IPv4 forwarding.
    ///
    /// Errors: [`NetError::PoolOverlap`] naming the route, [`NetError::NoPool`],
    /// [`NetError::Nftables`] when the kernel refuses the table.
    pub fn new(config: &NetConfig) -> Result<Self, NetError> {
        let pool = Pool::claim(config.pool)?;
        let net = pool.net;
        let mut sock = Socket::route().map_err(|source| NetError::Host {
            step: "opening a netlink socket",
            source,
        })?;
        for name in pool.existing_links() {
            let _ = link::delete_link(&mut sock, &name);
        }
        // Refusals are logged through NFLOG when the kernel has it; without it the same
        // rules refuse, unlogged.
        let group = crate::nflog::group_of(&crate::firewall::table_name(&pool.prefix));
        let install = |log: Option<u16>| {
            Firewall::install(
                &net,
                &pool.prefix,
                &config.denied,
                config.dns_port,
                config.proxy_port,
                log,
            )
        };
        let log = match crate::nflog::bind(group) {
            Ok(sock) => Some(sock),
            Err(e) => {
                tracing::warn!(error = %e, "no NFLOG on this host: refused sandbox connections are refused but not logged");
                None
            }
        };
        let (firewall, log) = match install(log.as_ref().map(|_| group)) {
            Ok(f) => (f, log),
            Err(e) if log.is_some() => {
                tracing::warn!(error = %e, "the firewall refused the log rules: refused sandbox connections are refused but not logged");
                (install(None).map_err(NetError::Nftables)?, None)
            }
            Err(e) => return Err(NetError::Nftables(e)),
        };
        if let Some(sock) = log {
            let spawned = std::thread::Builder::new()
                .name("bulkhead-nflog".into())
                .spawn(move || crate::nflog::read_loop(&sock, &log_refusal));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "the refusal log reader did not start");
            }
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|source| NetError::Host {
            step: "enabling IPv4 forwarding",
            source,
        })?;
        tracing::info!(pool = %net, "sandbox network ready");
        Ok(Self {
            pool: Mutex::new(pool),
            net,
            firewall,
            sandboxes: Mutex::new(HashMap::new()),
            rules: config.proxy_port.map(|_| RuleMap::default()),
            denied: config.denied.iter().copied().chain([net]).collect(),
            detaching: Mutex::new(0),
            released: Condvar::new(),
        })
    }

    /// Hands `proxy` the rules it enforces and the ranges it must never connect to. Call
    /// before running it; a network without a proxy port ignores it.
    pub fn connect_proxy(&self, proxy: &mut EgressProxy) {
        if let Some(r) = &self.rules {
            proxy.rules = r.clone();
            proxy.set_denied(self.denied.clone());
        }
    }

    /// True when domain rules are enforced (an egress proxy is configured).
    pub fn domain_rules(&self) -> bool {
        self.rules.is_some()
    }

    /// Tells the egress proxy the domain rules of sandbox `id` at `addr` (none: forget it).
    fn set_rules(&self, id: &str, addr: Ipv4Addr, policy: Option<&Policy>) {
        if let Some(table) = &self.rules {
            let rules = policy
                .filter(|p| !p.allow_domains.is_empty())
                .map(|p| Rules {
                    sandbox_id: id.to_string(),
                    domains: p.allow_domains.clone(),
                    allow: p.allow_out.clone(),
                });
            table.set(addr, rules);
        }
    }

    /// The address pool in use.
    pub fn pool(&self) -> Cidr {
        self.net
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attached>> {
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives sandbox `id` (init process `pid`) a network: a veth pair with `eth0` created
    /// directly in its namespace, an address, a default route via the host end, and
    /// `policy`. On error nothing of it is left. [`NetError::PoolExhausted`] when no address
    /// is free.
    pub fn attach(&self, id: &str, pid: i32, policy: Policy) -> Result<Attachment, NetError> {
        let started = Instant::now();
        let mut slot = self.lock_pool().take();
        if slot.is_none() && self.reap() > 0 {
            slot = self.lock_pool().take();
        }
        if slot.is_none() {
            slot = self.wait_for_release();
        }
        let (slot, name, gateway, address) = {
            let pool = self.lock_pool();
            let slot = slot.ok_or_else(|| NetError::PoolExhausted(self.net.to_string()))?;
            let (gw, addr) = pool.addresses(slot);
            (slot, pool.link_name(slot), gw, addr)
        };
        let err = |step: &'static str| {
            let id = id.to_string();
            move |source| NetError::Setup { id, step, source }
        };
        let result = (|| {
            let netns = File::open(format!("/proc/{pid}/ns/net"))
                .map_err(err("opening the network namespace"))?;
            let ino = std::os::unix::fs::MetadataExt::ino(
                &netns
                    .metadata()
                    .map_err(err("opening the network namespace"))?,
            );
            let mut sock = Socket::route().map_err(err("opening a netlink socket"))?;
            link::create_veth(
                &mut sock,
                &name,
                inside::PEER,
                std::os::fd::AsFd::as_fd(&netns),
            )
            .map_err(err("creating the veth pair"))?;
            let index = link::index_of(&name).map_err(err("finding the host link"))?;
            // Strict reverse-path filtering: a sandbox cannot send with another's address.
            std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "1")
                .map_err(err("enabling reverse-path filtering"))?;
            link::add_address(&mut sock, index, gateway, 31)
                .map_err(err("addressing the host end"))?;
            inside::configure(&netns, address, 31, gateway)
                .map_err(err("configuring the sandbox interface"))?;
            if !policy.allow_domains.is_empty() && self.rules.is_none() {
                return Err(NetError::Setup {
                    id: id.to_string(),
                    step: "applying domain rules without an egress proxy",
                    source: std::io::Error::from(std::io::ErrorKind::Unsupported),
                });
            }
            let allow = elems(address, &policy.allow_out);
            let deny = elems(address, &policy.effective_deny());
            self.set_rules(id, address, Some(&policy));
            self.firewall
                .apply(&SetChange {
                    add_allow: allow.clone(),
                    add_deny: deny.clone(),
                    add_proxied: proxied(address, &policy),
                    ..SetChange::default()
                })
                .map_err(err("adding the firewall elements"))?;
            Ok((allow, deny, ino))
        })();
        match result {
            Ok((allow, deny, netns_ino)) => {
                let info = Attachment {
                    link: name,
                    address,
                    gateway,
                    policy,
                    setup_time: started.elapsed(),
                };
                tracing::debug!(sandbox_id = %id, address = %address, elapsed_us = info.setup_time.as_micros() as u64, "sandbox network attached");
                crate::refusals::register(address, id);
                self.lock_map().insert(
                    id.to_string(),
                    Attached {
                        slot,
                        pid,
                        netns_ino,
                        info: info.clone(),
                        allow,
                        deny,
                    },
                );
                Ok(info)
            }
            Err(e) => {
                self.set_rules(id, address, None);
                if let Ok(mut sock) = Socket::route() {
                    let _ = link::delete_link(&mut sock, &name);
                }
                self.lock_pool().give_back(slot);
                Err(e)
            }
        }
    }

    /// Writes `/etc/resolv.conf` in the mount namespace of `pid` (a sandbox whose root is
    /// host uid `root_uid`), naming the sandbox's gateway, where the firewall sends every DNS
    /// query to the forwarder. Paths resolve against the sandbox's root; a symlink there is
    /// replaced, never followed; a root without `/etc` is left alone.
    pub fn write_resolv_conf(
        &self,
        id: &str,
        pid: i32,
        root_uid: u32,
        attachment: &Attachment,
    ) -> Result<(), NetError> {
        inside::write_resolv_conf(pid, root_uid, attachment.gateway).map_err(|source| {
            NetError::Setup {
                id: id.to_string(),
                step: "writing /etc/resolv.conf",
                source,
            }
        })
    }

    /// Number of elements in the firewall's sets (for leak checks).
    pub fn firewall_elements(&self) -> Result<usize, NetError> {
        self.firewall
            .count_elements()
            .map_err(|source| NetError::Host {
                step: "listing the firewall elements",
                source,
            })
    }

    /// Replaces the policy of sandbox `id` in one atomic firewall batch. Flows the new
    /// policy refuses are reset at their next outgoing packet.
    pub fn set_policy(&self, id: &str, policy: Policy) -> Result<(), NetError> {
        let mut map = self.lock_map();
        let entry = map
            .get_mut(id)
            .ok_or_else(|| NetError::Unknown(id.to_string()))?;
        let addr = entry.info.address;
        if !policy.allow_domains.is_empty() && self.rules.is_none() {
            return Err(NetError::Setup {
                id: id.to_string(),
                step: "applying domain rules without an egress proxy",
                source: std::io::Error::from(std::io::ErrorKind::Unsupported),
            });
        }
        let allow = elems(addr, &policy.allow_out);
        let deny = elems(addr, &policy.effective_deny());
        let (was, now) = (proxied(addr, &entry.info.policy), proxied(addr, &policy));
        // The proxy learns the new rules first: a connection it sees in between is judged
        // by the new policy, as the firewall's packets will be after the batch.
        self.set_rules(id, addr, Some(&policy));
        let change = SetChange {
            remove_proxied: was.iter().filter(|a| !now.contains(a)).copied().collect(),
            add_proxied: now.iter().filter(|a| !was.contains(a)).copied().collect(),
            remove_allow: entry
                .allow
                .iter()
                .filter(|e| !allow.contains(e))
                .copied()
                .collect(),
            remove_deny: entry
                .deny
                .iter()
                .filter(|e| !deny.contains(e))
                .copied()
                .collect(),
            add_allow: allow
                .iter()
                .filter(|e| !entry.allow.contains(e))
                .copied()
                .collect(),
            add_deny: deny
                .iter()
                .filter(|e| !entry.deny.contains(e))
                .copied()
                .collect(),
        };
        self.firewall
            .apply(&change)
            .map_err(|source| NetError::Setup {
                id: id.to_string(),
                step: "replacing the firewall elements",
                source,
            })?;
        entry.allow = allow;
        entry.deny = deny;
        entry.info.policy = policy;
        Ok(())
    }

    /// The network of sandbox `id`, if it has one.
    pub fn get(&self, id: &str) -> Option<Attachment> {
        self.lock_map().get(id).map(|a| a.info.clone())
    }

    /// Removes everything sandbox `id` had: its links (and with them addresses and routes),
    /// its set elements, its conntrack entries, its address. Idempotent; a sandbox without network is a no-op.
    pub fn detach(&self, id: &str) {
        self.announce_detach();
        self.detach_announced(id);
    }

    /// Says that a [`Network::detach_announced`] is about to run on another thread: until it
    /// has given the address back, an attach that finds the pool full waits for it instead of
    /// failing.
    pub fn announce_detach(&self) {
        *self.detaching.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    /// [`Network::detach`] after [`Network::announce_detach`].
    pub fn detach_announced(&self, id: &str) {
        self.detach_inner(id);
        let mut n = self.detaching.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.released.notify_all();
    }

    fn detach_inner(&self, id: &str) {
        let Some(entry) = self.lock_map().remove(id) else {
            return;
        };
        crate::refusals::forget(entry.info.address, id);
        self.set_rules(id, entry.info.address, None);
        let change = SetChange {
            remove_allow: entry.allow,
            remove_deny: entry.deny,
            remove_proxied: proxied(entry.info.address, &entry.info.policy),
            ..SetChange::default()
        };
        if let Err(e) = self.firewall.apply(&change) {
            tracing::warn!(sandbox_id = %id, error = %e, "removing firewall elements failed");
        }
        match Socket::route().and_then(|mut s| link::delete_link(&mut s, &entry.info.link)) {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(sandbox_id = %id, error = %e, "removing the sandbox link failed")
            }
        }
        // After the link is gone no new entry can appear for this address.
        if let Err(e) = crate::conntrack::flush_source(entry.info.address) {
            tracing::warn!(sandbox_id = %id, error = %e, "flushing conntrack entries failed");
        }
        self.lock_pool().give_back(entry.slot);
    }

    /// With the pool full: waits (at most [`RELEASE_WAIT`]) while detaches are in progress,
    /// taking the first address one gives back. `None` when none is, or none came back.
    fn wait_for_release(&self) -> Option<usize> {
        let deadline = Instant::now() + RELEASE_WAIT;
        loop {
            if let Some(slot) = self.lock_pool().take() {
                return Some(slot);
            }
            let n = self.detaching.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if *n == 0 || now >= deadline {
                drop(n);
                return self.lock_pool().take();
            }
            let _ = self
                .released
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Detaches every sandbox whose init has ended without a [`Network::detach`] (one
    /// destroyed by a path that did not know of its network). Returns how many.
    pub fn reap(&self) -> usize {
        let dead: Vec<String> = self
            .lock_map()
            .iter()
            .filter(|(_, a)| {
                std::fs::metadata(format!("/proc/{}/ns/net", a.pid))
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m) != a.netns_ino)
                    .unwrap_or(true)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            self.detach(id);
        }
        dead.len()
    }

    /// Number of sandboxes with a network.
    pub fn attached(&self) -> usize {
        self.lock_pool().in_use()
    }

    /// Host links of this pool that exist now (for leak checks).
    pub fn links(&self) -> Vec<String> {
        self.lock_pool().existing_links()
    }

    /// Removes the firewall table (a clean stop). Sandboxes keep their links until they end.
    pub fn shutdown(&self) {
        self.firewall.uninstall();
    }
}
