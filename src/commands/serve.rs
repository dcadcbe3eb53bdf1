//! `store-monitor serve` and `store-monitor worker`: their flags, and the settings they
//! describe, built in one place.

use std::path::PathBuf;

use clap::Args;

use super::args::{DataArgs, DbArgs, GuardArgs, RetentionArgs};
use crate::settings::{AuthMode, ServerLimits, Settings, WebSocketLimits};
use crate::telemetry::LogFormat;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to serve HTTP on (port 0: any free port).
    #[arg(long, env = "STORE_MONITOR_BIND", default_value = "127.0.0.1:8000")]
    pub bind: std::net::SocketAddr,
    /// A reverse proxy (an address or block: 10.0.0.5, 10.0.0.0/8; repeat the flag, or
    /// separate by commas) whose forwarding header (`--trusted-proxy-header`) names the
    /// client: the per-address limits, the audit and the logs use that address. From any
    /// other peer those headers are ignored. None given: the peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "STORE_MONITOR_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::http::Cidr>,
    /// The header the trusted proxies write the client's address in; only it counts (a
    /// client's own `Forwarded` passes untouched through a proxy that appends to
    /// `X-Forwarded-For`, so reading both would let it pick its address).
    #[arg(
        long = "trusted-proxy-header",
        env = "STORE_MONITOR_TRUSTED_PROXY_HEADER",
        value_name = "HEADER",
        default_value = "x-forwarded-for",
        ignore_case = true
    )]
    pub trusted_proxy_header: crate::http::ProxyHeader,
    /// Browser origins allowed to call the API from their pages, e.g.
    /// `https://dashboard.example` (repeat the flag, or separate by commas); none given:
    /// pages of this server's own origin only. WebSocket upgrades are held to the same rule.
    #[arg(
        long = "cors-origin",
        env = "STORE_MONITOR_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// No report workers in this process (other `worker` processes compute the reports).
    #[arg(long)]
    pub no_workers: bool,
    /// HTTP connections served at once; one more is answered 503 and closed. Lowered to
    /// what the process's open-files limit (`ulimit -n`) allows.
    #[arg(long, env = "STORE_MONITOR_MAX_CONNECTIONS", default_value_t = 1024, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    #[arg(long, env = "STORE_MONITOR_HEADER_TIMEOUT", default_value_t = 10, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Subscription WebSockets one client address may have open at once (behind a
    /// reverse proxy every client has the proxy's address: raise it there).
    #[arg(long, env = "STORE_MONITOR_MAX_SOCKETS_PER_ADDRESS", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sockets_per_address: u32,
    /// Subscriptions one WebSocket may have at once.
    #[arg(long, env = "STORE_MONITOR_MAX_SUBSCRIPTIONS_PER_SOCKET", default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscriptions_per_socket: u32,
    /// Whether callers need an API token (`token create`). Not given: protected mode,
    /// open on a loopback address (only this machine reaches it), tokens required on any
    /// other, and the server does not start without one.
    #[arg(long, env = "STORE_MONITOR_AUTH", value_enum, value_name = "MODE")]
    pub auth: Option<AuthArg>,
    /// triggerReport calls a minute per token (per client address without one); past it,
    /// TOO_MANY_REQUESTS (HTTP 429) with Retry-After. 0: no limit.
    #[arg(
        long,
        env = "STORE_MONITOR_TRIGGER_RATE",
        default_value_t = 60,
        value_name = "PER_MINUTE"
    )]
    pub trigger_rate: u32,
    /// reloadData calls a minute per token (per client address without one). 0: no limit.
    #[arg(
        long,
        env = "STORE_MONITOR_RELOAD_RATE",
        default_value_t = 6,
        value_name = "PER_MINUTE"
    )]
    pub reload_rate: u32,
    #[command(flatten)]
    pub work: WorkArgs,
}

/// `--auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuthArg {
    /// Every call but introspection needs a token whose role allows it.
    Required,
    /// No token needed: anyone who reaches the port may do anything.
    Off,
}

/// What a process that runs jobs needs.
#[derive(Debug, Args)]
pub(crate) struct WorkArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub database: DbArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Folder for finished reports' CSV files.
    #[arg(
        long,
        env = "STORE_MONITOR_REPORTS",
        default_value = "reports",
        value_name = "DIR"
    )]
    pub reports: PathBuf,
    /// Reload the input files every this many minutes, on the clock (10: at :00, :10, …).
    #[arg(
        long,
        env = "STORE_MONITOR_RELOAD_EVERY",
        default_value_t = 10,
        value_name = "MINUTES"
    )]
    pub reload_every: u32,
    /// Reload on this cron schedule instead, seconds first ("0 */10 * * * *").
    #[arg(long, env = "STORE_MONITOR_RELOAD_CRON", value_name = "CRON")]
    pub reload_cron: Option<String>,
    /// No scheduled reload in this process.
    #[arg(long)]
    pub no_reload: bool,
    /// Days to keep bookkeeping: finished queue jobs, reload ticks, the records of reloads
    /// that found their file unchanged, incident events and webhook delivery attempts
    /// (pruned after each scheduled reload; incidents themselves are kept).
    /// Polls are kept as --keep-polls-days says, reports as --keep-reports-days.
    #[arg(
        long,
        env = "STORE_MONITOR_KEEP_DAYS",
        default_value_t = 30,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36500)
    )]
    pub keep_days: u32,
    /// Days to keep finished reports (COMPLETE, FAILED or CANCELLED): their status, rows and
    /// CSV file are deleted after that, except a result a newer report shares. 0: keep them
    /// forever.
    #[arg(
        long,
        env = "STORE_MONITOR_KEEP_REPORTS_DAYS",
        default_value_t = 30,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(0..=36500)
    )]
    pub keep_reports_days: u32,
    /// Reports that may wait for a worker; past that `triggerReport` answers
    /// TOO_MANY_REQUESTS (HTTP 429 with Retry-After) instead of queueing without end.
    #[arg(long, env = "STORE_MONITOR_MAX_QUEUED_REPORTS", default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queued_reports: u32,
    /// Reports this process computes at once.
    #[arg(long, env = "STORE_MONITOR_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Webhook deliveries this process makes at once (0: none; other processes deliver).
    /// Each webhook has a quarter of them, and more while its receiver answers quickly.
    #[arg(
        long,
        env = "STORE_MONITOR_WEBHOOK_CONCURRENCY",
        default_value_t = 32,
        value_name = "N"
    )]
    pub webhook_concurrency: usize,
    /// When a webhook delivery that got no answer, a 5xx or a 429 is tried again: the wait
    /// before each retry, from the first failure on (a tenth of jitter either way; a longer
    /// Retry-After is waited for, up to a day). One more attempt than delays in all.
    #[arg(long, env = "STORE_MONITOR_WEBHOOK_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h",
          value_name = "DELAYS", value_parser = retry_schedule)]
    pub webhook_retry_schedule: crate::domain::webhook::RetrySchedule,
    /// Let webhooks reach loopback, private, link-local and other non-public addresses
    /// (a receiver on this machine or the local network). Off: such a URL is refused when
    /// the webhook is created and at every delivery, whatever its name resolves to then.
    #[arg(long, env = "STORE_MONITOR_WEBHOOK_ALLOW_PRIVATE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: bool,
    /// Log format.
    #[arg(long, env = "STORE_MONITOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormatArg,
    /// Which logs to write, as a tracing filter ("debug", "info,store_monitor=debug").
    /// Not given: info, with the chattier libraries at warn.
    #[arg(long, env = "RUST_LOG", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Send traces and metrics by OTLP (gRPC) to this collector, e.g.
    /// `http://127.0.0.1:4317`. Not given: none are sent. The exporter also reads the
    /// standard `OTEL_` settings (headers, timeouts).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Serve the metrics in Prometheus's text format at /metrics on this address (its own
    /// listener, never the API's port; no token, so keep it on a private address, e.g.
    /// `127.0.0.1:9464` or the machine's internal one). Not given: no /metrics.
    #[arg(long, env = "STORE_MONITOR_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<std::net::SocketAddr>,
}

/// How the server writes its logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

impl ServeArgs {
    /// The settings of a server.
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        self.work.settings(Some(self))
    }
}

fn retry_schedule(text: &str) -> Result<crate::domain::webhook::RetrySchedule, String> {
    text.parse()
}

impl WorkArgs {
    /// The settings of a process serving HTTP as `serve` says, or (`None`) of a worker.
    pub(crate) fn settings(&self, serve: Option<&ServeArgs>) -> anyhow::Result<Settings> {
        let reload = if self.no_reload {
            None
        } else if let Some(expression) = &self.reload_cron {
            Some(crate::jobs::reload::schedule(expression).map_err(anyhow::Error::msg)?)
        } else {
            Some(crate::jobs::reload::every(self.reload_every).map_err(anyhow::Error::msg)?)
        };
        let server = serve.map_or_else(ServerLimits::default, |s| ServerLimits {
            max_connections: s.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(s.header_timeout),
            ..ServerLimits::default()
        });
        let websocket = serve.map_or_else(WebSocketLimits::default, |s| WebSocketLimits {
            max_sockets_per_address: s.max_sockets_per_address as usize,
            max_subscriptions: s.max_subscriptions_per_socket as usize,
            ..WebSocketLimits::default()
        });
        Ok(Settings {
            database_url: self.database.database_url.clone(),
            bind: serve.map(|s| s.bind),
            metrics_bind: self.metrics_bind,
            trusted_proxies: serve.map_or_else(Vec::new, |s| s.trusted_proxies.clone()),
            trusted_proxy_header: serve.map_or_else(Default::default, |s| s.trusted_proxy_header),
            data_dir: self.data.data.clone(),
            files: self.data.choice(),
            reports_dir: self.reports.clone(),
            reload,
            keep_history: chrono::TimeDelta::days(self.keep_days.into()),
            snapshot_guard: self.guard.guard(),
            keep_polls_days: self.retention.keep_polls_days,
            keep_reports: (self.keep_reports_days > 0)
                .then(|| chrono::TimeDelta::days(self.keep_reports_days.into())),
            concurrency: if serve.is_some_and(|s| s.no_workers) {
                0
            } else {
                self.concurrency
            },
            cors_origins: serve.map_or_else(Vec::new, |s| s.cors_origins.clone()),
            initial_load: true,
            websocket,
            max_response_bytes: 16 << 20,
            server,
            max_queued_reports: self.max_queued_reports as usize,
            auth: serve.and_then(|s| s.auth).map(|a| match a {
                AuthArg::Required => AuthMode::Required,
                AuthArg::Off => AuthMode::Off,
            }),
            // A worker serves no calls to limit.
            trigger_rate: serve.map_or(0, |s| s.trigger_rate),
            reload_rate: serve.map_or(0, |s| s.reload_rate),
            webhook_concurrency: self.webhook_concurrency,
            webhooks: crate::settings::WebhookSettings {
                allow_private: self.webhook_allow_private,
                retry_schedule: self.webhook_retry_schedule.clone(),
            },
        })
    }

    /// How this process logs and exports telemetry.
    pub(crate) fn telemetry(&self) -> crate::telemetry::Options<'_> {
        crate::telemetry::Options {
            format: self.log_format.into(),
            filter: self.log_filter.as_deref(),
            otlp_endpoint: self.otlp_endpoint.as_deref(),
            prometheus: self.metrics_bind.is_some(),
        }
    }
}
