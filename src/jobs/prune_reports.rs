//! Maintenance, every minute in each process that computes reports: forgets the reports
//! past `--keep-reports-days`, with their rows and files.

use std::time::Duration;

use tokio::sync::watch;

use crate::db::{Pool, reports};
use crate::output::ReportFiles;

/// How often it runs.
const EVERY: Duration = Duration::from_secs(60);

/// Forgets the reports that finished before `before`: their rows, and their CSV files in
/// this process's directory (a result a newer report shares is kept with it). Files of
/// reports another process pruned are found by their age and swept too. Returns how many
/// reports were deleted.
pub async fn prune(
    pool: &Pool,
    files: &ReportFiles,
    before: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<usize> {
    let deleted = reports::prune_finished(pool, before).await?;
    for (id, _) in deleted.iter().filter(|(_, own_result)| *own_result) {
        files.remove(*id)?;
    }
    let (dir, cutoff) = (files.clone(), std::time::SystemTime::from(before));
    let old = tokio::task::spawn_blocking(move || dir.written_before(cutoff)).await??;
    if !old.is_empty() {
        let kept = reports::existing(pool, &old).await?;
        for id in old.iter().filter(|id| !kept.contains(id)) {
            files.remove(*id)?;
        }
    }
    Ok(deleted.len())
}

/// Runs [`prune`] every minute until `stopped`, for the reports older than `keep`.
pub(crate) async fn every_minute(
    pool: Pool,
    files: ReportFiles,
    keep: chrono::TimeDelta,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    super::periodically(EVERY, stopped, || async {
        match prune(&pool, &files, chrono::Utc::now() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reports = n, kept_days = keep.num_days(), "pruned old reports"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot prune old reports"),
        }
    })
    .await
}
