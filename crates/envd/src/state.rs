//! State shared by all handlers: the immutable config, the settings `/init` may change, the
//! process table and the polling watchers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::{AccessToken, EnvdConfig};
use crate::filesystem::watch::WatcherTable;
use crate::process::table::ProcessTable;
use crate::users::UserDb;

/// Handle to the shared state.
pub type SharedState = Arc<Envd>;

/// Settings that start from the config and can be replaced by `POST /init`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sandbox-wide environment variables.
    pub env_vars: BTreeMap<String, String>,
    /// The access token, if any.
    pub access_token: Option<AccessToken>,
    /// The default user name.
    pub default_user: String,
    /// The default working directory.
    pub default_workdir: Option<PathBuf>,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Envd {
    /// The configuration envd was started with.
    pub config: EnvdConfig,
    /// The sandbox's users.
    pub users: UserDb,
    /// Mutable settings.
    settings: RwLock<Settings>,
    /// Running and recently finished processes.
    pub processes: ProcessTable,
    /// Polling watchers (`CreateWatcher`).
    pub watchers: WatcherTable,
}

impl Envd {
    /// Builds the state from a validated config.
    pub fn new(config: EnvdConfig) -> SharedState {
        let settings = Settings {
            env_vars: config.env_vars.clone(),
            access_token: config.access_token.clone(),
            default_user: config.default_user.clone(),
            default_workdir: config.default_workdir.clone(),
        };
        Arc::new(Envd {
            users: UserDb::new(&config.passwd_path, &config.group_path),
            processes: ProcessTable::new(config.finished_retention),
            watchers: WatcherTable::default(),
            settings: RwLock::new(settings),
            config,
        })
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the settings (used by `/init`).
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        match self.settings.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The current access token.
    pub fn access_token(&self) -> Option<AccessToken> {
        self.settings().access_token
    }

    /// The current default user name.
    pub fn default_user(&self) -> String {
        self.settings().default_user
    }
}
