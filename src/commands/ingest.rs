//! `store-monitor ingest`: load the input files into PostgreSQL.

use std::time::Instant;

use clap::Args;

use super::args::{DataArgs, DbArgs, GuardArgs, RetentionArgs};
use crate::db;
use crate::domain::load::Outcome;
use crate::input::DataFiles;

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    database: DbArgs,
    /// Accept business-hours, time-zone or store-groups files that would leave more than
    /// --max-snapshot-loss of the stores they cover without rows (refused otherwise, as
    /// a half-copied file).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    guard: GuardArgs,
    #[command(flatten)]
    retention: RetentionArgs,
}

pub(crate) async fn run(args: &IngestArgs) -> anyhow::Result<()> {
    let (data, database) = (&args.data, &args.database);
    let guard = if args.force {
        args.guard.guard().forced()
    } else {
        args.guard.guard()
    };
    let started = Instant::now();
    let files = DataFiles::find(&data.data, &data.choice())?;
    let pool = db::connect(&database.database_url, 4).await?;
    let reload = db::reload::reload_with(&pool, &files.found(), guard).await?;
    for file in &reload.files {
        let load = &file.record;
        let what = match load.outcome {
            Outcome::Loaded => format!(
                "loaded{}: {} rows read, {} inserted, {} rejected{}",
                if load.read_from > 0 {
                    format!(
                        " (rows appended since the last load, from byte {})",
                        load.read_from
                    )
                } else {
                    String::new()
                },
                load.rows_read,
                load.rows_inserted,
                load.rows_rejected,
                if load.changed { "" } else { " (no change)" }
            ),
            Outcome::Unchanged => "unchanged since its last load, skipped".to_string(),
            Outcome::Failed => format!("failed, nothing loaded: {}", load.error.as_deref().unwrap_or("?")),
        };
        eprintln!(
            "{:<10} {} {what} ({:.2} s)",
            load.kind.flag(),
            load.file,
            file.elapsed.as_secs_f64()
        );
        for r in &file.rejected {
            eprintln!("  rejected {r}");
        }
        let shown = file.rejected.len() as i64;
        if load.rows_rejected > shown {
            eprintln!(
                "  … and {} more, all stored in rejected_rows (load {})",
                load.rows_rejected - shown,
                load.id
            );
        }
    }
    let keep = args.retention.keep_polls_days;
    if keep > 0 {
        let pruned = crate::jobs::prune_polls::prune(&pool, keep).await?;
        match pruned.kept_from {
            _ if pruned.busy => eprintln!("polls      another process is pruning old polls; left to it"),
            Some(kept) => eprintln!(
                "polls      pruned {} week(s), {} polls older than {keep} days; every poll kept from {kept} (and each store's last before)",
                pruned.weeks, pruned.polls
            ),
            None => eprintln!("polls      nothing older than {keep} days to prune"),
        }
    }
    let version = db::loads::data_version(&pool).await?;
    eprintln!(
        "ingest: data version {version}; {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if reload.files.iter().any(|f| f.record.outcome == Outcome::Failed) {
        anyhow::bail!("some files could not be loaded (see above)");
    }
    Ok(())
}
