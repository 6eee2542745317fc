//! The seam between the HTTP API and what runs sandboxes: the operations the API handlers
//! call, on rows, with typed errors. [`Manager`] is the implementation that serves; the
//! API's own tests put a small in-memory one behind the same router.

use std::future::Future;

use bulkhead_store::{SandboxRecord, TeamId};

use super::{CreateRequest, ListPage, ListQuery, Manager, ManagerError};

/// A sandbox reached through connect.
#[derive(Debug)]
pub struct Connected {
    /// Its row afterwards.
    pub record: SandboxRecord,
    /// It was paused and is now resumed.
    pub resumed: bool,
}

/// One resource-use sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxMetrics {
    /// vCPUs.
    pub cpu_count: u32,
    /// CPU used since the previous sample, 0..=100 % of `cpu_count`.
    pub cpu_used_pct: f64,
    /// Memory in use, bytes.
    pub mem_used: u64,
    /// Memory limit, bytes.
    pub mem_total: u64,
    /// Disk size, bytes.
    pub disk_total: u64,
}

/// Sandbox operations as the API needs them. Every operation is scoped to a team: another
/// team's sandbox is [`ManagerError::SandboxNotFound`], never its data. Implementations are
/// shared by all requests (`Send + Sync`) and return `Send` futures.
pub trait SandboxBackend: Send + Sync + 'static {
    /// Creates a sandbox ([`Manager::create`]).
    fn create(
        &self,
        team: &TeamId,
        req: CreateRequest,
    ) -> impl Future<Output = Result<SandboxRecord, ManagerError>> + Send;

    /// The team's sandbox `id`.
    fn get(
        &self,
        team: &TeamId,
        id: &str,
    ) -> impl Future<Output = Result<SandboxRecord, ManagerError>> + Send;

    /// One page of the team's sandboxes ([`ListQuery::page`]).
    fn list(
        &self,
        team: &TeamId,
        query: &ListQuery,
    ) -> impl Future<Output = Result<ListPage, ManagerError>> + Send;

    /// Kills and forgets a sandbox ([`Manager::kill`]).
    fn kill(
        &self,
        team: &TeamId,
        id: &str,
    ) -> impl Future<Output = Result<(), ManagerError>> + Send;

    /// Sets the end to now + `seconds` ([`Manager::set_timeout`]).
    fn set_timeout(
        &self,
        team: &TeamId,
        id: &str,
        seconds: i64,
    ) -> impl Future<Output = Result<(), ManagerError>> + Send;

    /// Extends or resumes ([`Manager::connect`]).
    fn connect(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> impl Future<Output = Result<Connected, ManagerError>> + Send;

    /// Resumes a paused sandbox ([`Manager::resume`]).
    fn resume(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> impl Future<Output = Result<SandboxRecord, ManagerError>> + Send;

    /// Freezes a sandbox ([`Manager::pause`]).
    fn pause(
        &self,
        team: &TeamId,
        id: &str,
    ) -> impl Future<Output = Result<(), ManagerError>> + Send;

    /// One resource sample ([`Manager::metrics`]).
    fn metrics(
        &self,
        team: &TeamId,
        id: &str,
    ) -> impl Future<Output = Result<SandboxMetrics, ManagerError>> + Send;
}

impl SandboxBackend for Manager {
    async fn create(
        &self,
        team: &TeamId,
        req: CreateRequest,
    ) -> Result<SandboxRecord, ManagerError> {
        Manager::create(self, team, req).await
    }

    async fn get(&self, team: &TeamId, id: &str) -> Result<SandboxRecord, ManagerError> {
        Ok(self.owned(team, id)?.record())
    }

    async fn list(&self, team: &TeamId, query: &ListQuery) -> Result<ListPage, ManagerError> {
        let rows: Vec<SandboxRecord> = self
            .read()
            .values()
            .filter(|e| e.belongs_to(team))
            .map(|e| e.record())
            .collect();
        query.page(rows)
    }

    async fn kill(&self, team: &TeamId, id: &str) -> Result<(), ManagerError> {
        Manager::kill(self, team, id).await
    }

    async fn set_timeout(&self, team: &TeamId, id: &str, seconds: i64) -> Result<(), ManagerError> {
        Manager::set_timeout(self, team, id, seconds).await
    }

    async fn connect(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<Connected, ManagerError> {
        Manager::connect(self, team, id, timeout).await
    }

    async fn resume(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<SandboxRecord, ManagerError> {
        Manager::resume(self, team, id, timeout).await
    }

    async fn pause(&self, team: &TeamId, id: &str) -> Result<(), ManagerError> {
        Manager::pause(self, team, id).await
    }

    async fn metrics(&self, team: &TeamId, id: &str) -> Result<SandboxMetrics, ManagerError> {
        Manager::metrics(self, team, id).await
    }
}
