//! The seam between the HTTP API and what runs sandboxes: the operations the API handlers
//! call, on rows, with typed errors. [`Manager`] is the implementation that serves; the
//! API's own tests put a small in-memory one behind the same router.

use std::future::Future;

use bulkhead_store::{SandboxRecord, TeamId};

use super::sandbox_logs::{LogEntry, LogQuery};
use super::{
    CreateRequest, Invalid, ListPage, ListQuery, Manager, ManagerError, MetricSample,
    MetricsWindow, NetworkRequest, NetworkView,
};

/// A sandbox reached through connect.
#[derive(Debug)]
pub struct Connected {
    /// Its row afterwards.
    pub record: SandboxRecord,
    /// It was paused and is now resumed.
    pub resumed: bool,
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

    /// Pauses a sandbox ([`Manager::pause`]): frozen with its memory, or (`memory` false)
    /// its processes ended and its files kept.
    fn pause(
        &self,
        team: &TeamId,
        id: &str,
        memory: bool,
    ) -> impl Future<Output = Result<(), ManagerError>> + Send;

    /// The sandbox's samples in a window ([`Manager::metrics`]).
    fn metrics(
        &self,
        team: &TeamId,
        id: &str,
        window: MetricsWindow,
    ) -> impl Future<Output = Result<Vec<MetricSample>, ManagerError>> + Send;

    /// The latest sample of each running sandbox of `ids` ([`Manager::metrics_of`]).
    fn metrics_of(
        &self,
        team: &TeamId,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<(String, MetricSample)>, ManagerError>> + Send;

    /// The sandbox's log entries ([`Manager::sandbox_logs`]); by default none.
    fn logs(
        &self,
        team: &TeamId,
        id: &str,
        query: LogQuery,
    ) -> impl Future<Output = Result<Vec<LogEntry>, ManagerError>> + Send {
        let _ = (team, id, query);
        async { Ok(Vec::new()) }
    }

    /// The sandbox's network ([`Manager::network_of`]); by default none (loopback only).
    fn network(
        &self,
        team: &TeamId,
        id: &str,
    ) -> impl Future<Output = Result<Option<NetworkView>, ManagerError>> + Send {
        let _ = (team, id);
        async { Ok(None) }
    }

    /// Replaces the sandbox's egress rules ([`Manager::update_network`]); by default refused
    /// (no sandbox network).
    fn update_network(
        &self,
        team: &TeamId,
        id: &str,
        req: NetworkRequest,
    ) -> impl Future<Output = Result<(), ManagerError>> + Send {
        let _ = (team, id, req);
        async { Err(Invalid::InternetAccess.into()) }
    }
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

    async fn pause(&self, team: &TeamId, id: &str, memory: bool) -> Result<(), ManagerError> {
        Manager::pause(self, team, id, memory).await
    }

    async fn metrics(
        &self,
        team: &TeamId,
        id: &str,
        window: MetricsWindow,
    ) -> Result<Vec<MetricSample>, ManagerError> {
        Manager::metrics(self, team, id, window).await
    }

    async fn logs(
        &self,
        team: &TeamId,
        id: &str,
        query: LogQuery,
    ) -> Result<Vec<LogEntry>, ManagerError> {
        self.sandbox_logs(team, id, query).await
    }

    async fn metrics_of(
        &self,
        team: &TeamId,
        ids: &[String],
    ) -> Result<Vec<(String, MetricSample)>, ManagerError> {
        Manager::metrics_of(self, team, ids).await
    }

    async fn network(&self, team: &TeamId, id: &str) -> Result<Option<NetworkView>, ManagerError> {
        self.network_of(team, id)
    }

    async fn update_network(
        &self,
        team: &TeamId,
        id: &str,
        req: NetworkRequest,
    ) -> Result<(), ManagerError> {
        Manager::update_network(self, team, id, req).await
    }
}
