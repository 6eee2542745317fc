//! Command-line interface: one module per subcommand, each with an `Args` struct and a
//! `run(args) -> anyhow::Result<u8>` that returns the process exit code.

pub mod mount;

use clap::{Parser, Subcommand};

/// Self-hosted sandboxes for AI agents.
#[derive(Debug, Parser)]
#[command(name = "bulkhead", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount an S3 bucket as a filesystem (goofys-like).
    Mount(mount::Args),
}

/// Runs one subcommand and returns its exit code.
pub fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Mount(args) => mount::run(args),
    }
}
