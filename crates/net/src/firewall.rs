//! Bulkhead's nftables table: installed once at start, changed afterwards only through set
//! elements (one atomic batch per sandbox change, never a ruleset reload).
//!
//! ```text
//! table inet bulkhead-<tag> {        # one per address pool; "bhv" below = the pool's link prefix
//!   set allow { type ipv4_addr . ipv4_addr; flags interval; }   # sandbox . destination
//!   set deny  { type ipv4_addr . ipv4_addr; flags interval; }
//!   chain refuse { meta l4proto tcp reject with tcp reset; reject with icmpx admin-prohibited }
//!   chain refuse_<rule> { limit rate 50/second log group <G> prefix "bulkhead:<rule>"; goto refuse }
//!                                    # one per rule below, when NFLOG is there (nflog.rs)
//!   chain forward { hook forward
//!     iifname "bhv*" goto from_sandbox
//!     oifname "bhv*" ct state established,related accept
//!     oifname "bhv*" goto refuse }
//!   chain from_sandbox {
//!     meta nfproto != ipv4 goto refuse_not-ipv4
//!     ip daddr <each always-denied range> goto refuse_always-denied
//!     ip daddr <the pool> goto refuse_other-sandbox
//!     ip saddr . ip daddr @allow accept
//!     ip saddr . ip daddr @deny goto refuse_deny-out
//!     accept }
//!   chain input { hook input
//!     iifname "bhv*" udp/tcp dport <dns> accept; iifname "bhv*" tcp dport <proxy> accept
//!     iifname "bhv*" goto refuse_host
//!     udp/tcp dport <dns> drop }               # the forwarder answers sandboxes only
//!   set proxied { type ipv4_addr; }                              # sandboxes with domain rules
//!   chain prerouting { nat hook prerouting: iifname "bhv*" udp/tcp dport 53 redirect to :<dns>
//!     iifname "bhv*" ip saddr @proxied tcp dport {80, 443} redirect to :<proxy> }
//!   chain postrouting { nat hook postrouting: ip saddr <pool> oifname != "bhv*" masquerade }
//! }
//! ```
//!
//! The policy is checked on every packet a sandbox sends, not only on new connections, so a
//! tightened policy resets open flows at their next packet.

use std::io;
use std::sync::Mutex;

use crate::cidr::Cidr;
use crate::netlink::Socket;
use crate::nft::{self, FAMILY_INET as F, Rule};

const ALLOW: &str = "allow";
const DENY: &str = "deny";
const PROXIED: &str = "proxied";
const ALLOW_ID: u32 = 1;
const DENY_ID: u32 = 2;
const PROXIED_ID: u32 = 3;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const NFPROTO_IPV4: u8 = 2;

/// The rules that refuse, each with a chain of its own when refusals are logged (its name is
/// the log prefix after `bulkhead:`).
pub(crate) const REFUSE_RULES: [&str; 5] = [
    "not-ipv4",
    "always-denied",
    "other-sandbox",
    "deny-out",
    "host",
];

/// The firewall: one netfilter socket, used under a lock.
#[derive(Debug)]
pub(crate) struct Firewall {
    sock: Mutex<Socket>,
    table: String,
}

/// The table's name for a pool's link prefix.
pub(crate) fn table_name(prefix: &str) -> String {
    format!("bulkhead-{}", prefix.trim_end_matches('-'))
}

/// One element of the `allow`/`deny` sets: a sandbox address and a destination range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PairElem {
    pub sandbox: std::net::Ipv4Addr,
    pub dest: Cidr,
}

impl PairElem {
    fn keys(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let s = self.sandbox.octets();
        let mut start = s.to_vec();
        start.extend_from_slice(&self.dest.first().octets());
        let mut end = s.to_vec();
        end.extend_from_slice(&self.dest.last().octets());
        (start, Some(end))
    }
}

/// A set change: elements to remove and to add.
#[derive(Debug, Default)]
pub(crate) struct SetChange {
    pub remove_allow: Vec<PairElem>,
    pub remove_deny: Vec<PairElem>,
    pub add_allow: Vec<PairElem>,
    pub add_deny: Vec<PairElem>,
    /// Sandboxes whose ports 80/443 go to the egress proxy.
    pub remove_proxied: Vec<std::net::Ipv4Addr>,
    pub add_proxied: Vec<std::net::Ipv4Addr>,
}

impl SetChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.remove_allow.is_empty()
            && self.remove_deny.is_empty()
            && self.add_allow.is_empty()
            && self.add_deny.is_empty()
            && self.remove_proxied.is_empty()
            && self.add_proxied.is_empty()
    }
}

fn iifname(r: Rule, prefix: &str) -> Rule {
    r.meta(nft::META_IIFNAME, nft::REG32_0)
        .cmp(nft::REG32_0, nft::CMP_EQ, prefix.as_bytes())
}

fn l4(r: Rule, proto: u8) -> Rule {
    r.meta(nft::META_L4PROTO, nft::REG32_1)
        .cmp(nft::REG32_1, nft::CMP_EQ, &[proto])
}

fn dport(r: Rule, port: u16) -> Rule {
    r.payload(nft::BASE_TRANSPORT, 2, 2, nft::REG32_1).cmp(
        nft::REG32_1,
        nft::CMP_EQ,
        &port.to_be_bytes(),
    )
}

fn ip_in(r: Rule, offset: u32, net: &Cidr) -> Rule {
    r.payload(nft::BASE_NETWORK, offset, 4, nft::REG32_0)
        .and(nft::REG32_0, &net.mask().octets())
        .cmp(nft::REG32_0, nft::CMP_EQ, &net.first().octets())
}

impl Firewall {
    /// Replaces any previous Bulkhead table with a fresh one (empty sets), in one batch.
    /// The table is named `bulkhead-<tag>` after the pool's link prefix, so servers with
    /// different pools each have their own.
    pub(crate) fn install(
        pool: &Cidr,
        prefix: &str,
        denied: &[Cidr],
        dns_port: u16,
        proxy_port: Option<u16>,
        log_group: Option<u16>,
    ) -> io::Result<Self> {
        let mut sock = Socket::netfilter()?;
        let table = table_name(prefix);
        let t = table.as_str();
        // Where a rule refuses: its logging chain, or the plain one without NFLOG.
        let refuse_chains: Vec<String> =
            REFUSE_RULES.iter().map(|r| format!("refuse_{r}")).collect();
        let to = |rule: &str| -> String {
            match log_group {
                Some(_) => format!("refuse_{rule}"),
                None => "refuse".to_string(),
            }
        };
        let mut m = vec![
            nft::new_table(F, t),
            nft::del_table(F, t),
            nft::new_table(F, t),
            nft::new_interval_set(F, t, ALLOW, ALLOW_ID, 2),
            nft::new_interval_set(F, t, DENY, DENY_ID, 2),
            nft::new_set(F, t, PROXIED, PROXIED_ID, 4),
            nft::new_chain(F, t, "refuse", None),
            nft::new_chain(F, t, "from_sandbox", None),
            nft::new_chain(F, t, "forward", Some((nft::HOOK_FORWARD, -10, "filter"))),
            nft::new_chain(F, t, "input", Some((nft::HOOK_INPUT, -10, "filter"))),
            nft::new_chain(
                F,
                t,
                "prerouting",
                Some((nft::HOOK_PREROUTING, -100, "nat")),
            ),
            nft::new_chain(
                F,
                t,
                "postrouting",
                Some((nft::HOOK_POSTROUTING, 100, "nat")),
            ),
        ];
        let rule = |chain: &str| Rule::new(F, t, chain);
        let iifname = |r: Rule| iifname(r, prefix);
        // refuse: an immediate, visible failure for the sender.
        m.push(l4(rule("refuse"), IPPROTO_TCP).reject_tcp_reset().finish());
        m.push(rule("refuse").reject_admin_prohibited().finish());
        // refuse_<rule>: the packet to the log (rate-limited), then refused.
        if let Some(group) = log_group {
            for (r, chain) in REFUSE_RULES.iter().zip(&refuse_chains) {
                m.push(nft::new_chain(F, t, chain, None));
                m.push(
                    rule(chain)
                        .limit(crate::nflog::LOG_RATE, crate::nflog::LOG_RATE as u32 * 2)
                        .log(
                            group,
                            &format!("{}{r}", crate::nflog::PREFIX),
                            crate::nflog::SNAPLEN,
                        )
                        .finish(),
                );
                m.push(rule(chain).verdict(nft::NFT_GOTO, Some("refuse")).finish());
            }
        }
        // forward
        m.push(
            iifname(rule("forward"))
                .verdict(nft::NFT_GOTO, Some("from_sandbox"))
                .finish(),
        );
        let oif = |r: Rule| {
            r.meta(nft::META_OIFNAME, nft::REG32_0).cmp(
                nft::REG32_0,
                nft::CMP_EQ,
                prefix.as_bytes(),
            )
        };
        m.push(
            oif(rule("forward"))
                .ct_state(nft::REG32_1)
                .and(nft::REG32_1, &6u32.to_ne_bytes())
                .cmp(nft::REG32_1, nft::CMP_NEQ, &0u32.to_ne_bytes())
                .verdict(nft::NF_ACCEPT, None)
                .finish(),
        );
        m.push(
            oif(rule("forward"))
                .verdict(nft::NFT_GOTO, Some("refuse"))
                .finish(),
        );
        // from_sandbox
        m.push(
            rule("from_sandbox")
                .meta(nft::META_NFPROTO, nft::REG32_0)
                .cmp(nft::REG32_0, nft::CMP_NEQ, &[NFPROTO_IPV4])
                .verdict(nft::NFT_GOTO, Some(&to("not-ipv4")))
                .finish(),
        );
        let reasons = denied
            .iter()
            .map(|n| (n, "always-denied"))
            .chain(std::iter::once((pool, "other-sandbox")));
        for (net, reason) in reasons {
            m.push(
                ip_in(rule("from_sandbox"), 16, net)
                    .verdict(nft::NFT_GOTO, Some(&to(reason)))
                    .finish(),
            );
        }
        let pair = |r: Rule| {
            r.payload(nft::BASE_NETWORK, 12, 4, nft::REG32_0).payload(
                nft::BASE_NETWORK,
                16,
                4,
                nft::REG32_1,
            )
        };
        m.push(
            pair(rule("from_sandbox"))
                .lookup(ALLOW, ALLOW_ID, nft::REG32_0)
                .verdict(nft::NF_ACCEPT, None)
                .finish(),
        );
        m.push(
            pair(rule("from_sandbox"))
                .lookup(DENY, DENY_ID, nft::REG32_0)
                .verdict(nft::NFT_GOTO, Some(&to("deny-out")))
                .finish(),
        );
        m.push(rule("from_sandbox").verdict(nft::NF_ACCEPT, None).finish());
        // input: sandboxes reach the DNS forwarder and nothing else of the host.
        for proto in [IPPROTO_UDP, IPPROTO_TCP] {
            m.push(
                dport(l4(iifname(rule("input")), proto), dns_port)
                    .verdict(nft::NF_ACCEPT, None)
                    .finish(),
            );
        }
        if let Some(port) = proxy_port {
            m.push(
                dport(l4(iifname(rule("input")), IPPROTO_TCP), port)
                    .verdict(nft::NF_ACCEPT, None)
                    .finish(),
            );
        }
        m.push(
            iifname(rule("input"))
                .verdict(nft::NFT_GOTO, Some(&to("host")))
                .finish(),
        );
        for proto in [IPPROTO_UDP, IPPROTO_TCP] {
            m.push(
                dport(l4(rule("input"), proto), dns_port)
                    .verdict(nft::NF_DROP, None)
                    .finish(),
            );
        }
        // prerouting: every DNS query a sandbox sends, whatever the resolver, goes to ours.
        for proto in [IPPROTO_UDP, IPPROTO_TCP] {
            m.push(
                dport(l4(iifname(rule("prerouting")), proto), 53)
                    .immediate(nft::REG32_0, &dns_port.to_be_bytes())
                    .redirect(nft::REG32_0)
                    .finish(),
            );
        }
        // prerouting: HTTP and HTTPS of sandboxes with domain rules go to the egress proxy.
        if let Some(port) = proxy_port {
            for web in [80u16, 443] {
                m.push(
                    dport(
                        l4(
                            iifname(rule("prerouting"))
                                .meta(nft::META_NFPROTO, nft::REG32_1)
                                .cmp(nft::REG32_1, nft::CMP_EQ, &[NFPROTO_IPV4])
                                .payload(nft::BASE_NETWORK, 12, 4, nft::REG32_0)
                                .lookup(PROXIED, PROXIED_ID, nft::REG32_0),
                            IPPROTO_TCP,
                        ),
                        web,
                    )
                    .immediate(nft::REG32_0, &port.to_be_bytes())
                    .redirect(nft::REG32_0)
                    .finish(),
                );
            }
        }
        // postrouting: NAT for what leaves the host.
        m.push(
            ip_in(
                rule("postrouting")
                    .meta(nft::META_NFPROTO, nft::REG32_1)
                    .cmp(nft::REG32_1, nft::CMP_EQ, &[NFPROTO_IPV4]),
                12,
                pool,
            )
            .meta(nft::META_OIFNAME, nft::REG32_1)
            .cmp(nft::REG32_1, nft::CMP_NEQ, prefix.as_bytes())
            .masquerade()
            .finish(),
        );
        sock.transact(nft::batch(m), false)?;
        Ok(Self {
            sock: Mutex::new(sock),
            table,
        })
    }

    /// Applies `change` atomically: a packet sees either the old or the new elements.
    pub(crate) fn apply(&self, change: &SetChange) -> io::Result<()> {
        if change.is_empty() {
            return Ok(());
        }
        let keys = |v: &[PairElem]| v.iter().map(PairElem::keys).collect::<Vec<_>>();
        let addrs = |v: &[std::net::Ipv4Addr]| {
            v.iter()
                .map(|a| (a.octets().to_vec(), None))
                .collect::<Vec<_>>()
        };
        let mut m = Vec::new();
        for (set, add, elems) in [
            (ALLOW, false, &change.remove_allow),
            (DENY, false, &change.remove_deny),
            (ALLOW, true, &change.add_allow),
            (DENY, true, &change.add_deny),
        ] {
            if !elems.is_empty() {
                m.push(nft::set_elements(F, &self.table, set, add, &keys(elems)));
            }
        }
        for (add, elems) in [(false, &change.remove_proxied), (true, &change.add_proxied)] {
            if !elems.is_empty() {
                m.push(nft::set_elements(
                    F,
                    &self.table,
                    PROXIED,
                    add,
                    &addrs(elems),
                ));
            }
        }
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        sock.transact(nft::batch(m), false)
    }

    /// Number of elements in the `allow` and `deny` sets.
    pub(crate) fn count_elements(&self) -> io::Result<usize> {
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for set in [ALLOW, DENY, PROXIED] {
            n += sock.dump_count(nft::get_set_elements(F, &self.table, set), 3)?;
        }
        Ok(n)
    }

    /// Removes the table (server stop). Errors are ignored: there may be none.
    pub(crate) fn uninstall(&self) {
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let _ = sock.transact(nft::batch(vec![nft::del_table(F, &self.table)]), false);
    }
}
