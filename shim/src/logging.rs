//! tracing set-up shared by the binaries.

use tracing_subscriber::EnvFilter;

/// Log to stderr, filtered by `$WASMLET_LOG` (tracing's env-filter syntax),
/// else `default_level`.
pub fn init_stderr(default_level: &str) {
    let filter = EnvFilter::try_from_env("WASMLET_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true).try_init();
}
