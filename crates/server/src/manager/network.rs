//! Sandbox networking in the manager: pooled sandboxes get their network (with the default
//! policy) before they count as ready; a create applies its own policy at hand-over; an
//! update replaces it; destroy removes it.

use std::sync::Arc;

use bulkhead_net::{Attachment, Network, Policy, PolicyError};
use bulkhead_runtime::{Prepare, Sandbox};

use super::{Manager, envd, not_found};
use crate::error::ApiError;

/// The sandbox network and its defaults.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// The host's sandbox network.
    pub network: Arc<Network>,
    /// `allow_internet_access` when a create does not say (`--sandbox-internet`).
    pub default_internet: bool,
}

impl NetworkSettings {
    /// The policy of a sandbox whose create set no network field.
    pub fn default_policy(&self) -> Policy {
        Policy {
            internet: self.default_internet,
            ..Policy::default()
        }
    }
}

/// The network fields of a create or update request, as sent.
#[derive(Debug, Default, Clone)]
pub struct NetworkRequest {
    /// `allow_internet_access`; `None` = the server's default.
    pub internet: Option<bool>,
    /// `network.allowOut`.
    pub allow_out: Vec<String>,
    /// `network.denyOut`.
    pub deny_out: Vec<String>,
}

fn bad(e: PolicyError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// The work done on every sandbox before it is ready: envd, then its network.
pub(crate) fn prepare(settings: Option<NetworkSettings>) -> Prepare {
    Arc::new(move |sb: &Sandbox| {
        envd::start(sb)?;
        if let Some(s) = &settings {
            attach(&s.network, sb, s.default_policy()).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

fn attach(
    net: &Network,
    sb: &Sandbox,
    policy: Policy,
) -> Result<Attachment, bulkhead_net::NetError> {
    let a = net.attach(sb.id(), sb.init_pid(), policy)?;
    if let Err(e) = net.write_resolv_conf(sb.id(), sb.init_pid(), sb.root_host_id(), &a) {
        net.detach(sb.id());
        return Err(e);
    }
    tracing::debug!(sandbox_id = %sb.id(), elapsed_us = a.setup_time.as_micros() as u64, "sandbox network ready");
    Ok(a)
}

impl Manager {
    /// The policy a request asks for, checked (400 naming the bad value). `Ok(None)` when
    /// the server has no sandbox network and the request asks for none.
    pub(crate) fn requested_policy(
        &self,
        req: &NetworkRequest,
    ) -> Result<Option<Policy>, ApiError> {
        match &self.config.network {
            Some(s) => {
                let p = Policy::parse(
                    req.internet.unwrap_or(s.default_internet),
                    &req.allow_out,
                    &req.deny_out,
                )
                .map_err(bad)?;
                if let Some(d) = p.allow_domains.first()
                    && !s.network.domain_rules()
                {
                    return Err(bad(PolicyError::DomainUnsupported(d.to_string())));
                }
                Ok(Some(p))
            }
            None if req.internet == Some(true) || !req.allow_out.is_empty() => {
                Err(ApiError::BadRequest(
                    "internet access is not available on this server: sandboxes have loopback networking only"
                        .into(),
                ))
            }
            None => Ok(None),
        }
    }

    /// At hand-over: gives the sandbox `policy` (a pooled sandbox has the default one).
    /// Blocking.
    pub(crate) fn apply_policy(
        &self,
        sb: &Sandbox,
        policy: Option<Policy>,
    ) -> Result<(), ApiError> {
        let (Some(s), Some(policy)) = (&self.config.network, policy) else {
            return Ok(());
        };
        let current = s.network.get(sb.id());
        let result = match current {
            Some(a) if a.policy == policy => Ok(()),
            Some(_) => s.network.set_policy(sb.id(), policy),
            None => attach(&s.network, sb, policy).map(|_| ()),
        };
        result.map_err(|e| match e {
            bulkhead_net::NetError::PoolExhausted(_) => ApiError::Busy(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        })
    }

    /// `PUT /sandboxes/{id}/network`: replaces the sandbox's whole policy atomically
    /// (omitted fields are cleared, as in E2B).
    pub async fn update_network(
        &self,
        team: &str,
        id: &str,
        req: NetworkRequest,
    ) -> Result<(), ApiError> {
        let entry = self.get(team, id).ok_or_else(|| not_found(id))?;
        let Some(policy) = self.requested_policy(&req)? else {
            return Ok(());
        };
        let Some(s) = self.config.network.clone() else {
            return Ok(());
        };
        let id = entry.id.clone();
        tokio::task::spawn_blocking(move || s.network.set_policy(&id, policy))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The sandbox's network as set up, if it has one.
    pub fn network_of(&self, id: &str) -> Option<Attachment> {
        self.config.network.as_ref()?.network.get(id)
    }

    /// Removes the network of sandbox `id` from this manager's network. Blocking.
    pub(crate) fn detach_own(&self, id: &str) {
        Self::detach_network(self.config.network.as_ref().map(|s| &s.network), id);
    }

    /// Removes the network of sandbox `id` (after its destroy). Blocking; idempotent.
    pub(crate) fn detach_network(network: Option<&Arc<Network>>, id: &str) {
        if let Some(n) = network {
            n.detach(id);
        }
    }
}
