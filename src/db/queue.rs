//! What store-monitor relies on in apalis's own tables (schema `apalis`): the storage it
//! queues report jobs in, how deep the queue is, handing a job back, and pruning what will
//! never run again.
//!
//! A job's status is apalis's own `Status`, stored as its text (`Display`, read back with
//! `FromStr`); this module is the one place that knows it. `tests/queue.rs` runs real jobs
//! through apalis and fails if these statements stop matching what it writes, and a test
//! below fails if apalis's spelling changes.

use std::time::Duration;

use apalis::prelude::Status;
use apalis_postgres::{Config, PostgresStorage};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::Pool;

/// The statuses of a job apalis will run (or is running); a `Failed` one is also run
/// again while it has attempts left.
const WAITING: [Status; 3] = [Status::Pending, Status::Queued, Status::Running];
/// The statuses of a job apalis will never run again (a `Failed` one, once out of
/// attempts, too).
const OVER: [Status; 2] = [Status::Done, Status::Killed];

/// Statuses as apalis stores them.
fn stored(statuses: &[Status]) -> Vec<String> {
    statuses.iter().map(Status::to_string).collect()
}

/// Creates apalis's schema and its migrations, if missing.
pub(crate) async fn setup(pool: &Pool) -> anyhow::Result<()> {
    // As for ours: a newer release's apalis may have migrated its schema further.
    let mut migrator = PostgresStorage::<()>::migrations();
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// The storage of one queue, with the same settings in every process: a worker takes up to
/// `batch` jobs a fetch; one that stops sending heartbeats for `missed_heartbeats ×
/// heartbeat` is taken for dead and its jobs handed to another.
pub(crate) fn storage<T>(
    pool: &Pool,
    queue: &str,
    batch: usize,
    heartbeat: Duration,
    missed_heartbeats: usize,
) -> PostgresStorage<T> {
    let config = Config::default()
        .queue(queue)
        .batch_size(batch)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(missed_heartbeats);
    PostgresStorage::new(pool).with_config(config)
}

/// Jobs of `queue` waiting, running, or failed with an attempt left.
pub async fn depth(db: impl PgExecutor<'_>, queue: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1
           AND (status = ANY($2) OR (status = $3 AND attempts < max_attempts))",
    )
    .bind(queue)
    .bind(stored(&WAITING))
    .bind(Status::Failed.to_string())
    .fetch_one(db)
    .await
}

/// Seconds the oldest job of `queue` not yet started has waited past its time to run (0:
/// none waits).
pub async fn oldest_waiting_seconds(db: impl PgExecutor<'_>, queue: &str) -> sqlx::Result<f64> {
    sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM now() - min(run_at))::float8, 0) FROM apalis.jobs
         WHERE job_type = $1 AND run_at <= now()
           AND (status = $2 OR (status = $3 AND attempts < max_attempts))",
    )
    .bind(queue)
    .bind(Status::Pending.to_string())
    .bind(Status::Failed.to_string())
    .fetch_one(db)
    .await
}

/// Deletes jobs that will never run again (done, killed, or failed with no attempt left)
/// and finished before `before`. A report's outcome lives in `reports`, not here.
pub(crate) async fn prune_finished(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM apalis.jobs
         WHERE done_at < $1 AND (status = ANY($2) OR (status = $3 AND attempts >= max_attempts))",
    )
    .bind(before)
    .bind(stored(&OVER))
    .bind(Status::Failed.to_string())
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
         VALUES ($1, $2, $3, $5, 0, $4, now(), 0)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(queue)
    .bind(job)
    .bind(max_attempts)
    .bind(Status::Pending.to_string())
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Queues jobs (`ids`, `jobs`: apalis's JSON) on the caller's connection, to run `delay`
/// from now.
pub(crate) async fn push_many(
    db: impl PgExecutor<'_>,
    queue: &str,
    ids: &[String],
    jobs: &[Vec<u8>],
    max_attempts: i32,
    delay: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT id, $3, job, $4, 0, $5, now() + $6, 0 FROM unnest($1::text[], $2::bytea[]) AS j (id, job)",
    )
    .bind(ids)
    .bind(jobs)
    .bind(queue)
    .bind(Status::Pending.to_string())
    .bind(max_attempts)
    .bind(delay)
    .execute(db)
    .await
    .map(drop)
}

/// Hands a job the worker `worker` took back to the queue, to run `delay` from now, under
/// the id `new_id`. apalis still holds the job under its old id: the lock it notes as the job
/// starts, which may be written after this, and the job's acknowledgement then match no
/// row, so that neither takes the job again nor marks it done. Its attempts are not
/// counted. `false` if the job is not the worker's any more (taken for orphaned and handed
/// to another). (apalis-postgres's `task-tracking` feature would break this: its heartbeat
/// requires every job the worker runs to be locked by it under the id it knows.)
pub(crate) async fn hand_back(
    db: impl PgExecutor<'_>,
    id: &str,
    new_id: &str,
    worker: &str,
    delay: Duration,
) -> sqlx::Result<bool> {
    sqlx::query(
        "UPDATE apalis.jobs SET id = $2, status = $4, lock_by = NULL, lock_at = NULL, run_at = now() + $5
         WHERE id = $1 AND lock_by = $3",
    )
    .bind(id)
    .bind(new_id)
    .bind(worker)
    .bind(Status::Pending.to_string())
    // An interval holds microseconds; a delay worked out from others may have nanoseconds.
    .bind(Duration::from_micros(delay.as_micros() as u64))
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
#[derive(Clone, Debug)]
pub struct JobState {
    pub id: String,
    /// `None`: a status this build does not know (a newer apalis's), stored as `raw`.
    pub status: Option<Status>,
    pub raw: String,
    pub attempts: i32,
    pub max_attempts: i32,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for JobState {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        let raw: String = row.try_get("status")?;
        Ok(JobState {
            id: row.try_get("id")?,
            status: raw.parse().ok(),
            raw,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
        })
    }
}

impl JobState {
    /// Whether apalis will still run it: waiting, running, or failed with attempts left. A
    /// status this build does not know is taken as live: the reconciler then leaves the
    /// report be rather than fail it for a word it cannot read.
    pub fn is_live(&self) -> bool {
        match &self.status {
            Some(Status::Failed) => self.attempts < self.max_attempts,
            Some(status) if OVER.contains(status) => false,
            Some(status) => WAITING.contains(status),
            None => true,
        }
    }
}

/// The jobs among `ids`, in whatever state.
pub(crate) async fn jobs(db: impl PgExecutor<'_>, ids: &[String]) -> sqlx::Result<Vec<JobState>> {
    sqlx::query_as("SELECT id, status, attempts, max_attempts FROM apalis.jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts apalis stores, which the statements above bind: a new apalis that spells
    /// them otherwise fails here before it fails in production.
    #[test]
    fn apalis_spells_its_statuses_as_stored() {
        let spelled: Vec<String> = [WAITING.as_slice(), OVER.as_slice(), &[Status::Failed]]
            .concat()
            .iter()
            .map(Status::to_string)
            .collect();
        assert_eq!(
            spelled,
            ["Pending", "Queued", "Running", "Done", "Killed", "Failed"]
        );
        for text in spelled {
            assert_eq!(text.parse::<Status>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn an_unknown_status_is_live_and_a_spent_failure_is_not() {
        let job = |raw: &str, attempts| JobState {
            id: "j".into(),
            status: raw.parse().ok(),
            raw: raw.into(),
            attempts,
            max_attempts: 3,
        };
        assert!(job("Paused", 3).is_live());
        assert!(job("Failed", 2).is_live());
        assert!(!job("Failed", 3).is_live());
        assert!(!job("Done", 0).is_live());
        assert!(job("Queued", 0).is_live());
    }
}
