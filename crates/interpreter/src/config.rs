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
    /// How long a cell keeps reading after the kernel reported idle: Deno's kernel at times
    /// publishes a cell's result after its `status: idle`, which the protocol orders before.
    pub settle: Duration,
}

impl KernelCommand {
    /// A command from string slices.
    pub fn new(argv: &[&str]) -> Self {
        Self {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            settle: Duration::ZERO,
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

/// Kernels started only where their program is installed, by language: R (IRkernel, from
/// Debian's `r-cran-irkernel`) and JavaScript/TypeScript (Deno's built-in Jupyter kernel,
/// from the package index's `deno`).
/// Each is `(language, the program that must be installed, argv)`; Deno runs with
/// `NO_COLOR`, or its values' text would carry terminal colour codes.
pub const OPTIONAL_KERNELS: &[(&str, &str, &[&str])] = &[
    (
        "r",
        "R",
        &[
            "R",
            "--slave",
            "-e",
            "IRkernel::main()",
            "--args",
            CONNECTION_FILE,
        ],
    ),
    (
        "javascript",
        "deno",
        &[
            DENO[0], DENO[1], DENO[2], DENO[3], DENO[4], DENO[5], DENO[6],
        ],
    ),
    (
        "typescript",
        "deno",
        &[
            DENO[0], DENO[1], DENO[2], DENO[3], DENO[4], DENO[5], DENO[6],
        ],
    ),
];

/// See [`KernelCommand::settle`].
const DENO_SETTLE: Duration = Duration::from_millis(100);

const DENO: [&str; 7] = [
    "/usr/bin/env",
    "NO_COLOR=1",
    "deno",
    "jupyter",
    "--kernel",
    "--conn",
    CONNECTION_FILE,
];

/// Whether `program` is an executable file in one of the directories of `path` (a `PATH`).
fn on_path(program: &str, path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.split(':').filter(|d| !d.is_empty()).any(|d| {
        std::fs::metadata(std::path::Path::new(d).join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

impl InterpreterConfig {
    /// Adds each of [`OPTIONAL_KERNELS`] whose program is found on `path`; a language
    /// without its kernel answers as E2B does for a language it does not know.
    #[must_use]
    pub fn with_installed_kernels(mut self, path: &str) -> Self {
        for (lang, program, argv) in OPTIONAL_KERNELS {
            if on_path(program, path) {
                let mut k = KernelCommand::new(argv);
                if *program == "deno" {
                    k.settle = DENO_SETTLE;
                }
                self.kernels.entry((*lang).to_owned()).or_insert(k);
            }
        }
        self
    }

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
    fn optional_kernels_only_where_installed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = InterpreterConfig::default().with_installed_kernels(&dir.path().to_string_lossy());
        assert!(!c.kernels.contains_key("r") && !c.kernels.contains_key("javascript"));
        use std::os::unix::fs::PermissionsExt as _;
        let deno = dir.path().join("deno");
        std::fs::write(&deno, "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&deno, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let c = InterpreterConfig::default()
            .with_installed_kernels(&format!("/nonexistent:{}", dir.path().display()));
        assert!(c.kernels.contains_key("javascript") && c.kernels.contains_key("typescript"));
        assert!(!c.kernels.contains_key("r"));
        assert!(c.validate().is_ok());
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
