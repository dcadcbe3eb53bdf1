//! Forgetting old bookkeeping, so that a service left running for months does not grow
//! tables nobody reads: finished queue jobs, dead workers, claimed reload ticks, and the
//! `unchanged` load records every tick writes.
//!
//! Reports (with their rows) and polls are the owners' data and are never pruned; nor are
//! loads that changed or failed to change the data: the data version, the newest poll and
//! the checksum that lets an unchanged file be skipped all come from those.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How many rows each kind of pruning removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub jobs: u64,
    pub workers: u64,
    pub reload_ticks: u64,
    pub loads: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.jobs + self.workers + self.reload_ticks + self.loads
    }
}

/// Removes what finished before `before`. Each statement stands alone: a half-done pruning
/// is as valid as none.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<Pruned> {
    Ok(Pruned {
        jobs: finished_jobs(pool, before).await?,
        workers: dead_workers(pool, before).await?,
        reload_ticks: reload_ticks(pool, before).await?,
        loads: unchanged_loads(pool, before).await?,
    })
}

/// Queue jobs that will never run again: done, killed, or failed with no attempt left.
/// A report's outcome lives in `reports`, not here.
async fn finished_jobs(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM apalis.jobs
         WHERE done_at < $1
           AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
}

/// Workers (one row per process start) that stopped sending heartbeats long ago and hold
/// no job: a live worker refreshes `last_seen` every few seconds.
async fn dead_workers(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM apalis.workers w
         WHERE last_seen < $1
           AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
}

/// Ticks are claimed when they fire; an old one is never claimed again.
async fn reload_ticks(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM reload_ticks WHERE tick < $1")
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// `unchanged` loads changed nothing and repeat the checksum of the load before them, so
/// the skip-unchanged check and the data version read the same without them. The newest
/// load of each kind stays, so that `dataset` still shows when each file was last looked at.
async fn unchanged_loads(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM data_loads d
         WHERE outcome = 'unchanged'
           AND finished_at < $1
           AND id < (SELECT max(id) FROM data_loads n WHERE n.kind = d.kind)",
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|r| r.rows_affected())
}
