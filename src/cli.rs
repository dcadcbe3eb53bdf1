//! The command line: one binary, a subcommand per job. Each command's flags are its own,
//! in `commands/`; this file names the commands and runs the one asked for.

use clap::{Parser, Subcommand};

use crate::commands;
use crate::commands::generate::GenerateArgs;
use crate::commands::healthcheck::HealthcheckArgs;
use crate::commands::ingest::IngestArgs;
use crate::commands::migrate::MigrateArgs;
use crate::commands::push::PushArgs;
use crate::commands::report::ReportArgs;
use crate::commands::reset_db::ResetDbArgs;
use crate::commands::serve::{ServeArgs, WorkArgs};
use crate::commands::token::TokenArgs;

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
    Ingest(IngestArgs),
    /// Send status files to a server's POST /polls, in batches, several at once.
    ///
    /// For a polling system that keeps its results as CSV files (or to move polls between
    /// servers). Each batch carries an Idempotency-Key made from its bytes: pushing the same
    /// files again stores nothing twice. Busy answers (429, 503) and lost connections are
    /// retried; a batch the server refuses stops the push with the reason. Prints the
    /// totals, and a progress line on a terminal.
    Push(PushArgs),
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
    Token(TokenArgs),
    /// Apply the database migrations and the job queue's schema, print what was applied.
    ///
    /// A deploy pipeline's step before new processes start (they would apply them too, each
    /// waiting for the others' lock). A second run applies nothing. Creates the database if
    /// it does not exist.
    Migrate(MigrateArgs),
    /// Exit 0 when the server answers GET /readyz with 200 within the timeout, 1 otherwise
    /// (a container's health check, without curl).
    Healthcheck(HealthcheckArgs),
    /// Drop the database, for a fresh start in development.
    ///
    /// DATABASE_URL's database goes, with every poll, report, token and load record in it;
    /// the next `serve` or `ingest` creates it again and loads the input files. Report CSV
    /// files stay in their folder.
    ResetDb(ResetDbArgs),
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
        Command::Serve(args) => crate::startup::run(args.settings()?).await,
        Command::Worker(args) => crate::startup::run(args.settings(None)?).await,
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
        Command::Report(args) => commands::report::run(&args).await,
        Command::Ingest(args) => commands::ingest::run(&args).await,
        Command::Push(args) => commands::push::run(&args).await,
        Command::Generate(args) => commands::generate::run(&args.plan()),
        Command::Token(args) => commands::token::run(&args).await,
        Command::ResetDb(args) => commands::reset_db::run(&args).await,
        Command::Migrate(args) => commands::migrate::run(&args).await,
        Command::Healthcheck(args) => commands::healthcheck::run(&args).await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::generate::Plan;

    #[test]
    fn generate_defaults_to_the_full_size_data_set_the_benchmarks_measure() {
        let cli = Cli::parse_from(["store-monitor", "generate", "--out", "x"]);
        let Command::Generate(args) = cli.command else {
            panic!("not generate");
        };
        assert_eq!(args.plan(), Plan::full_size(Path::new("x")));
    }
}
