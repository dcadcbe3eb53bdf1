//! `store-monitor reset-db --yes`: a developer's fresh start.

use crate::cli::DbArgs;

/// Drops the database, when `yes` says to, and says what it did.
pub(crate) async fn run(database: &DbArgs, yes: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        yes,
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
