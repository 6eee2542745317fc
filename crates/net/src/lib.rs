//! Sandbox networking, in-process: a veth pair per sandbox with its peer created directly in
//! the sandbox's network namespace, an address from a pool (one /31 each), a default route
//! via the host end, NAT, an nftables table whose per-sandbox state is set elements only,
//! and a DNS forwarder on the host end.
//!
//! Owns: links, addresses and routes of sandboxes (rtnetlink), the pool's nftables table
//! (nf_tables batches), the pool lock in `/run/bulkhead-net`, the global
//! `net.ipv4.ip_forward` switch, and `/etc/resolv.conf` inside each attached sandbox.
//! Does not own: the sandbox's namespaces (the runtime creates them; this crate is handed
//! the init's pid), nor any policy beyond what [`Policy`] says.
//!
//! Threads: [`Network`] methods block (netlink round trips, a short-lived thread per
//! namespace entry); call them from blocking threads in async code. [`DnsForwarder::run`]
//! is async (tokio). Requires root (CAP_NET_ADMIN, CAP_SYS_ADMIN) on the host.
#![warn(missing_docs)]

mod cidr;
mod config;
mod conntrack;
mod dns;
mod error;
mod firewall;
mod inside;
mod link;
mod netlink;
mod network;
mod nflog;
mod nft;
mod policy;
mod pool;
mod proxy;
mod refusals;

pub use cidr::{Cidr, CidrError};
pub use config::{ALWAYS_DENIED, NetConfig};
pub use dns::{DnsForwarder, parse_resolv_conf};
pub use error::NetError;
pub use network::{Attachment, Network};
pub use policy::{DomainRule, Policy, PolicyError};
pub use pool::AUTO_RANGE;
pub use proxy::EgressProxy;
pub use refusals::{refused_by_sandbox, refused_connections};
