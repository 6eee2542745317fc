//! Errors of the networking crate.

use std::io;

/// A failed networking operation.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused the nftables table: no nf_tables support, or no CAP_NET_ADMIN.
    #[error(
        "installing the nftables table failed (the kernel needs nf_tables with inet NAT, masquerade, redirect and reject support, and the server CAP_NET_ADMIN)"
    )]
    Nftables(#[source] io::Error),
    /// The sandbox address pool overlaps a route of the host.
    #[error("the sandbox address pool {pool} overlaps the host route {route} on {device}")]
    PoolOverlap {
        /// The pool.
        pool: String,
        /// The route's destination.
        route: String,
        /// Its device.
        device: String,
    },
    /// No pool is usable (all taken by other servers, or too small).
    #[error("no usable sandbox address pool: {0}")]
    NoPool(String),
    /// Every address of the pool is in use.
    #[error("the sandbox address pool {0} is exhausted: every address is in use")]
    PoolExhausted(String),
    /// A step of a sandbox's network setup failed.
    #[error("network setup of sandbox {id} failed while {step}")]
    Setup {
        /// Sandbox id.
        id: String,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The sandbox has no network.
    #[error("sandbox {0} has no network")]
    Unknown(String),
    /// Host preparation (sysctl, lock file) failed.
    #[error("preparing the host for sandbox networking failed while {step}")]
    Host {
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
