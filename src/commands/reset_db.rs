//! `store-monitor reset-db --yes`: a developer's fresh start.

use clap::Args;

use super::args::DbArgs;

#[derive(Debug, Args)]
pub(crate) struct ResetDbArgs {
    #[command(flatten)]
    database: DbArgs,
    /// Yes, drop it (without this flag nothing is done).
    #[arg(long)]
    yes: bool,
}

/// Drops the database, when `--yes` says to, and says what it did.
pub(crate) async fn run(args: &ResetDbArgs) -> anyhow::Result<()> {
    let database = &args.database;
    anyhow::ensure!(
        args.yes,
        "reset-db drops the database and everything in it: run it again with --yes"
    );
    let (name, existed) = crate::db::drop_database(&database.database_url).await?;
    if existed {
        eprintln!("dropped the database {name}; the next serve or ingest creates it again");
    } else {
        eprintln!("there was no database {name}: nothing to drop");
    }
    Ok(())
}
