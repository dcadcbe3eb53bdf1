//! Maintenance, every minute in each process that computes reports: makes sure every
//! unfinished report will finish.

use std::time::Duration;

use tokio::sync::watch;

use super::report::{enqueue, task_id};
use crate::db::{Pool, queue, reports};

/// How often it runs.
const EVERY: Duration = Duration::from_secs(60);
/// Reports younger than this are not reconciled: their transaction may still be open.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// What a reconciliation found and mended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Unfinished reports that had no job, queued again.
    pub requeued: usize,
    /// Unfinished reports whose job will never run again, marked FAILED.
    pub failed: usize,
}

/// Makes sure every unfinished report older than a minute will finish: one whose job is
/// missing (queued by an older version, or its job pruned by hand) is queued again; one
/// whose job apalis has given up on is marked FAILED. Safe to run in many processes at
/// once: queueing is idempotent and marking FAILED only moves an unfinished report.
pub async fn reconcile(pool: &Pool) -> anyhow::Result<Reconciled> {
    let unfinished = reports::unfinished_before(pool, chrono::Utc::now() - GRACE).await?;
    if unfinished.is_empty() {
        return Ok(Reconciled::default());
    }
    let ids: Vec<String> = unfinished.iter().map(|r| task_id(r.id).to_string()).collect();
    let jobs = queue::jobs(pool, &ids).await?;
    let mut done = Reconciled::default();
    for (report, id) in unfinished.iter().zip(&ids) {
        match jobs.iter().find(|job| &job.id == id) {
            Some(job) if job.is_live() => {}
            Some(job) => {
                tracing::warn!(report = %report.id, job = ?job, "report's job ended without finishing it");
                let error = "the report failed: its job stopped without finishing it";
                if reports::mark_failed(pool, report.id, error).await?.is_some() {
                    done.failed += 1;
                }
            }
            None => {
                let mut conn = pool.acquire().await?;
                if enqueue(&mut conn, report.id).await? {
                    tracing::warn!(report = %report.id, "report had no job: queued it again");
                    done.requeued += 1;
                }
            }
        }
    }
    Ok(done)
}

/// Runs [`reconcile`] every minute until `stopped`.
pub(crate) async fn every_minute(pool: Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    super::periodically(EVERY, stopped, || async {
        match reconcile(&pool).await {
            Ok(done) if done != Reconciled::default() => {
                tracing::warn!(
                    requeued = done.requeued,
                    failed = done.failed,
                    "reconciled reports"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot reconcile reports"),
        }
    })
    .await
}
