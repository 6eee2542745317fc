//! `bulkhead serve`: the E2B-compatible control plane and edge proxy on one port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulkhead_runtime::{Limits, Runtime, RuntimeConfig, limits};
use bulkhead_server::templates::TemplateDefaults;
use bulkhead_server::{AppState, Manager, ManagerConfig, StorageConfig, TemplateConfig};
use bulkhead_store::{DataDir, Store};
use clap::Args as ClapArgs;

/// Exit code for invalid configuration (EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

/// Serve the E2B-compatible API and sandbox proxy.
///
/// Point the official SDKs at it with the `export` lines it prints on start.
#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Configuration is layered: built-in defaults < the config file < BULKHEAD_* variables < flags.\nThe file is TOML with the flags' names as keys (underscores for dashes), e.g.\n  listen = \"0.0.0.0:3000\"\n  pool_size = 4\n  strip_env = [\"AWS_SECRET_ACCESS_KEY\"]"
)]
pub struct Args {
    /// Configuration file (TOML); default /etc/bulkhead/bulkhead.toml when it exists.
    #[arg(long, env = "BULKHEAD_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BULKHEAD_LISTEN", default_value = "127.0.0.1:3000")]
    pub(crate) listen: SocketAddr,
    /// State directory: database, API key file, sandbox state.
    #[arg(
        long,
        env = "BULKHEAD_DATA_DIR",
        default_value = "/var/lib/bulkhead",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,
    /// Domain for host routing (`<port>-<sandboxid>.<domain>`). Any domain but `localhost`
    /// also serves HTTPS on the same port for `api.<domain>` and `*.<domain>` (the way every
    /// SDK release connects, with E2B_DOMAIN), with --tls-cert/--tls-key or else a
    /// certificate from a local CA kept in <data-dir>/tls.
    #[arg(long, env = "BULKHEAD_DOMAIN", default_value = "localhost")]
    pub(crate) domain: String,
    /// PEM certificate chain for HTTPS (e.g. a wildcard certificate for `*.<domain>` that
    /// also names `api.<domain>`); needs --tls-key.
    #[arg(
        long,
        env = "BULKHEAD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "BULKHEAD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,
    /// Root filesystem of the built-in `base` template.
    #[arg(
        long,
        env = "BULKHEAD_BASE_ROOTFS",
        default_value = "/var/cache/bulkhead/rootfs/debian",
        value_name = "DIR"
    )]
    pub(crate) base_rootfs: PathBuf,
    /// Root filesystem of the built-in `code-interpreter` template (alias
    /// `code-interpreter-v1`, E2B's default for `e2b_code_interpreter`), served when it
    /// exists: `scripts/build-rootfs.sh code-interpreter` builds it.
    #[arg(
        long,
        env = "BULKHEAD_CODE_INTERPRETER_ROOTFS",
        default_value = "/var/cache/bulkhead/rootfs/code-interpreter",
        value_name = "DIR"
    )]
    pub(crate) code_interpreter_rootfs: PathBuf,
    /// A template directory (e2b.toml + Dockerfile) built when the server starts and served
    /// under its name once built (repeatable). Unchanged steps come from the step cache, so
    /// a restart rebuilds in about a second; a failed build is logged and the server keeps
    /// serving what it had (e.g. `templates/base` replaces the plain root filesystem `base`).
    #[arg(long = "template-dir", value_name = "DIR")]
    pub(crate) template_dirs: Vec<PathBuf>,
    /// A build secret for the --template-dir builds, as `bulkhead template build --secret`
    /// takes it (repeatable). Behind a TLS-inspecting proxy, `id=host_ca_bundle,src=/etc/ssl/
    /// certs/ca-certificates.crt` lets `templates/code-interpreter` reach the package index.
    #[arg(long = "template-secret", value_name = "id=X,src=FILE|env=VAR")]
    pub(crate) template_secrets: Vec<String>,
    /// Sandboxes kept warm per template.
    #[arg(long, env = "BULKHEAD_POOL_SIZE", default_value_t = 2)]
    pub(crate) pool_size: usize,
    /// Memory limit of each sandbox.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_MEMORY",
        default_value = "1G",
        value_name = "SIZE"
    )]
    pub(crate) sandbox_memory: String,
    /// Writable disk of each sandbox.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_DISK",
        default_value = "2G",
        value_name = "SIZE"
    )]
    pub(crate) sandbox_disk: String,
    /// CPU quota of each sandbox, in cores.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_CPUS",
        default_value = "2",
        value_name = "CPUS"
    )]
    pub(crate) sandbox_cpus: String,
    /// Process limit of each sandbox.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_PIDS",
        default_value = "1024",
        value_name = "N"
    )]
    pub(crate) sandbox_pids: String,
    /// Open files per sandbox process (RLIMIT_NOFILE, soft and hard; never above the
    /// server's own hard limit).
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_OPEN_FILES",
        default_value = "65536",
        value_name = "N"
    )]
    pub(crate) sandbox_open_files: String,
    /// Run every sandbox process with no_new_privs (and the root filesystem nosuid): set-uid
    /// binaries such as sudo then give nothing. Without it, a set-uid binary raises a process
    /// to the sandbox's root and no further (an unprivileged host uid; see docs/SECURITY.md),
    /// so `sudo` works as on E2B.
    #[arg(long, env = "BULKHEAD_NO_NEW_PRIVS")]
    pub(crate) no_new_privs: bool,
    /// Timeout of a sandbox whose create names none, in seconds.
    #[arg(long, env = "BULKHEAD_DEFAULT_TIMEOUT", default_value_t = 300)]
    pub(crate) default_timeout: u64,
    /// Longest any sandbox may live, in seconds.
    #[arg(long, env = "BULKHEAD_MAX_LIFETIME", default_value_t = 86_400)]
    pub(crate) max_lifetime: u64,
    /// Environment variable removed from every create's envVars (repeatable), e.g.
    /// AWS_SECRET_ACCESS_KEY, so that clients forwarding credentials cannot put them into a
    /// sandbox.
    #[arg(
        long = "strip-env",
        env = "BULKHEAD_STRIP_ENV",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub(crate) strip_env: Vec<String>,
    /// Sandboxes on this server at once (running and paused); a create over it is a 429.
    /// 0 = no limit.
    #[arg(
        long,
        env = "BULKHEAD_MAX_SANDBOXES",
        default_value_t = 1000,
        help_heading = "Admission",
        value_name = "N"
    )]
    pub(crate) max_sandboxes: usize,
    /// Sandboxes of one team (API key owner) at once; over it a create is a 429.
    /// 0 = no limit of its own (the server's applies).
    #[arg(
        long,
        env = "BULKHEAD_MAX_SANDBOXES_PER_TEAM",
        default_value_t = 0,
        help_heading = "Admission",
        value_name = "N"
    )]
    pub(crate) max_sandboxes_per_team: usize,
    /// Creates per second one team may make (a token bucket holding as many); faster
    /// creates are a 429. 0 = no limit.
    #[arg(
        long,
        env = "BULKHEAD_MAX_CREATES_PER_SECOND",
        default_value_t = 0.0,
        help_heading = "Admission",
        value_name = "RATE"
    )]
    pub(crate) max_creates_per_second: f64,
    /// Memory the host keeps free: a create while MemAvailable is below it is a 429.
    /// `auto` = 5 % of the host's memory, at least 256M; 0 = no check.
    #[arg(
        long,
        env = "BULKHEAD_MIN_FREE_MEMORY",
        default_value = "auto",
        help_heading = "Admission",
        value_name = "SIZE"
    )]
    pub(crate) min_free_memory: String,
    /// Tasks (processes and threads) the host may run before creates are refused (429).
    /// `auto` = 75 % of min(kernel.pid_max, kernel.threads-max); 0 = no check.
    #[arg(
        long,
        env = "BULKHEAD_MAX_HOST_TASKS",
        default_value = "auto",
        help_heading = "Admission",
        value_name = "N"
    )]
    pub(crate) max_host_tasks: String,
    /// Open client connections in all. At the cap, the oldest connection with no request in
    /// flight is closed to make room; the server also raises its own open-file limit to
    /// fit.
    #[arg(
        long,
        env = "BULKHEAD_MAX_CONNECTIONS",
        default_value_t = 4096,
        help_heading = "Connections",
        value_name = "N"
    )]
    pub(crate) max_connections: usize,
    /// Open connections from one client address (counted before authentication).
    #[arg(
        long,
        env = "BULKHEAD_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 1024,
        help_heading = "Connections",
        value_name = "N"
    )]
    pub(crate) max_connections_per_client: usize,
    /// Seconds a connection has to send a request's headers before it is closed.
    #[arg(
        long,
        env = "BULKHEAD_HEADER_TIMEOUT",
        default_value_t = 10,
        help_heading = "Connections",
        value_name = "SECS"
    )]
    pub(crate) header_timeout: u64,
    /// Seconds without traffic either way after which a connection is closed (above the
    /// SDKs' 300 s keep-alive expiry, so clients normally close first).
    #[arg(
        long,
        env = "BULKHEAD_IDLE_TIMEOUT",
        default_value_t = 310,
        help_heading = "Connections",
        value_name = "SECS"
    )]
    pub(crate) idle_timeout: u64,
    /// Leave sandboxes running when the server stops; the next start adopts them. By
    /// default a stop removes every sandbox.
    #[arg(long, env = "BULKHEAD_KEEP_SANDBOXES")]
    pub(crate) keep_sandboxes: bool,
    /// S3 bucket mounted in every sandbox (at --storage-path). Without it, sandboxes share a
    /// local directory, <data-dir>/storage, at the same path. The bucket's credentials stay
    /// in this process (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a file).
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_BUCKET",
        help_heading = "Storage",
        value_name = "BUCKET"
    )]
    pub(crate) storage_bucket: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_PREFIX",
        help_heading = "Storage",
        default_value = "",
        value_name = "PREFIX"
    )]
    pub(crate) storage_prefix: String,
    /// S3 endpoint URL (default: AWS for the region).
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_ENDPOINT",
        help_heading = "Storage",
        value_name = "URL"
    )]
    pub(crate) storage_endpoint: Option<String>,
    /// Bucket region.
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_REGION",
        help_heading = "Storage",
        default_value = "us-east-1"
    )]
    pub(crate) storage_region: String,
    /// Where the storage appears inside sandboxes.
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_PATH",
        help_heading = "Storage",
        default_value = "/opt/sentient",
        value_name = "PATH"
    )]
    pub(crate) storage_path: PathBuf,
    /// Mount the storage read-only inside sandboxes.
    #[arg(long, env = "BULKHEAD_STORAGE_READ_ONLY", help_heading = "Storage")]
    pub(crate) storage_read_only: bool,
    /// How the storage mount reads a file sequentially: ranged (concurrent ranged GETs of
    /// 8 MiB parts ahead of the reader, for S3 and every server whose ranged GET reads only
    /// its range) or streamed (one GET per reader, for moto and LocalStack, whose every
    /// ranged GET reads the whole object).
    #[arg(
        long,
        value_enum,
        env = "BULKHEAD_STORAGE_READ_STRATEGY",
        default_value = "ranged",
        help_heading = "Storage"
    )]
    pub(crate) storage_read_strategy: super::mount::ReadStrategyArg,
    /// Give each sandbox only this sub-path of the storage, e.g. 'executions/{sandbox_id}'.
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_SANDBOX_PREFIX",
        help_heading = "Storage",
        value_name = "TEMPLATE"
    )]
    pub(crate) storage_sandbox_prefix: Option<String>,
    /// AWS profile for the bucket's credentials.
    #[arg(long, env = "BULKHEAD_STORAGE_PROFILE", help_heading = "Storage")]
    pub(crate) storage_profile: Option<String>,
    /// Shared-credentials file for the bucket.
    #[arg(
        long,
        env = "BULKHEAD_STORAGE_CREDENTIALS_FILE",
        help_heading = "Storage",
        value_name = "FILE"
    )]
    pub(crate) storage_credentials_file: Option<PathBuf>,
    /// Give sandboxes a network (a veth, NAT, the firewall and a DNS forwarder). Off =
    /// loopback only, for hosts without nf_tables.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_NETWORK",
        help_heading = "Network",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub(crate) sandbox_network: bool,
    /// `allow_internet_access` of a create that does not say.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_INTERNET",
        help_heading = "Network",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub(crate) sandbox_internet: bool,
    /// Address pool of sandboxes (a /31 each); default: the first /20 of 10.208.0.0/12
    /// (from 10.213.0.0/20 on) that no other server holds. Refused when it overlaps a host
    /// route.
    #[arg(
        long,
        env = "BULKHEAD_SANDBOX_CIDR",
        help_heading = "Network",
        value_name = "CIDR"
    )]
    pub(crate) sandbox_cidr: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(mut args: Args, matches: Option<&clap::ArgMatches>) -> anyhow::Result<u8> {
    if let Err(e) = super::serve_config::apply_file(&mut args, matches) {
        eprintln!("bulkhead: {e:#}");
        return Ok(EXIT_BAD_CONFIG);
    }
    let limits = match sandbox_limits(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    let template_secrets = match super::serve_templates::template_secrets(&args.template_secrets) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    if !args.base_rootfs.join("bin").exists() {
        eprintln!(
            "bulkhead: the base template's root filesystem {} is missing: run scripts/build-rootfs.sh",
            args.base_rootfs.display()
        );
        return Ok(EXIT_BAD_CONFIG);
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let exe = std::env::current_exe().context("locating the bulkhead binary")?;
    let runtime = Runtime::new(RuntimeConfig::new(&args.data_dir, &exe))
        .context("starting the sandbox runtime")?;
    let admission = admission(&args)?;
    // The host-task budget also caps the sandboxes' tasks together, in the kernel.
    if let Err(e) = runtime.set_pids_budget(admission.max_host_tasks) {
        tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "the tasks of all sandboxes are not capped");
    }
    let layout = DataDir::new(&args.data_dir);
    let store = Store::open(&layout.db()).context("opening the metadata database")?;
    let api_key = ensure_api_key(&store, &layout)?;
    let (storage, storage_mount) = match setup_storage(&args, &layout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bulkhead: storage: {e:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    let network = match super::serve_network::setup(&args) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bulkhead: sandbox network: {e:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    let tls = match super::serve_tls::setup(&args, &layout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bulkhead: tls: {e:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let args_keep = args.keep_sandboxes;
    let mounts_dir = layout.mounts();
    let result = tokio.block_on(async move {
        let (network, tasks) = match network {
            Some(n) => (
                Some(n.settings),
                vec![tokio::spawn(n.dns.run()), tokio::spawn(n.proxy.run())],
            ),
            None => (None, Vec::new()),
        };
        let net_handle = network.as_ref().map(|n| n.network.clone());
        let build_runtime = runtime.clone();
        let build_network = network.clone();
        let build_storage = bulkhead_runtime::BindMount {
            source: storage.host_root.clone(),
            target: storage.target.clone(),
            read_only: storage.read_only,
            idmap: true,
        };
        let template_limits = limits.clone();
        let manager = Manager::new(
            runtime,
            store.clone(),
            ManagerConfig {
                templates: templates(&args, limits)?,
                envd_layer: match envd_layer(&layout, &exe) {
                    Ok(dir) => Some(dir),
                    Err(e) => {
                        tracing::info!(error = %format!("{e:#}"), "envd is bound into sandboxes (its host path shows in their mountinfo) instead of stacked as a layer");
                        None
                    }
                },
                envd_binary: exe,
                default_timeout: Duration::from_secs(args.default_timeout),
                max_lifetime: Duration::from_secs(args.max_lifetime),
                strip_env_vars: args.strip_env.clone(),
                storage: Some(storage),
                network,
                admission,
            },
        );
        // Sandboxes of the previous run: running ones are taken back, everything else that is
        // left on disk (a crash, SIGKILL) is removed completely before serving.
        let (adopted, removed) = manager.restore().await.context("restoring sandboxes")?;
        if adopted + removed > 0 {
            tracing::info!(adopted, removed, "sandboxes of the previous run restored");
        }
        bulkhead_server::prometheus::METRICS.watch_mounts(layout.mounts());
        let templates = super::serve_templates::setup(
            &args,
            &layout,
            build_runtime,
            manager.clone(),
            build_network,
            TemplateDefaults {
                limits: template_limits,
                pool_size: args.pool_size,
                storage: Some(build_storage),
            },
            // The operator: the team of the key the server printed at its first start.
            store.ensure_team("default").context("finding the default team")?,
        )
        .context("setting up the template builder")?;
        super::serve_templates::build_at_start(
            templates.clone(),
            args.template_dirs.clone(),
            template_secrets,
        );
        let state = AppState {
            manager: manager.clone(),
            auth: Arc::new(store),
            domain: args.domain.clone(),
            templates: Some(templates),
        };
        let limits = connection_limits(&args)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("Bulkhead is listening on http://{addr}. Point the E2B SDKs at it:");
        println!("export E2B_API_URL=http://{addr}");
        println!("export E2B_SANDBOX_URL=http://{addr}");
        match &api_key {
            Some(key) => {
                println!("export E2B_API_KEY={}", key.expose());
                println!(
                    "# this key is shown once; it is also in {} (mode 0600)",
                    layout.api_key_file().display()
                );
            }
            None if layout.api_key_file().exists() => {
                println!(
                    "export E2B_API_KEY=$(cat {})",
                    layout.api_key_file().display()
                )
            }
            None => println!("# create an API key with: bulkhead key create"),
        }
        if let Some(tls) = &tls {
            tls.print_exports(&args.domain, addr);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, "serving");
        let tls_config = tls.map(|t| t.config);
        bulkhead_server::serve_with_tls(state, listener, limits, tls_config, shutdown_signal())
            .await
            .context("serving")?;
        if args.keep_sandboxes {
            tracing::info!(
                sandboxes = manager.count(),
                "shutting down; sandboxes keep running for the next start"
            );
        } else {
            tracing::info!("shutting down: removing sandboxes");
            manager.kill_all().await;
            if let Some(n) = &net_handle {
                n.shutdown();
            }
        }
        for t in tasks {
            t.abort();
        }
        Ok::<u8, anyhow::Error>(0)
    });
    // The bucket's filesystem is its own process, so that sandboxes kept across a restart
    // (or a crash) never see their storage die; a clean stop without --keep-sandboxes ends it.
    if let Some(mountpoint) = storage_mount
        && !args_keep
    {
        super::storage_mount::release(&mountpoint);
    }
    if !args_keep {
        super::storage_mount::release_templates(&mounts_dir);
    }
    result
}

/// The built-in templates: `base`, and `code-interpreter` when its root filesystem exists.
fn templates(args: &Args, limits: Limits) -> anyhow::Result<Vec<TemplateConfig>> {
    let mut templates = vec![TemplateConfig {
        id: "base".into(),
        aliases: vec![],
        layers: vec![
            args.base_rootfs
                .canonicalize()
                .context("resolving the base rootfs")?,
        ],
        limits: limits.clone(),
        pool_size: args.pool_size,
        code_interpreter: false,
        env: Vec::new(),
        storage: None,
        service: None,
        owner: None,
        workdir: None,
    }];
    let ci = &args.code_interpreter_rootfs;
    if ci.join("bin").exists() {
        templates.push(TemplateConfig {
            id: "code-interpreter".into(),
            aliases: vec!["code-interpreter-v1".into()],
            layers: vec![
                ci.canonicalize()
                    .context("resolving the code-interpreter rootfs")?,
            ],
            limits,
            pool_size: args.pool_size,
            code_interpreter: true,
            env: Vec::new(),
            storage: None,
            service: None,
            owner: None,
            workdir: None,
        });
    } else {
        tracing::info!(path = %ci.display(), "no code-interpreter root filesystem; its template is not served");
    }
    Ok(templates)
}

fn sandbox_limits(args: &Args) -> anyhow::Result<Limits> {
    Ok(Limits {
        memory_bytes: Some(limits::parse_size("memory", &args.sandbox_memory)?),
        pids: Some(limits::parse_count("pids", &args.sandbox_pids)?),
        cpu_millis: Some(limits::parse_cpus(&args.sandbox_cpus)?),
        disk_bytes: Some(limits::parse_size("disk", &args.sandbox_disk)?),
        open_files: Some(limits::parse_count("open-files", &args.sandbox_open_files)?),
        allow_setuid: !args.no_new_privs,
    })
}

/// The layer that brings envd into every sandbox: `<data-dir>/envd/<binary id>/.bulkhead/
/// bulkhead`, a hard link of the running binary, made once per binary (a data dir on
/// another filesystem than the binary keeps the bind instead). A layer's host path never shows inside the sandbox,
/// where a bind of the binary showed it in `/proc/self/mountinfo`. Layers of earlier
/// binaries are kept: sandboxes adopted after a restart still stack theirs.
fn envd_layer(layout: &DataDir, exe: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(exe).with_context(|| format!("reading {}", exe.display()))?;
    let id = format!(
        "{:x}-{:x}-{:x}-{:x}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000
    );
    let dir = layout.root().join("envd").join(id);
    let bin_dir = dir.join(".bulkhead");
    let bin = bin_dir.join("bulkhead");
    if std::fs::metadata(&bin).is_ok_and(|m| m.len() == meta.len()) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    for d in [layout.root().join("envd"), dir.clone(), bin_dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    }
    let tmp = bin_dir.join(format!(".bulkhead-{:08x}", rand::random::<u32>()));
    // A hard link or nothing: a copy of a debug build is hundreds of MiB per data dir.
    std::fs::hard_link(exe, &tmp).with_context(|| {
        format!(
            "linking {} into the data dir (another filesystem?)",
            exe.display()
        )
    })?;
    std::fs::rename(&tmp, &bin).with_context(|| format!("placing {}", bin.display()))?;
    Ok(dir)
}

/// The local storage tree, `<data-dir>/storage/tree`, below a directory only root may
/// enter (0700). Sandboxes reach the tree through their bind, not its host path, and see it
/// with their own ids, so sandbox root is uid 0 there: a set-uid-root file it writes must not
/// be reachable, let alone runnable, by an unprivileged user of the host. A data dir made by
/// an earlier version, with the tree at `<data-dir>/storage` itself, is moved below.
fn local_storage_dir(layout: &DataDir) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let outer = layout.root().join("storage");
    let tree = outer.join("tree");
    if outer.is_dir() && !tree.is_dir() && std::fs::read_dir(&outer)?.next().is_some() {
        let moving = layout.root().join("storage.moving");
        std::fs::rename(&outer, &moving).context("moving the old storage directory")?;
        std::fs::create_dir(&outer)?;
        std::fs::rename(&moving, &tree).context("moving the old storage directory")?;
    }
    std::fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(&outer, Some(0), Some(0))?;
    Ok(tree)
}

/// Mounts the bucket on the host (or prepares the local directory) that every sandbox sees.
/// Returns the storage and, for a bucket, the host mount point to unmount at a clean stop.
fn setup_storage(
    args: &Args,
    layout: &DataDir,
) -> anyhow::Result<(StorageConfig, Option<PathBuf>)> {
    if let Some(p) = &args.storage_sandbox_prefix {
        anyhow::ensure!(
            !p.split('/').any(|c| c == ".."),
            "--storage-sandbox-prefix {p:?} must not contain '..'"
        );
    }
    anyhow::ensure!(
        args.storage_path.is_absolute(),
        "--storage-path {} must be absolute",
        args.storage_path.display()
    );
    let (host_root, mounted) = match &args.storage_bucket {
        Some(bucket) => {
            let mountpoint = super::storage_mount::ensure(args, layout, bucket)?;
            (mountpoint.clone(), Some(mountpoint))
        }
        None => {
            let dir = local_storage_dir(layout)?;
            // Sticky, like /tmp: every user may create here, none may remove or rename
            // another user's files. Sandboxes see it with their own ids (an idmapped bind):
            // every sandbox's `user` is one owner here (uid 1000 on the host too), and every
            // sandbox's root is root of this tree (its owner, host uid 0); a kernel refuses
            // writes below an owner the idmap cannot show, so no id outside the sandboxes'
            // could own it. Between sandboxes, per-sandbox prefixes are the isolation.
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))?;
            (dir, None)
        }
    };
    Ok((
        StorageConfig {
            host_root,
            target: args.storage_path.clone(),
            read_only: args.storage_read_only,
            sandbox_prefix: args.storage_sandbox_prefix.clone(),
        },
        mounted,
    ))
}

/// On the first start (no key in the database), creates the `default` team and its first
/// key, writes the key to `<data-dir>/api-key` (0600) and returns it to be shown once.
fn ensure_api_key(
    store: &Store,
    layout: &DataDir,
) -> anyhow::Result<Option<bulkhead_store::Secret>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if store.has_api_keys()? {
        return Ok(None);
    }
    let team = store.ensure_team("default")?;
    let key = store.create_api_key(&team, "first key")?;
    let path = layout.api_key_file();
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{}", key.secret.expose())?;
    Ok(Some(key.secret))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The admission limits from the flags (`auto` from this host's figures, 0 = none).
fn admission(args: &Args) -> anyhow::Result<bulkhead_server::manager::AdmissionConfig> {
    let auto = bulkhead_server::manager::AdmissionConfig::default();
    let nonzero = |n: usize| (n > 0).then_some(n);
    let rate = args.max_creates_per_second;
    if !rate.is_finite() || rate < 0.0 {
        anyhow::bail!("--max-creates-per-second must be a rate of 0 or more, not {rate}");
    }
    let min_free_memory = match args.min_free_memory.trim() {
        "auto" => auto.min_free_memory,
        text => Some(limits::parse_size("min-free-memory", text)?).filter(|&b| b > 0),
    };
    let max_host_tasks = match args.max_host_tasks.trim() {
        "auto" => auto.max_host_tasks,
        text => Some(limits::parse_count("max-host-tasks", text)?).filter(|&n| n > 0),
    };
    Ok(bulkhead_server::manager::AdmissionConfig {
        max_sandboxes: nonzero(args.max_sandboxes),
        max_per_team: nonzero(args.max_sandboxes_per_team),
        creates_per_second: (rate > 0.0).then_some(rate),
        min_free_memory,
        max_host_tasks,
    })
}

/// The connection limits from the flags, checked, with the process's open-file limit raised
/// to its hard limit so the cap (not EMFILE) is what a flood meets first.
fn connection_limits(args: &Args) -> anyhow::Result<bulkhead_server::ConnectionLimits> {
    let limits = bulkhead_server::ConnectionLimits {
        max_connections: args.max_connections,
        max_per_client: args.max_connections_per_client,
        header_read_timeout: std::time::Duration::from_secs(args.header_timeout),
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
    };
    limits
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid connection limits: {e}"))?;
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
        // Sandboxes, mounts, the database and sockets to envd need descriptors too.
        let budget = usize::try_from(hard).unwrap_or(usize::MAX) / 2;
        if limits.max_connections > budget {
            tracing::warn!(
                max_connections = limits.max_connections,
                nofile = hard,
                "the connection cap is more than half the open-file limit: a flood may meet EMFILE before the cap"
            );
        }
    }
    Ok(limits)
}
