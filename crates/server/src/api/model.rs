//! JSON bodies of the E2B control-plane API, field names exactly as on the wire
//! (`spec/e2b-protocol.md` section 2.2). Fields carry the spec's meaning and are not
//! documented one by one.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use bulkhead_store::SandboxRecord;
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::manager::{CreateRequest, MetricSample, NetworkRequest, NetworkView};

/// The envd version every sandbox runs.
pub const ENVD_VERSION: &str = bulkhead_envd::ENVD_VERSION;

/// The constant `clientID` the reference server returns (deprecated, still required by the
/// Python parser).
pub const CLIENT_ID: &str = "6532622b";

/// `POST /v2/sandboxes` and legacy `POST /sandboxes`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSandbox {
    /// Template name or id.
    #[serde(rename = "templateID")]
    pub template_id: String,
    /// Seconds until the sandbox is killed.
    pub timeout: Option<i64>,
    /// User metadata.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Sandbox-wide environment variables.
    #[serde(default)]
    pub env_vars: Option<BTreeMap<String, String>>,
    /// Legacy v1 flag; every sandbox gets an access token anyway.
    #[serde(default)]
    pub secure: Option<bool>,
    /// Outbound internet (snake_case on the wire); absent = the server's default.
    #[serde(default, rename = "allow_internet_access")]
    pub allow_internet_access: Option<bool>,
    /// Pause instead of kill on timeout.
    #[serde(default)]
    pub auto_pause: Option<bool>,
    /// That pause keeps memory (default) or only the filesystem (`false`).
    #[serde(default)]
    pub auto_pause_memory: Option<bool>,
    /// Egress rules.
    #[serde(default)]
    pub network: Option<SandboxNetworkConfig>,
}

/// `SandboxNetworkConfig` (create) and `SandboxNetworkUpdateConfig` (`PUT .../network`).
/// Fields this server does not enforce (`dnsServers`, `allowPublicTraffic`, ...) are accepted
/// and ignored, as the spec allows a minimal server to.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxNetworkConfig {
    #[serde(default)]
    pub allow_out: Option<Vec<String>>,
    #[serde(default)]
    pub deny_out: Option<Vec<String>>,
    /// Only in the update body (snake_case on the wire).
    #[serde(default, rename = "allow_internet_access")]
    pub allow_internet_access: Option<bool>,
}

impl SandboxNetworkConfig {
    /// The manager's view of these fields; `internet` is the create's top-level
    /// `allow_internet_access` (the update body has it inside).
    pub fn into_request(self, internet: Option<bool>) -> NetworkRequest {
        NetworkRequest {
            internet: internet.or(self.allow_internet_access),
            allow_out: self.allow_out.unwrap_or_default(),
            deny_out: self.deny_out.unwrap_or_default(),
        }
    }
}

/// The network part of `GET /sandboxes/{id}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxNetworkInfo {
    pub allow_out: Vec<String>,
    pub deny_out: Vec<String>,
    /// Ports stay reachable through the edge proxy.
    pub allow_public_traffic: bool,
}

impl NewSandbox {
    /// The manager's request; `idempotency_key` comes from the header.
    pub fn into_request(self, idempotency_key: Option<String>) -> CreateRequest {
        CreateRequest {
            template: self.template_id,
            timeout: self.timeout,
            metadata: self.metadata.unwrap_or_default(),
            env_vars: self.env_vars.unwrap_or_default(),
            auto_pause: self.auto_pause.unwrap_or(false),
            auto_pause_memory: self.auto_pause_memory.unwrap_or(true),
            network: self
                .network
                .unwrap_or_default()
                .into_request(self.allow_internet_access),
            idempotency_key,
        }
    }
}

/// Response of create/connect/resume.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxCreated {
    #[serde(rename = "templateID")]
    pub template_id: String,
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "clientID")]
    pub client_id: &'static str,
    pub envd_version: &'static str,
    pub envd_access_token: String,
    pub traffic_access_token: Option<String>,
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl SandboxCreated {
    /// The answer for `r`; the SDK builds `get_host(port)` = `<port>-<id>.<domain>` from
    /// `domain`.
    pub fn new(r: &SandboxRecord, domain: &str) -> Self {
        Self {
            template_id: r.template_id.clone(),
            sandbox_id: r.sandbox_id.clone(),
            client_id: CLIENT_ID,
            envd_version: ENVD_VERSION,
            envd_access_token: r.envd_access_token.expose().to_string(),
            traffic_access_token: None,
            domain: Some(domain.to_string()),
            alias: r.alias.clone(),
        }
    }
}

/// Items of the sandbox list, and (with extra fields) the detail.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedSandbox {
    #[serde(rename = "templateID")]
    pub template_id: String,
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "clientID")]
    pub client_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub started_at: String,
    pub end_at: String,
    pub cpu_count: u32,
    #[serde(rename = "memoryMB")]
    pub memory_mb: u64,
    #[serde(rename = "diskSizeMB")]
    pub disk_size_mb: u64,
    pub state: &'static str,
    pub envd_version: &'static str,
    pub metadata: BTreeMap<String, String>,
}

impl ListedSandbox {
    /// The list item for `r`.
    pub fn new(r: &SandboxRecord) -> Self {
        Self {
            template_id: r.template_id.clone(),
            sandbox_id: r.sandbox_id.clone(),
            client_id: CLIENT_ID,
            alias: r.alias.clone(),
            started_at: clock::rfc3339(r.started_at),
            end_at: clock::rfc3339(r.end_at),
            cpu_count: r.cpu_count,
            memory_mb: u64::from(r.memory_mb),
            disk_size_mb: u64::from(r.disk_mb),
            state: r.status.as_str(),
            envd_version: ENVD_VERSION,
            metadata: r.metadata.clone(),
        }
    }
}

/// `GET /sandboxes/{id}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxDetail {
    #[serde(flatten)]
    pub listed: ListedSandbox,
    pub envd_access_token: String,
    pub allow_internet_access: Option<bool>,
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<SandboxNetworkInfo>,
}

impl SandboxDetail {
    /// The detail of `r`, with its network (`None`: loopback only).
    pub fn new(r: &SandboxRecord, domain: &str, network: Option<NetworkView>) -> Self {
        Self {
            listed: ListedSandbox::new(r),
            envd_access_token: r.envd_access_token.expose().to_string(),
            allow_internet_access: Some(network.as_ref().is_some_and(|n| n.internet)),
            domain: Some(domain.to_string()),
            network: network.map(|n| SandboxNetworkInfo {
                allow_out: n.allow_out,
                deny_out: n.deny_out,
                allow_public_traffic: true,
            }),
        }
    }
}

/// `POST /sandboxes/{id}/timeout`.
#[derive(Debug, Deserialize)]
pub struct TimeoutRequest {
    /// Seconds from now.
    pub timeout: i64,
}

/// `POST /v2/sandboxes/{id}/connect` and legacy `/connect`, `/resume`.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectRequest {
    /// Seconds from now; only ever extends a running sandbox's end.
    pub timeout: Option<i64>,
}

/// `POST /sandboxes/{id}/refreshes`.
#[derive(Debug, Default, Deserialize)]
pub struct RefreshRequest {
    /// Seconds to extend by (0..=3600).
    pub duration: Option<i64>,
}

/// One metrics sample.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxMetric {
    pub timestamp: String,
    pub timestamp_unix: i64,
    pub cpu_count: u32,
    pub cpu_used_pct: f64,
    pub mem_used: u64,
    pub mem_total: u64,
    pub mem_cache: u64,
    pub disk_used: u64,
    pub disk_total: u64,
}

impl From<&MetricSample> for SandboxMetric {
    fn from(m: &MetricSample) -> Self {
        Self {
            timestamp: clock::rfc3339(m.at),
            timestamp_unix: m.at.timestamp(),
            cpu_count: m.cpu_count,
            cpu_used_pct: m.cpu_used_pct,
            mem_used: m.mem_used,
            mem_total: m.mem_total,
            mem_cache: m.mem_cache,
            disk_used: m.disk_used,
            disk_total: m.disk_total,
        }
    }
}

/// `GET /sandboxes/metrics`: the latest sample of each sandbox asked for, by id.
#[derive(Debug, Serialize)]
pub struct SandboxesMetrics {
    pub sandboxes: std::collections::BTreeMap<String, SandboxMetric>,
}
