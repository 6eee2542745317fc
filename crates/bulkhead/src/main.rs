//! `bulkhead`: one binary, several personalities.
//!
//! The personality is chosen before any thread exists: the sandbox init and helpers that must
//! clone into namespaces run single-threaded, so `main` dispatches on argv first and only the
//! subcommands that need one build a tokio runtime.

mod cli;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Internal personalities run before argument parsing, logging or any thread.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__launch") {
        return ExitCode::from(bulkhead_runtime::run_launcher() as u8);
    }
    let args = cli::Cli::parse();
    logging::init(args.verbose);
    match cli::dispatch(args.command) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("bulkhead: {err:#}");
            ExitCode::from(1)
        }
    }
}
