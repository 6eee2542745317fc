//! Log setup: human-readable lines on stderr, filtered by `RUST_LOG` or `-v`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbose` raises the default level (0 = warn, 1 = info,
/// 2 = debug, 3+ = trace); `RUST_LOG` overrides it.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
