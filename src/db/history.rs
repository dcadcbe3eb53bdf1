//! Poll history by the week: the `polls` table's partitions, made as polls arrive and
//! pruned by retention (`migrations/…_partitioned_polls.sql` holds the DDL, in functions, so
//! that every statement here stays static).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

use crate::domain::Timestamp;

/// The partition that holds the week starting at `week` (a Monday 00:00 UTC), as
/// `store_monitor_add_poll_partitions` names it.
pub(crate) fn partition_name(week: Timestamp) -> Option<String> {
    Some(format!("polls_p{}", week.to_datetime()?.format("%Y%m%d")))
}

/// Makes the partitions of `weeks` that do not exist yet (in the caller's transaction, which
/// holds the partitions' lock until it ends); returns how many it made.
pub(crate) async fn add_partitions(db: impl PgExecutor<'_>, weeks: &[Timestamp]) -> sqlx::Result<i32> {
    let weeks: Vec<DateTime<Utc>> = weeks.iter().filter_map(|w| w.to_datetime()).collect();
    sqlx::query_scalar("SELECT store_monitor_add_poll_partitions($1)")
        .bind(weeks)
        .fetch_one(db)
        .await
}

/// The weeks that have a partition, oldest first.
pub(crate) async fn weeks(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Timestamp>> {
    let weeks: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT to_timestamp(substring(c.relname FROM 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC' AS week
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'polls'::regclass AND c.relname LIKE 'polls\\_p%'
         ORDER BY week",
    )
    .fetch_all(db)
    .await?;
    Ok(weeks.into_iter().map(Timestamp::from_datetime).collect())
}

/// Takes the partitions' lock for the rest of the transaction, unless another holds it:
/// `false` then (another process is pruning or making partitions).
pub(crate) async fn try_lock(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(store_monitor_poll_partitions_lock())")
        .fetch_one(db)
        .await
}

/// Waits at most `milliseconds` for each lock pruning takes: it needs `polls` to itself for
/// a moment, and should rather try again later than hold up every report behind it.
pub(crate) async fn lock_timeout(db: impl PgExecutor<'_>, milliseconds: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config('lock_timeout', $1::text || 'ms', true)")
        .bind(milliseconds)
        .execute(db)
        .await
        .map(drop)
}

/// Prunes the oldest week's partition, which must end before the retention's cut; returns
/// how many polls went.
pub(crate) async fn prune_week(db: impl PgExecutor<'_>, week: Timestamp) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT store_monitor_prune_poll_week($1)")
        .bind(week.to_datetime())
        .fetch_one(db)
        .await
}

/// One pruned week, as `poll_prunings` records it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct PruningRecord {
    pub finished_at: DateTime<Utc>,
    pub week: DateTime<Utc>,
    pub kept_from: DateTime<Utc>,
    pub polls: i64,
    pub newest_poll: DateTime<Utc>,
    pub keep_days: i32,
}

pub(crate) async fn record_pruning(db: impl PgExecutor<'_>, r: &PruningRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO poll_prunings (finished_at, week, kept_from, polls, newest_poll, keep_days)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(r.finished_at)
    .bind(r.week)
    .bind(r.kept_from)
    .bind(r.polls)
    .bind(r.newest_poll)
    .bind(r.keep_days)
    .execute(db)
    .await
    .map(drop)
}

/// The latest prunings, newest first.
pub async fn prunings(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<PruningRecord>> {
    sqlx::query_as(
        "SELECT finished_at, week, kept_from, polls, newest_poll, keep_days
         FROM poll_prunings ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Where complete history begins: polls before it were pruned, but each store's last one
/// (`None`: nothing was ever pruned).
pub async fn kept_from(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT kept_from FROM poll_history")
        .fetch_optional(db)
        .await
}

/// The oldest poll stored: once history was pruned, the oldest of the stores' last polls
/// before it; otherwise the first poll ever loaded (no store's was removed).
pub async fn oldest_poll(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT coalesce(
             (SELECT min(at) FROM polls WHERE at < (SELECT kept_from FROM poll_history)),
             (SELECT min(first_poll) FROM stores))",
    )
    .fetch_one(db)
    .await
}
