//! The `bulkhead serve` configuration file: values for every option whose flag and
//! `BULKHEAD_*` variable were not given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use serde::Deserialize;

use super::serve::Args;

/// Default location, used when it exists and no `--config` is given.
const DEFAULT_CONFIG: &str = "/etc/bulkhead/bulkhead.toml";

/// The file's keys: the flags' names with underscores. Unknown keys are refused, so a typo
/// never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    domain: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    base_rootfs: Option<PathBuf>,
    code_interpreter_rootfs: Option<PathBuf>,
    pool_size: Option<usize>,
    sandbox_memory: Option<String>,
    sandbox_disk: Option<String>,
    sandbox_cpus: Option<String>,
    sandbox_pids: Option<String>,
    sandbox_open_files: Option<String>,
    no_new_privs: Option<bool>,
    default_timeout: Option<u64>,
    max_lifetime: Option<u64>,
    strip_env: Option<Vec<String>>,
    keep_sandboxes: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_sandboxes: Option<usize>,
    max_sandboxes_per_team: Option<usize>,
    max_creates_per_second: Option<f64>,
    min_free_memory: Option<String>,
    max_host_tasks: Option<String>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    storage_bucket: Option<String>,
    storage_prefix: Option<String>,
    storage_endpoint: Option<String>,
    storage_region: Option<String>,
    storage_path: Option<PathBuf>,
    storage_read_only: Option<bool>,
    storage_sandbox_prefix: Option<String>,
    storage_profile: Option<String>,
    storage_credentials_file: Option<PathBuf>,
    sandbox_network: Option<bool>,
    sandbox_internet: Option<bool>,
    sandbox_cidr: Option<String>,
}

/// Reads the file (if any) and fills every option that still has its built-in default.
pub fn apply_file(args: &mut Args, matches: Option<&clap::ArgMatches>) -> anyhow::Result<()> {
    let path = match &args.config {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(()),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let file: FileConfig = toml::from_str(&text)
        .with_context(|| format!("invalid configuration file {}", path.display()))?;
    // A value counts as unset when it came from the built-in default (or no matches are
    // available, as in tests that build Args directly).
    let unset = |id: &str| {
        matches.is_none_or(|m| matches!(m.value_source(id), Some(ValueSource::DefaultValue) | None))
    };
    macro_rules! fill {
        ($field:ident) => {
            if let Some(v) = file.$field
                && unset(stringify!($field))
            {
                args.$field = v;
            }
        };
    }
    fill!(listen);
    fill!(data_dir);
    fill!(domain);
    fill!(base_rootfs);
    fill!(code_interpreter_rootfs);
    fill!(pool_size);
    fill!(sandbox_memory);
    fill!(sandbox_disk);
    fill!(sandbox_cpus);
    fill!(sandbox_pids);
    fill!(sandbox_open_files);
    fill!(no_new_privs);
    fill!(default_timeout);
    fill!(max_lifetime);
    fill!(strip_env);
    fill!(keep_sandboxes);
    fill!(max_connections);
    fill!(max_connections_per_client);
    fill!(max_sandboxes);
    fill!(max_sandboxes_per_team);
    fill!(max_creates_per_second);
    fill!(min_free_memory);
    fill!(max_host_tasks);
    fill!(header_timeout);
    fill!(idle_timeout);
    fill!(storage_prefix);
    fill!(storage_region);
    fill!(storage_path);
    fill!(storage_read_only);
    fill!(sandbox_network);
    fill!(sandbox_internet);
    // Options without a default: the file fills them only when neither flag nor variable did.
    macro_rules! fill_opt {
        ($field:ident) => {
            if file.$field.is_some() && args.$field.is_none() {
                args.$field = file.$field;
            }
        };
    }
    fill_opt!(tls_cert);
    fill_opt!(tls_key);
    fill_opt!(storage_bucket);
    fill_opt!(storage_endpoint);
    fill_opt!(storage_sandbox_prefix);
    fill_opt!(storage_profile);
    fill_opt!(storage_credentials_file);
    fill_opt!(sandbox_cidr);
    tracing::info!(path = %path.display(), "configuration file applied");
    Ok(())
}
