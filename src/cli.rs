//! The command line: one binary, a subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::domain::access::Role;
use crate::domain::{Interpolation, Timestamp};
use crate::generate::Plan;
use crate::input::FileChoice;
use crate::telemetry::LogFormat;

/// How much of their business hours each store was offline.
///
/// Stores are polled about hourly (active / inactive); the report gives, per store, uptime
/// and downtime within business hours over the last hour, day and week.
#[derive(Debug, Parser)]
#[command(name = "store-monitor", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute the report from the CSV files, without a database.
    ///
    /// Writes the report CSV to stdout (or --out) and a summary, with any rejected rows,
    /// to stderr.
    Report(ReportArgs),
    /// Load the CSV files into PostgreSQL (creating the database and schema if needed).
    ///
    /// Polls are added (a poll already stored for a store and instant stays); business
    /// hours and time zones replace the stored ones. A file unchanged since its last load
    /// is skipped. Rejected rows are printed (the first few) and stored (all).
    Ingest {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        database: DbArgs,
        /// Accept business-hours or time-zone files that would leave more than
        /// --max-snapshot-loss of the stores they cover without rows (refused otherwise, as
        /// a half-copied file).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Write a realistic, deterministic store_status.csv for the bundled stores.
    ///
    /// Business hours and time zones are the real ones of the 2023 data set (--hours,
    /// --timezones); polls come about hourly with jitter, mostly in minutes :00-:09, with
    /// missing polls and outages that last hours.
    Generate(GenerateArgs),
    /// Serve the API (GraphQL, GraphiQL, WebSocket subscriptions, report files, the
    /// original trigger + poll API), run report workers and the reload schedule.
    ///
    /// At start: creates the database if missing, applies the migrations, sets up the job
    /// queue, and loads the input files if the database has no data yet. SIGINT or SIGTERM
    /// stop it gracefully: running reports finish or are handed back to the queue.
    Serve(ServeArgs),
    /// Run report workers and the reload schedule only, for more machines on the same
    /// database.
    Worker(WorkArgs),
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    Schema,
    /// Create, list or revoke API tokens (the secret is shown once, at creation).
    ///
    /// Roles: viewer reads (queries, subscriptions, report downloads); operator also
    /// triggers and cancels reports; admin also reloads data and manages tokens. A server
    /// bound to a non-loopback address needs one to start: create an admin token first.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        database: DbArgs,
    },
    /// Drop the database, for a fresh start in development.
    ///
    /// DATABASE_URL's database goes, with every poll, report, token and load record in it;
    /// the next `serve` or `ingest` creates it again and loads the input files. Report CSV
    /// files stay in their folder.
    ResetDb {
        #[command(flatten)]
        database: DbArgs,
        /// Yes, drop it (without this flag nothing is done).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print its secret (alone on stdout; details on stderr).
    Create {
        /// What it may do: viewer, operator or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who or what it is for, as the audit log and `token list` show it.
        #[arg(long)]
        name: String,
        /// Stop working after this many days (default: never).
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
        expires_in_days: Option<u32>,
    },
    /// List the tokens (never their secrets): id, role, state, created, last used, expiry.
    List,
    /// Revoke a token by id: it is refused from its next use on, by every server.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: uuid::Uuid,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to serve HTTP on (port 0: any free port).
    #[arg(long, env = "STORE_MONITOR_BIND", default_value = "127.0.0.1:8000")]
    pub bind: std::net::SocketAddr,
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

/// How much a new business-hours or time-zone file may take away.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct GuardArgs {
    /// Refuse a business-hours or time-zone file that leaves more than this percentage of
    /// the stores the stored one covers without rows, or has no rows at all: a half-copied
    /// file, most likely. The load is recorded FAILED with the figures and the old data kept.
    #[arg(long, env = "STORE_MONITOR_MAX_SNAPSHOT_LOSS", default_value_t = 20.0, value_name = "PERCENT",
          value_parser = percent)]
    pub max_snapshot_loss: f64,
}

impl GuardArgs {
    pub(crate) fn guard(&self) -> crate::db::reload::Guard {
        crate::db::reload::Guard {
            max_loss: Some(self.max_snapshot_loss / 100.0),
        }
    }
}

fn percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
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
    /// Days to keep bookkeeping: finished queue jobs, reload ticks, and the records of
    /// reloads that found their file unchanged (pruned after each scheduled reload).
    /// Polls are kept forever; reports as --keep-reports-days says.
    #[arg(
        long,
        env = "STORE_MONITOR_KEEP_DAYS",
        default_value_t = 30,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36500)
    )]
    pub keep_days: u32,
    /// Days to keep finished reports (COMPLETE or FAILED): their status, rows and CSV file
    /// are deleted after that, except a result a newer report shares. 0: keep them forever.
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
}

impl WorkArgs {
    /// How this process logs and exports telemetry.
    fn telemetry(&self) -> crate::telemetry::Options<'_> {
        crate::telemetry::Options {
            format: self.log_format.into(),
            filter: self.log_filter.as_deref(),
            otlp_endpoint: self.otlp_endpoint.as_deref(),
        }
    }
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

impl WorkArgs {
    /// The application settings these flags describe.
    fn settings(
        &self,
        bind: Option<std::net::SocketAddr>,
        workers: bool,
    ) -> anyhow::Result<crate::startup::Settings> {
        let reload = if self.no_reload {
            None
        } else if let Some(expression) = &self.reload_cron {
            Some(crate::jobs::reload::schedule(expression).map_err(anyhow::Error::msg)?)
        } else {
            Some(crate::jobs::reload::every(self.reload_every).map_err(anyhow::Error::msg)?)
        };
        Ok(crate::startup::Settings {
            database_url: self.database.database_url.clone(),
            bind,
            data_dir: self.data.data.clone(),
            files: self.data.choice(),
            reports_dir: self.reports.clone(),
            reload,
            keep_history: chrono::TimeDelta::days(self.keep_days.into()),
            snapshot_guard: self.guard.guard(),
            keep_reports: (self.keep_reports_days > 0)
                .then(|| chrono::TimeDelta::days(self.keep_reports_days.into())),
            concurrency: if workers { self.concurrency } else { 0 },
            cors_origins: Vec::new(),
            initial_load: true,
            websocket: Default::default(),
            max_response_bytes: 16 << 20,
            server: Default::default(),
            max_queued_reports: self.max_queued_reports as usize,
            auth: None,
            trigger_rate: 60,
            reload_rate: 6,
        })
    }
}

/// Where the three input files are.
#[derive(Debug, Clone, Args)]
pub(crate) struct DataArgs {
    /// Folder with the input CSVs (found by their headers, .csv or .csv.gz).
    #[arg(long, default_value = "data", env = "STORE_MONITOR_DATA")]
    pub data: PathBuf,
    /// Status file (store_id, status, timestamp_utc); default: found in --data.
    #[arg(long, value_name = "FILE")]
    pub status: Option<PathBuf>,
    /// Business-hours file (store_id, dayOfWeek or day, start_time_local, end_time_local).
    #[arg(long, value_name = "FILE")]
    pub hours: Option<PathBuf>,
    /// Time-zone file (store_id, timezone_str).
    #[arg(long, value_name = "FILE")]
    pub timezones: Option<PathBuf>,
}

impl DataArgs {
    pub(crate) fn choice(&self) -> FileChoice {
        FileChoice {
            status: self.status.clone(),
            hours: self.hours.clone(),
            timezones: self.timezones.clone(),
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArgs {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(long, env = "DATABASE_URL", default_value = crate::db::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Compute the report from the data in PostgreSQL (see `ingest`) instead of the files.
    #[arg(long)]
    pub from_db: bool,
    #[command(flatten)]
    pub database: DbArgs,
    /// Compute the report as of this UTC instant (e.g. "2023-01-25 18:00:00 UTC"); polls
    /// after it are ignored. Default: the newest poll.
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
    pub as_of: Option<Timestamp>,
    /// How status is read between polls.
    #[arg(long, default_value = "nearest", value_parser = parse_interpolation)]
    pub interpolation: Interpolation,
    /// Write the report here (atomically) instead of to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write every rejected row here as CSV (file, line, reason, raw).
    #[arg(long, value_name = "FILE")]
    pub rejected: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Folder to write store_status.csv (and copies of the hours and time-zone files) into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many stores; the real stores are sampled, plus ~3.6 % that are in neither file.
    #[arg(long, default_value_t = 14_092)]
    stores: usize,
    /// Days of polls, ending at --end.
    #[arg(long, default_value_t = 8)]
    days: u32,
    /// Seed of the pseudo-random generator: the same seed writes the same file.
    #[arg(long, default_value_t = 2023)]
    seed: u64,
    /// Average polls per store over the whole span (at most one an hour).
    #[arg(long, default_value_t = 128)]
    polls_per_store: u32,
    /// The newest poll.
    #[arg(long, default_value = "2023-01-25 18:13:22.47922 UTC", value_parser = parse_timestamp)]
    end: Timestamp,
    /// The real business hours.
    #[arg(long, default_value = "data/menu_hours.csv", value_name = "FILE")]
    hours: PathBuf,
    /// The real time zones.
    #[arg(long, default_value = "data/timezones.csv", value_name = "FILE")]
    timezones: PathBuf,
    /// Write store_status.csv.gz instead of store_status.csv.
    #[arg(long)]
    gzip: bool,
    /// Write rows grouped by store instead of shuffled like the original (compresses far better).
    #[arg(long)]
    by_store: bool,
}

impl GenerateArgs {
    fn plan(self) -> Plan {
        Plan {
            out: self.out,
            stores: self.stores,
            days: self.days,
            seed: self.seed,
            polls_per_store: self.polls_per_store,
            end: self.end,
            hours: self.hours,
            timezones: self.timezones,
            gzip: self.gzip,
            by_store: self.by_store,
        }
    }
}

fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    crate::input::fields::timestamp(s.trim().as_bytes())
}

fn parse_interpolation(s: &str) -> Result<Interpolation, String> {
    s.parse()
}

/// Runs the command the command line asks for.
pub async fn run(cli: Cli, env_file: Option<crate::envfile::EnvFile>) -> anyhow::Result<()> {
    // The long-running commands log at info (and may export telemetry); the others warn only.
    let _telemetry = match &cli.command {
        Command::Serve(args) => Some(crate::telemetry::init_server(args.work.telemetry())?),
        Command::Worker(args) => Some(crate::telemetry::init_server(args.telemetry())?),
        _ => {
            crate::telemetry::init_cli();
            None
        }
    };
    if let Some(file) = &env_file {
        file.log();
    }
    match cli.command {
        Command::Serve(args) => {
            let mut settings = args.work.settings(Some(args.bind), !args.no_workers)?;
            settings.cors_origins = args.cors_origins;
            settings.server.max_connections = args.max_connections as usize;
            settings.server.header_timeout = std::time::Duration::from_secs(args.header_timeout);
            settings.websocket.max_sockets_per_address = args.max_sockets_per_address as usize;
            settings.websocket.max_subscriptions = args.max_subscriptions_per_socket as usize;
            settings.auth = args.auth.map(|a| match a {
                AuthArg::Required => crate::startup::AuthMode::Required,
                AuthArg::Off => crate::startup::AuthMode::Off,
            });
            settings.trigger_rate = args.trigger_rate;
            settings.reload_rate = args.reload_rate;
            crate::startup::run(settings).await
        }
        Command::Worker(args) => crate::startup::run(args.settings(None, true)?).await,
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::Report(args) => commands::report::run(&args).await,
        Command::Ingest {
            data,
            database,
            force,
            guard,
        } => {
            commands::ingest::run(
                &data,
                &database,
                if force {
                    crate::db::reload::Guard::FORCE
                } else {
                    guard.guard()
                },
            )
            .await
        }
        Command::Generate(args) => commands::generate::run(&args.plan()),
        Command::Token { command, database } => commands::token::run(&command, &database).await,
        Command::ResetDb { database, yes } => commands::reset_db::run(&database, yes).await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    #[test]
    fn generate_defaults_to_the_full_size_data_set_the_benchmarks_measure() {
        let cli = Cli::parse_from(["store-monitor", "generate", "--out", "x"]);
        let Command::Generate(args) = cli.command else {
            panic!("not generate");
        };
        assert_eq!(args.plan(), Plan::full_size(Path::new("x")));
    }
}
