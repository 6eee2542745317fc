//! Typed configuration of one envd instance. The library never reads the environment, argv or
//! files for its configuration: the binary builds an [`EnvdConfig`] and calls
//! [`EnvdConfig::validate`] before binding a port.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::ENVD_VERSION;

/// The sandbox access token. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token. Surrounding whitespace (a trailing newline from a file) is removed.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_owned())
    }

    /// The secret value; only for comparisons and signatures, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(redacted)")
    }
}

/// Configuration of one envd instance.
#[derive(Debug, Clone)]
pub struct EnvdConfig {
    /// The `/etc/passwd` of the sandbox, re-read on every user lookup so users created at run
    /// time are found.
    pub passwd_path: PathBuf,
    /// The `/etc/group` of the sandbox (supplementary groups, group names in `EntryInfo`).
    pub group_path: PathBuf,
    /// The user for requests that name none (E2B templates: `user`).
    pub default_user: String,
    /// Working directory for empty paths and commands without `cwd`; `None` = the user's home.
    pub default_workdir: Option<PathBuf>,
    /// Sandbox-wide environment variables, applied to every process over the baseline of
    /// `bulkhead_spawn::env` and under the request's own `envs`.
    pub env_vars: BTreeMap<String, String>,
    /// `PATH` given to every process.
    pub path_env: String,
    /// When set, every request must carry `X-Access-Token` (or a valid `/files` signature).
    pub access_token: Option<AccessToken>,
    /// Version string reported by `X-Envd-Version` on `/init`.
    pub version: String,
    /// Keepalive period of streams whose request has no `Keepalive-Ping-Interval` header.
    pub default_keepalive: Duration,
    /// How long the exit status of a finished process stays available to `Connect`.
    pub finished_retention: Duration,
    /// Most process output (bytes) one stream may have queued before it is detached with
    /// `resource_exhausted`; the process itself is never slowed down by a slow client.
    pub max_stream_buffer: usize,
}

impl Default for EnvdConfig {
    fn default() -> Self {
        Self {
            passwd_path: PathBuf::from("/etc/passwd"),
            group_path: PathBuf::from("/etc/group"),
            default_user: "user".to_owned(),
            default_workdir: None,
            env_vars: BTreeMap::new(),
            path_env: bulkhead_spawn::env::DEFAULT_PATH.to_owned(),
            access_token: None,
            version: ENVD_VERSION.to_owned(),
            default_keepalive: Duration::from_secs(90),
            finished_retention: Duration::from_secs(60),
            max_stream_buffer: 64 << 20,
        }
    }
}

/// A configuration value that envd refuses to start with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `default_user` is empty.
    #[error("default user must not be empty")]
    EmptyDefaultUser,
    /// `default_workdir` is not absolute.
    #[error("default workdir {0:?} is not an absolute path")]
    RelativeWorkdir(PathBuf),
    /// The access token is set but empty.
    #[error("access token must not be empty when set")]
    EmptyAccessToken,
    /// `version` is not a dotted version the SDKs can parse.
    #[error("version {0:?} is not a dotted numeric version")]
    BadVersion(String),
    /// `max_stream_buffer` is zero.
    #[error("max stream buffer must be greater than zero")]
    ZeroBuffer,
    /// A keepalive or retention period is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
}

impl EnvdConfig {
    /// Checks the configuration; `serve` calls it too, before accepting any connection.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.default_user.is_empty() {
            return Err(ConfigError::EmptyDefaultUser);
        }
        if let Some(dir) = &self.default_workdir
            && !dir.is_absolute()
        {
            return Err(ConfigError::RelativeWorkdir(dir.clone()));
        }
        if self
            .access_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            return Err(ConfigError::EmptyAccessToken);
        }
        let parts: Vec<&str> = self.version.split('.').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::BadVersion(self.version.clone()));
        }
        if self.default_keepalive.is_zero() {
            return Err(ConfigError::ZeroDuration("default keepalive"));
        }
        if self.max_stream_buffer == 0 {
            return Err(ConfigError::ZeroBuffer);
        }
        if self.finished_retention.is_zero() {
            return Err(ConfigError::ZeroDuration("finished-process retention"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(EnvdConfig::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = EnvdConfig {
            version: "dev".into(),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::BadVersion(_))));
        c.version = ENVD_VERSION.into();
        c.default_workdir = Some("rel".into());
        assert!(matches!(c.validate(), Err(ConfigError::RelativeWorkdir(_))));
        c.default_workdir = None;
        c.access_token = Some(AccessToken::new(" \n"));
        assert_eq!(c.validate(), Err(ConfigError::EmptyAccessToken));
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = AccessToken::new("s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
