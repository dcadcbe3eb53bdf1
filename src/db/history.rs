//! Poll history by the week: the `polls` table's partitions, made as polls arrive and
//! pruned by retention (`migrations/…_partitioned_polls.sql` holds the DDL, in functions, so
//! that every statement here stays static).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

use crate::domain::Timestamp;
use crate::domain::history::Span;

/// A partition of `polls` and its time, `[lo, hi)`.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub(crate) struct Partition {
    pub name: String,
    pub lo: DateTime<Utc>,
    pub hi: DateTime<Utc>,
}

impl Partition {
    pub fn span(&self) -> Span {
        Span {
            start: Timestamp::from_datetime(self.lo),
            end: Timestamp::from_datetime(self.hi),
        }
    }
}

/// Makes the partitions `weeks` lack (in the caller's transaction, which holds the
/// partitions' lock until it ends, if it made any): a week's own, or for a week over 53
/// weeks older than the newest a coarse one (the migration says why). Returns every
/// partition that holds part of those weeks, oldest first.
pub(crate) async fn add_partitions(
    db: impl PgExecutor<'_>,
    weeks: &[Timestamp],
) -> sqlx::Result<Vec<Partition>> {
    let weeks: Vec<DateTime<Utc>> = weeks.iter().filter_map(|w| w.to_datetime()).collect();
    sqlx::query_as("SELECT name, lo, hi FROM store_monitor_poll_partitions_for($1)")
        .bind(weeks)
        .fetch_all(db)
        .await
}

/// The partitions' times (but `polls_before`'s), oldest first.
pub(crate) async fn partitions(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Span>> {
    let partitions: Vec<Partition> =
        sqlx::query_as("SELECT name, lo, hi FROM store_monitor_poll_partitions() ORDER BY lo")
            .fetch_all(db)
            .await?;
    Ok(partitions.iter().map(Partition::span).collect())
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

/// Prunes the oldest partition (a week's, or a coarse one), which must end before the
/// retention's cut; returns how many polls went.
pub(crate) async fn prune_partition(db: impl PgExecutor<'_>, span: Span) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT store_monitor_prune_poll_week($1)")
        .bind(span.start.to_datetime())
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
