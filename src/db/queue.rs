//! What store-monitor relies on in apalis's own tables (schema `apalis`): the storage it
//! queues report jobs in, how deep the queue is, and pruning what will never run again.
//!
//! The status texts below are apalis's (its `Status` as text); `tests/queue.rs` runs real
//! jobs through apalis and fails if these statements stop matching what it writes.

use std::time::Duration;

use apalis_postgres::{Config, PostgresStorage};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::Pool;

/// Creates apalis's schema and its migrations, if missing.
pub(crate) async fn setup(pool: &Pool) -> anyhow::Result<()> {
    PostgresStorage::<()>::setup(pool).await?;
    Ok(())
}

/// The storage of one queue, with the same settings in every process: a worker that stops
/// sending heartbeats for `missed_heartbeats × heartbeat` is taken for dead and its job
/// handed to another.
pub(crate) fn storage<T>(
    pool: &Pool,
    queue: &str,
    heartbeat: Duration,
    missed_heartbeats: usize,
) -> PostgresStorage<T> {
    let config = Config::default()
        .queue(queue)
        .batch_size(1)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(missed_heartbeats);
    PostgresStorage::new(pool).with_config(config)
}

/// Jobs of `queue` waiting, running, or failed with an attempt left.
pub async fn depth(db: impl PgExecutor<'_>, queue: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1
           AND (status IN ('Pending', 'Queued', 'Running') OR (status = 'Failed' AND attempts < max_attempts))",
    )
    .bind(queue)
    .fetch_one(db)
    .await
}

/// Deletes jobs that will never run again (done, killed, or failed with no attempt left)
/// and finished before `before`. A report's outcome lives in `reports`, not here.
pub(crate) async fn prune_finished(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM apalis.jobs
         WHERE done_at < $1
           AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
    )
    .bind(before)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Deletes workers (one row per process start) that stopped sending heartbeats before
/// `before` and hold no job: a live worker refreshes `last_seen` every few seconds.
pub(crate) async fn prune_dead_workers(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM apalis.workers w
         WHERE last_seen < $1
           AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    )
    .bind(before)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Queues a job as apalis's own `push` does (`queries/task/sink.sql`), but on the caller's
/// connection, so that a report and its job are committed together or not at all. A job
/// already queued under `id` is left as it is.
pub(crate) async fn push(
    db: impl PgExecutor<'_>,
    queue: &str,
    id: &str,
    job: &[u8],
    max_attempts: i32,
) -> sqlx::Result<bool> {
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         VALUES ($1, $2, $3, 'Pending', 0, $4, now(), 0)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(queue)
    .bind(job)
    .bind(max_attempts)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Holds a failing job back for `delay`: apalis takes a failed job with attempts left
/// again only once its `run_at` has passed.
pub(crate) async fn retry_after(db: impl PgExecutor<'_>, id: &str, delay: Duration) -> sqlx::Result<u64> {
    sqlx::query("UPDATE apalis.jobs SET run_at = now() + $2 WHERE id = $1")
        .bind(id)
        .bind(delay)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// A job's state, as apalis keeps it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobState {
    pub id: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
}

impl JobState {
    /// Whether apalis will still run it: waiting, running, or failed with attempts left.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "Pending" | "Queued" | "Running")
            || (self.status == "Failed" && self.attempts < self.max_attempts)
    }
}

/// The jobs among `ids`, in whatever state.
pub(crate) async fn jobs(db: impl PgExecutor<'_>, ids: &[String]) -> sqlx::Result<Vec<JobState>> {
    sqlx::query_as("SELECT id, status, attempts, max_attempts FROM apalis.jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}
