//! The sandbox network of `bulkhead serve`: the DNS forwarder, the egress proxy (domain
//! rules), the address pool and the firewall, set up before the port is bound so that a host
//! that cannot do it fails at once.

use std::sync::Arc;

use anyhow::Context;
use bulkhead_net::{Cidr, DnsForwarder, EgressProxy, NetConfig, Network, parse_resolv_conf};
use bulkhead_server::manager::NetworkSettings;

use super::serve::Args;

/// The network and the two services the server runs for it.
pub(crate) struct SandboxNetwork {
    pub settings: NetworkSettings,
    pub dns: DnsForwarder,
    pub proxy: EgressProxy,
}

/// `None` when `--sandbox-network false`. Errors say what the host lacks.
pub(crate) fn setup(args: &Args) -> anyhow::Result<Option<SandboxNetwork>> {
    if !args.sandbox_network {
        return Ok(None);
    }
    let pool = args
        .sandbox_cidr
        .as_deref()
        .map(|s| s.parse::<Cidr>())
        .transpose()
        .context("--sandbox-cidr")?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf")
        .context("reading the host's /etc/resolv.conf (the sandboxes' DNS forwards there)")?;
    let dns =
        DnsForwarder::bind(parse_resolv_conf(&resolv)).context("starting the DNS forwarder")?;
    let mut proxy = EgressProxy::bind().context("starting the egress proxy")?;
    let mut config = NetConfig::new(dns.port());
    config.pool = pool;
    config.proxy_port = Some(proxy.port());
    let network = Network::new(&config).map_err(|e| {
        anyhow::anyhow!("{e}; start with --sandbox-network false for loopback-only sandboxes")
    })?;
    network.connect_proxy(&mut proxy);
    tracing::info!(pool = %network.pool(), dns_port = dns.port(), proxy_port = proxy.port(), "sandbox network");
    Ok(Some(SandboxNetwork {
        settings: NetworkSettings {
            network: Arc::new(network),
            default_internet: args.sandbox_internet,
        },
        dns,
        proxy,
    }))
}
