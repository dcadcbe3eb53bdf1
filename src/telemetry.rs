//! Logs (and, for the server, traces and metrics).

use tracing_subscriber::EnvFilter;

/// Readable logs on stderr for the one-shot commands: warnings only unless `RUST_LOG`
/// says otherwise (their own output says what happened).
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
