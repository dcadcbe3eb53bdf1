//! `store-monitor migrate`: a deploy pipeline's step: the schema this build needs, applied
//! once, before the new processes start.

use clap::Args;

use super::args::DbArgs;

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    database: DbArgs,
}

/// Applies what is missing and says what it applied (nothing, the second time).
pub(crate) async fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let migrated = crate::db::migrate(&args.database.database_url).await?;
    for (version, description) in &migrated.applied {
        println!("applied {version} {description}");
    }
    let ours = crate::db::latest_migration();
    match (migrated.applied.len(), migrated.now_at) {
        (0, Some(at)) if at > ours => eprintln!(
            "migrate: nothing to apply: the database is at {at}, newer than this build's {ours} \
             (a newer release migrated it; this build runs on it, as in a rolling upgrade)"
        ),
        (0, Some(at)) => eprintln!("migrate: nothing to apply: the database is at {at}"),
        (n, at) => eprintln!(
            "migrate: applied {n} migration{}; the database is at {}",
            if n == 1 { "" } else { "s" },
            at.map_or_else(|| "none".to_string(), |v| v.to_string())
        ),
    }
    Ok(())
}
