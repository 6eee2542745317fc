//! `bulkhead`: one binary, several personalities.
//!
//! The personality is chosen before any thread exists: the sandbox init and helpers that must
//! clone into namespaces run single-threaded, so `main` dispatches on argv first and only the
//! subcommands that need one build a tokio runtime.

// Only `bulkhead mount` needs `unsafe` (tuning the allocator, forking its daemon); it is
// allowed there alone.
#![deny(unsafe_code)]

mod cli;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // Internal personalities run before argument parsing, logging or any thread.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__launch") {
        return ExitCode::from(bulkhead_runtime::run_launcher() as u8);
    }
    let matches = cli::Cli::command().get_matches();
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    logging::init(args.verbose, args.log_format);
    match cli::dispatch(args.command, &matches) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Not eprintln!: it panics when stderr is a broken pipe.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "bulkhead: {err:#}");
            ExitCode::from(1)
        }
    }
}
