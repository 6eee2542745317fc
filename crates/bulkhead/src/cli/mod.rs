//! Command-line interface: one module per subcommand, each with an `Args` struct and a
//! `run(args) -> anyhow::Result<u8>` that returns the process exit code.

pub mod client;
pub mod doctor;
pub mod envd;
mod image;
pub mod interpreter;
pub mod key;
pub mod mount;
pub mod run;
pub mod sandbox;
pub mod serve;
mod serve_config;
mod serve_network;
mod serve_templates;
mod serve_tls;
mod storage_mount;
mod template;
pub mod validate;
mod validate_storage;

use clap::{Parser, Subcommand};

/// Self-hosted sandboxes for AI agents.
#[derive(Debug, Parser)]
#[command(name = "bulkhead", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text or as JSON objects (with the sandbox, template and build ids).
    #[arg(
        long,
        global = true,
        env = "BULKHEAD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one command in a fresh sandbox, then remove it (like `docker run --rm`).
    Run(run::Args),
    /// Serve the E2B-compatible API and sandbox proxy.
    Serve(Box<serve::Args>),
    /// Manage sandboxes on a running server.
    Sandbox(sandbox::Args),
    /// Build templates from template directories (e2b.toml + Dockerfile) and manage them.
    Template(template::Args),
    /// Import, list and remove the images templates are built FROM.
    Image(image::Args),
    /// Create, list and revoke API keys.
    Key(key::Args),
    /// Mount an S3 bucket as a filesystem (goofys-like).
    Mount(mount::Args),
    /// Check that this host can run `bulkhead serve`; each failure with its fix.
    Doctor(doctor::Args),
    /// Prove a template works end to end on a running server (key, leaked credentials,
    /// sandbox, storage round trip to the bucket, run_code, cleanup).
    Validate(validate::Args),
    /// In-sandbox daemon speaking the E2B envd protocol (started by the sandbox init).
    #[command(hide = true)]
    Envd(envd::Args),
    /// In-sandbox code-interpreter server on port 49999 (started in interpreter templates).
    #[command(hide = true)]
    Interpreter(interpreter::Args),
}

/// Runs one subcommand and returns its exit code.
/// `matches` are the parsed arguments behind `command`, for subcommands that must know
/// whether a value came from a flag, a variable or a default (configuration layering).
pub fn dispatch(command: Command, matches: &clap::ArgMatches) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(*args, matches.subcommand_matches("serve")),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Template(args) => template::run(args),
        Command::Image(args) => image::run(args),
        Command::Key(args) => key::run(args),
        Command::Mount(args) => mount::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Envd(args) => envd::run(args),
        Command::Interpreter(args) => interpreter::run(args),
    }
}
