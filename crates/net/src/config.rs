//! Settings of the sandbox network.

use crate::cidr::Cidr;

/// Destinations no sandbox policy can open: "this network", RFC 1918, CGNAT, loopback,
/// link-local (cloud metadata included), IETF protocol assignments, multicast and reserved.
/// The host's own addresses are refused separately (input hook), and all IPv6.
pub const ALWAYS_DENIED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Settings of the sandbox network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The address pool; `None` = the first free /20 of `10.208.0.0/12`, from 10.213.0.0/20 on.
    pub pool: Option<Cidr>,
    /// Destinations always refused (defaults to [`ALWAYS_DENIED`]). The pool itself is
    /// always added, so sandboxes never reach each other.
    pub denied: Vec<Cidr>,
    /// UDP and TCP port of the DNS forwarder on the host (see [`crate::DnsForwarder`]).
    pub dns_port: u16,
    /// Port of the egress proxy ([`crate::EgressProxy`]); `None` = domain rules refused.
    pub proxy_port: Option<u16>,
}

impl NetConfig {
    /// The defaults, with the forwarder on `dns_port`.
    pub fn new(dns_port: u16) -> Self {
        Self {
            pool: None,
            denied: ALWAYS_DENIED
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            dns_port,
            proxy_port: None,
        }
    }
}
