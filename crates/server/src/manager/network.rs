//! Sandbox networking in the manager: pooled sandboxes get their network (with the default
//! policy) before they count as ready; a create applies its own policy at hand-over; an
//! update replaces it; destroy removes it.

use std::sync::Arc;

use bulkhead_net::{Attachment, NetError, Network, Policy, PolicyError};
use bulkhead_runtime::{Prepare, Sandbox};
use bulkhead_store::TeamId;

use super::error::{Invalid, ManagerError};
use super::{Manager, envd};

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

/// A sandbox's network as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkView {
    /// `allow_internet_access` in force.
    pub internet: bool,
    /// Addresses, CIDRs and domains allowed.
    pub allow_out: Vec<String>,
    /// CIDRs denied.
    pub deny_out: Vec<String>,
}

impl From<&Attachment> for NetworkView {
    fn from(a: &Attachment) -> Self {
        let p = &a.policy;
        Self {
            internet: p.internet,
            allow_out: p
                .allow_out
                .iter()
                .map(|c| c.to_string())
                .chain(p.allow_domains.iter().map(|d| d.to_string()))
                .collect(),
            deny_out: p.deny_out.iter().map(|c| c.to_string()).collect(),
        }
    }
}

fn net_error(e: NetError) -> ManagerError {
    match e {
        NetError::PoolExhausted(_) => ManagerError::NetworkFull(e),
        other => ManagerError::Network(other),
    }
}

/// The work done on every sandbox before it is ready: envd, then its network.
/// Then the template's service (its `start_cmd` that runs for the sandbox's life) and the
/// interpreter, each ready before the sandbox joins the pool.
pub(crate) fn prepare(
    settings: Option<NetworkSettings>,
    code_interpreter: bool,
    service: Option<super::ServiceCmd>,
) -> Prepare {
    Arc::new(move |sb: &Sandbox| {
        envd::start(sb).map_err(|e| e.to_string())?;
        if let Some(s) = &settings {
            attach(&s.network, sb, s.default_policy()).map_err(|e| e.to_string())?;
        }
        if let Some(cmd) = &service {
            super::service::start(sb, cmd)?;
        }
        if code_interpreter {
            super::interpreter::start(sb)?;
        }
        Ok(())
    })
}

fn attach(net: &Network, sb: &Sandbox, policy: Policy) -> Result<Attachment, NetError> {
    let a = net.attach(sb.id(), sb.init_pid(), policy)?;
    if let Err(e) = net.write_resolv_conf(sb.id(), sb.init_pid(), sb.root_host_id(), &a) {
        net.detach(sb.id());
        return Err(e);
    }
    tracing::debug!(sandbox_id = %sb.id(), elapsed_us = a.setup_time.as_micros() as u64, "sandbox network ready");
    Ok(a)
}

/// At hand-over: gives the sandbox `policy` (a pooled sandbox has the default one already,
/// so the default costs nothing). Blocking.
pub(crate) fn apply_policy(
    settings: Option<&NetworkSettings>,
    sb: &Sandbox,
    policy: Option<Policy>,
) -> Result<(), ManagerError> {
    let (Some(s), Some(policy)) = (settings, policy) else {
        return Ok(());
    };
    match s.network.get(sb.id()) {
        Some(a) if a.policy == policy => Ok(()),
        Some(_) => s.network.set_policy(sb.id(), policy).map_err(net_error),
        None => attach(&s.network, sb, policy)
            .map(|_| ())
            .map_err(net_error),
    }
}

/// Removes the network of sandbox `id`, if it has one. Blocking; idempotent.
pub(crate) fn detach(settings: Option<&NetworkSettings>, id: &str) {
    if let Some(s) = settings {
        s.network.detach(id);
    }
}

impl Manager {
    /// The policy a request asks for, checked (the error names the bad value). `Ok(None)`
    /// when the server has no sandbox network and the request asks for none.
    pub(crate) fn requested_policy(
        &self,
        req: &NetworkRequest,
    ) -> Result<Option<Policy>, ManagerError> {
        let Some(s) = &self.config.network else {
            if req.internet == Some(true) || !req.allow_out.is_empty() {
                return Err(Invalid::InternetAccess.into());
            }
            return Ok(None);
        };
        let p = Policy::parse(
            req.internet.unwrap_or(s.default_internet),
            &req.allow_out,
            &req.deny_out,
        )?;
        if let Some(d) = p.allow_domains.first()
            && !s.network.domain_rules()
        {
            return Err(PolicyError::DomainUnsupported(d.to_string()).into());
        }
        Ok(Some(p))
    }

    /// `PUT /sandboxes/{id}/network`: replaces the sandbox's whole policy atomically
    /// (omitted fields are cleared, as in E2B).
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`], [`ManagerError::Policy`] for a refused rule,
    /// [`ManagerError::Network`] when the firewall refuses the change.
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn update_network(
        &self,
        team: &TeamId,
        id: &str,
        req: NetworkRequest,
    ) -> Result<(), ManagerError> {
        let entry = self.owned(team, id)?;
        let (Some(policy), Some(s)) = (self.requested_policy(&req)?, self.config.network.clone())
        else {
            return Ok(());
        };
        let id = entry.id().to_string();
        tokio::task::spawn_blocking(move || s.network.set_policy(&id, policy))
            .await?
            .map_err(net_error)
    }

    /// The team's sandbox `id`'s network, if it has one.
    pub fn network_of(&self, team: &TeamId, id: &str) -> Result<Option<NetworkView>, ManagerError> {
        let entry = self.owned(team, id)?;
        Ok(self
            .config
            .network
            .as_ref()
            .and_then(|s| s.network.get(entry.id()))
            .map(|a| NetworkView::from(&a)))
    }
}
