//! The command line: one binary, a subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::domain::{Interpolation, Timestamp};
use crate::ingest::files::FileChoice;

/// How much of their business hours each store was offline.
///
/// Stores are polled about hourly (active / inactive); the report gives, per store, uptime
/// and downtime within business hours over the last hour, day and week.
#[derive(Debug, Parser)]
#[command(name = "store-monitor", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    },
    /// Write a realistic, deterministic store_status.csv for the bundled stores.
    ///
    /// Business hours and time zones are the real ones of the 2023 data set (in --source);
    /// polls come about hourly with jitter, mostly in minutes :00-:09, with missing polls
    /// and outages that last hours.
    Generate(commands::generate::GenerateArgs),
    /// Measure the engine and the report on generated full-size data and print the figures.
    Bench(commands::bench::BenchArgs),
}

/// Where the three input files are.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
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
    pub fn choice(&self) -> FileChoice {
        FileChoice {
            status: self.status.clone(),
            hours: self.hours.clone(),
            timezones: self.timezones.clone(),
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(long, env = "DATABASE_URL", default_value = crate::db::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
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

fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    crate::ingest::fields::timestamp(s.trim().as_bytes())
}

fn parse_interpolation(s: &str) -> Result<Interpolation, String> {
    s.parse()
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Report(args) => commands::report::run(&args).await,
        Command::Ingest { data, database } => commands::ingest::run(&data, &database).await,
        Command::Generate(args) => commands::generate::run(&args),
        Command::Bench(args) => commands::bench::run(&args).await,
    }
}
