//! `store-monitor ingest`: load the input files into PostgreSQL.

use std::time::Instant;

use crate::cli::{DataArgs, DbArgs};
use crate::db;
use crate::db::loads::Outcome;
use crate::ingest::DataFiles;

pub async fn run(data: &DataArgs, database: &DbArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let files = DataFiles::find(&data.data, &data.choice())?;
    let pool = db::connect(&database.database_url, 4).await?;
    let reload = db::ingest::reload(&pool, &files).await?;
    for load in &reload.files {
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
            load.file.display(),
            load.elapsed.as_secs_f64()
        );
        for r in &load.rejected {
            eprintln!("  rejected {r}");
        }
        if load.rows_rejected > load.rejected.len() as u64 {
            eprintln!(
                "  … and {} more, all stored in rejected_rows (load {})",
                load.rows_rejected - load.rejected.len() as u64,
                load.load_id
            );
        }
    }
    let mut conn = pool.acquire().await?;
    let version = db::loads::data_version(&mut conn).await?;
    eprintln!(
        "ingest: data version {version}; {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if reload.files.iter().any(|f| f.outcome == Outcome::Failed) {
        anyhow::bail!("some files could not be loaded (see above)");
    }
    Ok(())
}
