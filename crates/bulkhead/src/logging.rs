//! Log setup: human-readable lines (or JSON objects, `--log-format json`) on stderr,
//! filtered by `RUST_LOG` or `-v`. In JSON each line carries its fields (`sandbox_id`,
//! `template_id`, `build_id`, ...) and those of the spans it was logged in, for a log
//! collector to index.
//!
//! Logging never fails the process: a daemon whose stderr reader went away (envd, when the
//! server that drained it restarts) gets EPIPE on every write, and tracing's default is to
//! report that with `eprintln!`, which panics on the same broken stderr and took envd and
//! every connection it served down with it.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, with its fields and its spans' fields.
    Json,
}

/// Installs the global subscriber. `verbose` raises the default level (0 = warn, 1 = info,
/// 2 = debug, 3+ = trace); `RUST_LOG` overrides it.
pub fn init(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal as _;
    // Colours only for a person at a terminal, never in a log file or a collector's pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}
