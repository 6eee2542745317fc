//! What the execution server needs to know: how to start a kernel per language, where
//! contexts start, deadlines and the sandbox's envd.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

/// The placeholder in a kernel's argv that becomes its connection file's path.
pub const CONNECTION_FILE: &str = "{connection_file}";

/// How to start the kernel of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCommand {
    /// Program and arguments; one of them contains [`CONNECTION_FILE`].
    pub argv: Vec<String>,
}

impl KernelCommand {
    /// A command from string slices.
    pub fn new(argv: &[&str]) -> Self {
        Self {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Settings of the execution server. Build with [`Default`], change fields, then
/// [`InterpreterConfig::validate`].
#[derive(Debug, Clone)]
pub struct InterpreterConfig {
    /// Kernel command per normalised language name (`python`, `bash`, ...).
    pub kernels: BTreeMap<String, KernelCommand>,
    /// Working directory of contexts created without one.
    pub default_cwd: PathBuf,
    /// Directory for kernel connection files (created 0700 if missing).
    pub runtime_dir: PathBuf,
    /// Languages whose default context is started (and a first cell run) at start-up, so
    /// that the first `/execute` does not pay the kernel start.
    pub prewarm: Vec<String>,
    /// envd inside the same sandbox, asked once for the sandbox-wide env vars (`GET /envs`
    /// with the caller's `X-Access-Token`). `None`: the kernels' own environment only.
    pub envd: Option<SocketAddr>,
    /// Upper bound of any execution; a request may ask for less (`timeout` in its body).
    /// `None`: only the request's own deadline and the client's disconnect end a cell.
    pub max_execution: Option<Duration>,
    /// How long a cell interrupted at its deadline may take to stop before its stream ends
    /// with `TimeoutError`.
    pub interrupt_grace: Duration,
    /// How long an interrupted cell may take to stop before its kernel is killed and
    /// restarted (the context's state is lost then).
    pub restart_after: Duration,
    /// Quiet interval after which a `keepalive` line is sent.
    pub keepalive: Duration,
    /// How long a kernel may take from spawn to answering `kernel_info`.
    pub kernel_start_timeout: Duration,
}

impl Default for InterpreterConfig {
    fn default() -> Self {
        let mut kernels = BTreeMap::new();
        kernels.insert(
            "python".to_owned(),
            KernelCommand::new(&["python3", "-m", "ipykernel_launcher", "-f", CONNECTION_FILE]),
        );
        kernels.insert(
            "bash".to_owned(),
            KernelCommand::new(&["python3", "-m", "bash_kernel", "-f", CONNECTION_FILE]),
        );
        Self {
            kernels,
            default_cwd: PathBuf::from("/home/user"),
            runtime_dir: std::env::temp_dir().join("bulkhead-kernels"),
            prewarm: vec!["python".to_owned()],
            envd: None,
            max_execution: None,
            interrupt_grace: Duration::from_millis(400),
            restart_after: Duration::from_secs(5),
            keepalive: Duration::from_secs(1),
            kernel_start_timeout: Duration::from_secs(60),
        }
    }
}

impl InterpreterConfig {
    /// Refuses commands without a program or a connection-file placeholder, relative
    /// directories, and pre-warmed languages that have no kernel.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (lang, cmd) in &self.kernels {
            if cmd.argv.is_empty() || !cmd.argv.iter().any(|a| a.contains(CONNECTION_FILE)) {
                return Err(ConfigError::KernelCommand(lang.clone()));
            }
        }
        for dir in [&self.default_cwd, &self.runtime_dir] {
            if !dir.is_absolute() {
                return Err(ConfigError::RelativePath(dir.clone()));
            }
        }
        if let Some(lang) = self.prewarm.iter().find(|l| !self.kernels.contains_key(*l)) {
            return Err(ConfigError::UnknownLanguage(lang.clone()));
        }
        Ok(())
    }
}

/// E2B's language normalisation: trimmed, lower-case, `js` → `javascript`, `ts` →
/// `typescript`; no language → `python`.
pub fn normalise_language(language: Option<&str>) -> String {
    let l = language
        .map(|l| l.trim().to_lowercase())
        .unwrap_or_default();
    match l.as_str() {
        "" => "python".to_owned(),
        "js" => "javascript".to_owned(),
        "ts" => "typescript".to_owned(),
        _ => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        InterpreterConfig::default().validate().expect("valid");
    }

    #[test]
    fn a_command_without_the_connection_file_is_refused() {
        let mut c = InterpreterConfig::default();
        c.kernels.insert("r".into(), KernelCommand::new(&["R"]));
        assert!(matches!(c.validate(), Err(ConfigError::KernelCommand(l)) if l == "r"));
    }

    #[test]
    fn languages_are_normalised_like_e2b() {
        assert_eq!(normalise_language(None), "python");
        assert_eq!(normalise_language(Some(" Python ")), "python");
        assert_eq!(normalise_language(Some("JS")), "javascript");
        assert_eq!(normalise_language(Some("ts")), "typescript");
        assert_eq!(normalise_language(Some("bash")), "bash");
    }
}
