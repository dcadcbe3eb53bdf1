//! The report job: computes a report from one database snapshot, writes its CSV and rows,
//! and moves it to COMPLETE (or FAILED), announcing every step.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;

use crate::db::snapshot::Snapshot;
use crate::db::{Pool, loads, queue, reports};
use crate::domain::{Report, ReportRecord, ReportStatus, Timestamp};
use crate::output::ReportFiles;
use crate::telemetry;

/// The apalis queue of report jobs.
pub const QUEUE: &str = "store-monitor::report";
/// A report whose job fails this many times is FAILED. A process that dies mid-report
/// spends an attempt too: apalis hands such an orphaned job to another worker whatever
/// its attempts, so the report counts its own starts (`reports.attempts`).
pub const MAX_ATTEMPTS: usize = 3;
/// The wait before the second attempt; each later one waits four times longer. A full
/// disk or a database restart has time to pass before the report is given up.
const FIRST_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often a running report writes its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What the queue carries: the report to compute.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportJob {
    pub report_id: Uuid,
}

/// What a report job needs.
#[derive(Clone, Debug)]
pub struct ReportContext {
    pub pool: Pool,
    pub files: ReportFiles,
}

/// The queue's storage, the same in every process: a worker that stops sending heartbeats
/// for 3 × 2 s is taken for dead and its report handed to another.
pub fn storage(pool: &Pool) -> PostgresStorage<ReportJob> {
    queue::storage(pool, QUEUE, 1, Duration::from_secs(2), 3)
}

/// apalis's job ids are ULIDs: the report's UUID, the same 128 bits, so that a report is
/// queued at most once.
pub fn task_id(report_id: Uuid) -> TaskId {
    TaskId::from_ulid(ulid::Ulid(report_id.as_u128()))
}

/// Puts the report's job on the queue, on the caller's connection: inside the
/// transaction that inserts the report, both are committed or neither is. `false` if the
/// report had a job already.
pub async fn enqueue(db: &mut sqlx::PgConnection, report_id: Uuid) -> anyhow::Result<bool> {
    // apalis's JSON codec, so that its workers read the job as if apalis had queued it.
    let job = serde_json::to_vec(&ReportJob { report_id })?;
    let id = task_id(report_id).to_string();
    queue::push(db, QUEUE, &id, &job, MAX_ATTEMPTS as i32)
        .await
        .context("cannot queue the report job")
}

/// Computes the report `id` (a plain function: tests call it directly). A report that is
/// already finished is left as it is.
pub async fn run(ctx: &ReportContext, id: Uuid) -> anyhow::Result<ReportRecord> {
    let started = Instant::now();
    let pool = &ctx.pool;
    let record = reports::get(pool, id)
        .await?
        .with_context(|| format!("no report {id}"))?;
    if record.status.is_final() {
        return Ok(record);
    }
    if record.attempts >= MAX_ATTEMPTS as i32 {
        // Every earlier start ended with its process: this report would take this one too.
        tracing::error!(report = %id, attempts = record.attempts, "report stopped its worker every time; giving up");
        telemetry::metrics().report_finished(crate::telemetry::ReportOutcome::Failed, started.elapsed());
        let error = format!(
            "the report failed: its worker stopped during each of its {} attempts",
            record.attempts
        );
        return reports::mark_failed(pool, id, &error)
            .await?
            .context("the report vanished");
    }
    let as_of = record.requested_as_of.map(Timestamp::from_datetime);
    // A burst of equal reports: all but the first find its result here, before the cost
    // of a snapshot (checked again in the snapshot, in case the data changed meanwhile).
    let version = loads::data_version(pool).await?;
    let now = loads::report_now(pool, as_of)
        .await?
        .and_then(Timestamp::to_datetime);
    if let Some(source) = reports::find_reusable(pool, version, now, record.interpolation).await? {
        return reuse(pool, &record, &source, started).await;
    }
    let snapshot = Snapshot::open(pool, as_of).await?;
    let now = snapshot.now.and_then(Timestamp::to_datetime);
    if let Some(source) =
        reports::find_reusable(pool, snapshot.data_version, now, record.interpolation).await?
    {
        return reuse(pool, &record, &source, started).await;
    }
    let total = snapshot.stores_total as i32;
    let Some(running) = reports::mark_running(pool, id, now, snapshot.data_version, total).await? else {
        return reports::get(pool, id).await?.context("the report vanished");
    };
    tracing::info!(report = %id, as_of = ?running.as_of, stores = total, attempt = running.attempts, "report running");
    crate::failpoint::hit("report-running");

    let done = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(report_progress(pool.clone(), id, done.clone()));
    let report_now = snapshot.now;
    let computing = async {
        crate::failpoint::stall("report-stall").await;
        snapshot.report(record.interpolation, done).await
    };
    // A cancelled report stops here, its snapshot and connections dropped; what the
    // engine's threads were doing is thrown away.
    let rows = tokio::select! {
        rows = computing => rows,
        cancelled = until_cancelled(pool, id) => {
            progress.abort();
            tracing::info!(report = %id, elapsed_ms = started.elapsed().as_millis() as u64, "report cancelled while running: stopped");
            telemetry::metrics().report_finished(crate::telemetry::ReportOutcome::Cancelled, started.elapsed());
            return cancelled;
        }
    };
    progress.abort();
    let report = Report {
        now: report_now,
        rows: rows?,
    };
    // The CSV is written on a blocking thread while the rows go to the database: the
    // report is COMPLETE only once both are whole, or its rows are taken back.
    let report = Arc::new(report);
    let path = ctx.files.path(running.result_id());
    let writing = tokio::task::spawn_blocking({
        let report = report.clone();
        move || crate::output::write_atomically(&path, |w| crate::output::write_report(&report, w))
    });
    let stored = reports::store_rows(pool, id, &report.rows).await;
    writing.await??;
    // Unless the report was cancelled meanwhile: then its file goes too.
    let Some(complete) = reports::complete(stored?, id, report.rows.len() as i32).await? else {
        let now = reports::get(pool, id).await?.context("the report vanished")?;
        anyhow::ensure!(
            now.status == ReportStatus::Cancelled,
            "the report was finished by someone else"
        );
        ctx.files.remove(running.result_id())?;
        tracing::info!(report = %id, "report cancelled as it finished: its file removed");
        return Ok(now);
    };
    tracing::info!(report = %id, stores = report.rows.len(), elapsed_ms = started.elapsed().as_millis() as u64, "report complete");
    telemetry::metrics().report_finished(crate::telemetry::ReportOutcome::Complete, started.elapsed());
    // Pages of its rows are planned on these (the report is COMPLETE already).
    match reports::keep_statistics(pool, report.rows.len()).await {
        Ok(analyzed) => tracing::debug!(report = %id, analyzed, "report rows' statistics"),
        Err(e) => tracing::warn!(report = %id, error = %e, "cannot analyze the report rows"),
    }
    Ok(complete)
}

/// Finishes `record` with the result of the equal report `source`.
async fn reuse(
    pool: &Pool,
    record: &ReportRecord,
    source: &ReportRecord,
    started: Instant,
) -> anyhow::Result<ReportRecord> {
    let reused = reports::mark_reused(pool, record.id, source).await?;
    tracing::info!(report = %record.id, source = %source.id, "report reuses an equal finished one");
    telemetry::metrics().report_finished(crate::telemetry::ReportOutcome::Reused, started.elapsed());
    Ok(reused.unwrap_or_else(|| record.clone()))
}

/// How often a running report checks whether it was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(250);

/// Resolves to the report once it is no longer RUNNING (cancelled, most likely); a read
/// that fails is tried again at the next check.
async fn until_cancelled(pool: &Pool, id: Uuid) -> anyhow::Result<ReportRecord> {
    loop {
        tokio::time::sleep(CANCEL_CHECK).await;
        if let Ok(Some(status)) = reports::status(pool, id).await
            && status != ReportStatus::Running
        {
            return reports::get(pool, id).await?.context("the report vanished");
        }
    }
}

/// Writes the running report's progress now and then, until aborted.
async fn report_progress(pool: Pool, id: Uuid, done: Arc<AtomicU64>) {
    let mut written = 0;
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let now = done.load(Ordering::Relaxed);
        if now != written && reports::set_progress(&pool, id, now as i32).await.is_ok() {
            written = now;
        }
    }
}

/// The apalis handler: runs the report in the trace of the request that asked for it; the
/// last failed attempt marks the report FAILED.
pub async fn handle(job: ReportJob, ctx: Data<ReportContext>, attempt: Attempt) -> Result<(), BoxDynError> {
    let id = job.report_id;
    let traceparent = reports::get(&ctx.pool, id)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.traceparent);
    let span = tracing::info_span!("report job", report = %id, attempt = attempt.current());
    telemetry::set_parent(&span, traceparent.as_deref());
    let outcome = run(&ctx, id).instrument(span).await;
    match outcome {
        Ok(_) => Ok(()),
        Err(e) if attempt.current() >= MAX_ATTEMPTS => {
            tracing::error!(report = %id, error = format!("{e:#}"), "report failed");
            telemetry::metrics().report_finished(crate::telemetry::ReportOutcome::Failed, Duration::ZERO);
            reports::mark_failed(&ctx.pool, id, &client_error(&e)).await?;
            Ok(())
        }
        Err(e) => {
            let delay = retry_delay(attempt.current());
            tracing::warn!(report = %id, attempt = attempt.current(), retry_in_s = delay.as_secs(), error = format!("{e:#}"), "report attempt failed; retrying");
            if let Err(e) = queue::retry_after(&ctx.pool, &task_id(id).to_string(), delay).await {
                tracing::warn!(report = %id, error = %e, "cannot hold the retry back; it runs at once");
            }
            Err(e.into())
        }
    }
}

/// How long a report waits after its `attempt`-th failure: 5 s, 20 s, 80 s, …
fn retry_delay(attempt: usize) -> Duration {
    FIRST_RETRY_AFTER * 4u32.saturating_pow(attempt.saturating_sub(1).min(8) as u32)
}

/// What a client is told of a failed report: which step failed, never a server path or
/// the operating system's text (the log has the whole cause, under the report's id).
fn client_error(error: &anyhow::Error) -> String {
    let step = if error.chain().any(|e| e.is::<std::io::Error>()) {
        "its CSV file could not be written"
    } else if error.chain().any(|e| e.is::<crate::db::QueryError>()) {
        "the database failed while it was computed"
    } else {
        "it could not be computed"
    };
    format!("the report failed: {step}; the server's log has the cause")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_report_tells_the_step_without_server_paths() {
        let io = anyhow::Error::from(std::io::Error::other("Not a directory (os error 20)"))
            .context("cannot create /srv/store-monitor/reports");
        let told = client_error(&io);
        assert!(told.contains("CSV file could not be written"), "{told}");
        assert!(!told.contains("/srv") && !told.contains("os error"), "{told}");
    }

    #[test]
    fn retries_back_off() {
        let delays: Vec<u64> = (1..=3).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [5, 20, 80]);
        assert!(retry_delay(usize::MAX) >= retry_delay(9));
    }

    #[test]
    fn a_report_is_queued_under_its_uuid_written_as_a_ulid() {
        let id = Uuid::parse_str("0192f4a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e").unwrap();
        assert_eq!(task_id(id).to_string(), "01JBTA2Z1YFCN9TKGZ58XMRQBE");
    }
}
