//! One repository of one registry over HTTP: requests carry the current authorization, and a
//! `401` is answered once by following its challenge (token or Basic) and retrying.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use super::RegistryError;
use super::auth::{self, Auth, Authorization, Challenge};

/// A client for `registry`/`repository`, shared by the concurrent blob downloads of a pull.
pub(crate) struct Client {
    http: reqwest::Client,
    /// `scheme://host[:port]`, no trailing slash.
    base: String,
    pub(crate) registry: String,
    pub(crate) repository: String,
    auth: Auth,
    authorization: Mutex<Authorization>,
}

impl Client {
    /// A client speaking `http` (plain) or `https` to `registry`.
    pub(crate) fn new(
        registry: &str,
        repository: &str,
        plain_http: bool,
        auth: Auth,
        ca_certificates: &[String],
    ) -> Result<Self, RegistryError> {
        let scheme = if plain_http { "http" } else { "https" };
        let base = format!("{scheme}://{registry}");
        let mut roots = Vec::new();
        for pem in ca_certificates {
            let invalid = |reason: String| RegistryError::InvalidCertificate {
                registry: registry.to_owned(),
                reason,
            };
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| invalid(e.to_string()))?;
            if certs.is_empty() {
                return Err(invalid("it holds no PEM certificate".to_owned()));
            }
            roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .connect_timeout(Duration::from_secs(30))
            // No total timeout: a layer may take long. A stalled transfer ends here and is
            // resumed from its `.partial`.
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RegistryError::Unreachable {
                registry: registry.to_owned(),
                address: base.clone(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            auth,
            authorization: Mutex::new(Authorization::None),
        })
    }

    /// `GET /v2/`: learns how the registry authenticates before the first real request, so
    /// a token is fetched once rather than after a failed manifest request.
    pub(crate) async fn ping(&self) -> Result<(), RegistryError> {
        let response = self.send("/v2/", &HeaderMap::new(), "/v2/").await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                self.authenticate(&response).await?;
                Ok(())
            }
            // Some registries answer only under a repository; the requests that follow tell.
            _ => Ok(()),
        }
    }

    /// `GET {path}` under the registry, authenticating on a `401` and retrying once.
    ///
    /// # Errors
    /// `Unreachable` when no connection can be made; `CredentialsRefused`/`Required` when
    /// the registry still answers 401, or 403. Any other status is the caller's to judge.
    pub(crate) async fn get(
        &self,
        path: &str,
        headers: HeaderMap,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let response = self.send(path, &headers, what).await?;
        let response = if response.status() == StatusCode::UNAUTHORIZED {
            self.authenticate(&response).await?;
            self.send(path, &headers, what).await?
        } else {
            response
        };
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(auth::refused(&self.registry, &self.repository, &self.auth))
            }
            _ => Ok(response),
        }
    }

    async fn send(
        &self,
        path: &str,
        headers: &HeaderMap,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url).headers(headers.clone());
        let authorization = self
            .authorization
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        request = match (authorization, &self.auth) {
            (Authorization::Bearer(token), _) => request.bearer_auth(token),
            (Authorization::Basic, Auth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            _ => request,
        };
        request.send().await.map_err(|source| {
            if source.is_connect() || source.is_timeout() {
                RegistryError::Unreachable {
                    registry: self.registry.clone(),
                    address: self.base.clone(),
                    source,
                }
            } else {
                self.transfer_error(what, source)
            }
        })
    }

    /// Follows the challenge of a `401` response: fetches a token or switches to Basic.
    async fn authenticate(&self, response: &Response) -> Result<(), RegistryError> {
        let challenge = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(Challenge::parse)
            // Prefer a token: it is scoped to this repository.
            .min_by_key(|c| matches!(c, Challenge::Basic));
        let next = match challenge {
            Some(Challenge::Bearer { realm, service }) => {
                let token = auth::fetch_token(
                    &self.http,
                    &realm,
                    service.as_deref(),
                    &self.registry,
                    &self.repository,
                    &self.auth,
                    self.base.starts_with("http://"),
                )
                .await?;
                Authorization::Bearer(token)
            }
            Some(Challenge::Basic) if matches!(self.auth, Auth::Basic { .. }) => {
                Authorization::Basic
            }
            _ => return Err(auth::refused(&self.registry, &self.repository, &self.auth)),
        };
        if let Ok(mut current) = self.authorization.lock() {
            *current = next;
        }
        Ok(())
    }

    /// The error for a transfer of `what` that broke after it had started.
    pub(crate) fn transfer_error(&self, what: &str, source: reqwest::Error) -> RegistryError {
        RegistryError::Transfer {
            registry: self.registry.clone(),
            what: what.to_owned(),
            source,
        }
    }

    /// The error for a status no caller has a meaning for.
    pub(crate) fn status_error(&self, status: StatusCode, what: &str) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            status: status.as_u16(),
            what: what.to_owned(),
        }
    }
}
