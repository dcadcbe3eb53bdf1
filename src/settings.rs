//! How the application runs: its settings, built once from the command line's flags
//! (`commands::serve`) or by a test, and read by `startup`.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::db::reload::Guard;
pub use crate::http::{ServerLimits, WebSocketLimits};
use crate::input::FileChoice;
pub use crate::service::WebhookSettings;
pub use crate::service::auth::AuthMode;

/// How the application runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    /// Where to serve HTTP (port 0: any free port); `None`: no HTTP (a worker process).
    pub bind: Option<SocketAddr>,
    /// Peers whose forwarding header names the client (reverse proxies).
    pub trusted_proxies: Vec<crate::http::Cidr>,
    /// The one header those proxies write the client in.
    pub trusted_proxy_header: crate::http::ProxyHeader,
    /// Where to serve `/metrics` (Prometheus text), on a listener of its own; `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub files: FileChoice,
    pub reports_dir: PathBuf,
    /// When to reload the input files; `None`: never on a schedule.
    pub reload: Option<cron::Schedule>,
    /// How long finished queue jobs, reload ticks and `unchanged` load records are kept.
    pub keep_history: chrono::TimeDelta,
    /// How much a new hours or time-zone file may take away (see `db::reload::Guard`).
    pub snapshot_guard: Guard,
    /// Days of polls kept before the newest (see `domain::history`); 0: all.
    pub keep_polls_days: u32,
    /// How long finished reports are kept; `None`: forever.
    pub keep_reports: Option<chrono::TimeDelta>,
    /// Reports computed at once by this process; 0: no report worker.
    pub concurrency: usize,
    /// Origins allowed to call the API from a browser; empty: this server's own only.
    pub cors_origins: Vec<String>,
    /// Load the input files at start when the database holds no data yet.
    pub initial_load: bool,
    /// How subscription sockets are kept.
    pub websocket: WebSocketLimits,
    /// The largest GraphQL answer sent over HTTP; a larger one is replaced by an error.
    pub max_response_bytes: usize,
    /// What each HTTP connection is allowed.
    pub server: ServerLimits,
    /// Reports that may wait for a worker; past it `triggerReport` is TOO_MANY_REQUESTS.
    pub max_queued_reports: usize,
    /// Whether callers need API tokens; `None`: protected mode, decided by `bind` (open on
    /// a loopback address, tokens required on any other).
    pub auth: Option<AuthMode>,
    /// `triggerReport` calls a minute per token or address (0: no limit).
    pub trigger_rate: u32,
    /// `reloadData` calls a minute per token or address (0: no limit).
    pub reload_rate: u32,
    /// Webhook deliveries this process makes at once (0: none); each webhook has a quarter of
    /// them, more while its receiver answers quickly (`jobs::lanes`).
    pub webhook_concurrency: usize,
    /// What webhooks may reach, and how their deliveries are retried.
    pub webhooks: WebhookSettings,
}

/// Whether callers of a server bound to `bind` need tokens when `--auth` does not say
/// (Redis's protected mode): not on a loopback address (all of 127.0.0.0/8, and ::1, as an
/// IPv4-mapped address or not), which only this machine reaches.
pub fn protected_mode(bind: SocketAddr) -> AuthMode {
    if bind.ip().to_canonical().is_loopback() {
        AuthMode::Off
    } else {
        AuthMode::Required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_run_open() {
        for open in ["127.0.0.1:0", "127.0.0.2:8000", "[::1]:0", "[::ffff:127.0.0.1]:0"] {
            assert_eq!(protected_mode(open.parse().unwrap()), AuthMode::Off, "{open}");
        }
        for guarded in ["0.0.0.0:0", "[::]:0", "10.0.0.1:0", "[::ffff:10.0.0.1]:0"] {
            assert_eq!(
                protected_mode(guarded.parse().unwrap()),
                AuthMode::Required,
                "{guarded}"
            );
        }
    }
}
