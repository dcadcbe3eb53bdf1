//! The `polls` table: adding a file's polls, the first stored poll of an instant winning.

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor};

use super::copy::CopyWriter;
use super::history;
use crate::domain::Timestamp;
use crate::domain::history::{WEEK_MICROS, weeks_of};
use crate::input::data::Prepared;

/// Adds `prepared`'s polls (`keys`: each store id's key), keeping any poll already stored
/// for a store and instant. Returns how many were new.
///
/// The weeks the polls fall in get their partitions first. Into each week's partition
/// itself when the table is empty (and was never pruned): the data is de-duplicated already,
/// building the primary key once afterwards takes a third of the time of keeping it up to
/// date row by row, and a partition truncated in this (sub)transaction can take the rows
/// frozen, all-visible at once, so that reports read them by an index-only scan with no
/// VACUUM (PostgreSQL freezes no COPY into a partitioned table: the rows are routed here).
/// Otherwise through a staging table, so that polls already stored win.
pub(crate) async fn add(
    conn: &mut PgConnection,
    prepared: &Prepared,
    keys: &HashMap<String, i32>,
) -> sqlx::Result<u64> {
    let weeks = weeks_of(prepared.stores().flat_map(|s| s.polls.iter().map(|p| p.at)));
    history::add_partitions(&mut *conn, &weeks).await?;
    let first = is_empty(&mut *conn).await? && history::kept_from(&mut *conn).await?.is_none();
    let inserted = if first {
        truncate(&mut *conn).await?;
        drop_key(&mut *conn).await?;
        let mut copied = 0;
        for &week in &weeks {
            let Some(partition) = history::partition_name(week) else {
                continue;
            };
            // The name is made from a date by our own code, never from input.
            let statement =
                format!("COPY {partition} (store, at, active) FROM STDIN (FORMAT binary, FREEZE)");
            let span = (week, Timestamp(week.0 + WEEK_MICROS));
            copied += copy(conn, &statement, prepared, keys, span).await?;
        }
        add_key(&mut *conn).await?;
        copied
    } else {
        create_staging(&mut *conn).await?;
        copy(
            conn,
            "COPY incoming_polls (store, at, active) FROM STDIN (FORMAT binary)",
            prepared,
            keys,
            (Timestamp(i64::MIN), Timestamp(i64::MAX)),
        )
        .await?;
        analyze_staging(&mut *conn).await?;
        insert_new(&mut *conn).await?
    };
    if inserted > 0 && stale_statistics(&mut *conn, inserted).await? {
        analyze(&mut *conn).await?;
    }
    Ok(inserted)
}

/// Copies the polls in `[span.0, span.1)`, store after store.
async fn copy(
    conn: &mut PgConnection,
    statement: &str,
    prepared: &Prepared,
    keys: &HashMap<String, i32>,
    span: (Timestamp, Timestamp),
) -> sqlx::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut w = CopyWriter::new();
    for store in prepared.stores() {
        let key = keys[store.id];
        // Each store's polls are in time order.
        let start = store.polls.partition_point(|p| p.at < span.0);
        let end = store.polls.partition_point(|p| p.at < span.1);
        for poll in &store.polls[start..end] {
            w.row(3);
            w.int4(key);
            w.timestamptz(poll.at);
            w.bool(poll.active);
        }
        if w.len() > 1 << 20 {
            copy.send(w.take()).await?;
        }
    }
    copy.send(w.finish()).await?;
    copy.finish().await
}

async fn is_empty(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM polls)")
        .fetch_one(db)
        .await
}

async fn truncate(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("TRUNCATE polls").execute(db).await.map(drop)
}

async fn drop_key(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ALTER TABLE polls DROP CONSTRAINT polls_pkey")
        .execute(db)
        .await
        .map(drop)
}

async fn add_key(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ALTER TABLE polls ADD CONSTRAINT polls_pkey PRIMARY KEY (store, at) INCLUDE (active)")
        .execute(db)
        .await
        .map(drop)
}

/// The staging table lives until the reload's transaction ends; one status file is loaded
/// per reload, so it never exists already.
async fn create_staging(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE incoming_polls (store integer, at timestamptz, active boolean) ON COMMIT DROP",
    )
    .execute(db)
    .await
    .map(drop)
}

/// The planner needs the staging table's size to pick the merge below.
async fn analyze_staging(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ANALYZE incoming_polls").execute(db).await.map(drop)
}

/// An anti-join (a merge of two sorted inputs) finds the new polls far faster than a
/// conflict check per row; ON CONFLICT stays as the guarantee.
async fn insert_new(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    sqlx::query(
        "INSERT INTO polls (store, at, active)
         SELECT i.store, i.at, i.active FROM incoming_polls i
         WHERE NOT EXISTS (SELECT 1 FROM polls p WHERE p.store = i.store AND p.at = i.at)
         ON CONFLICT DO NOTHING",
    )
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Whether `inserted` new polls make the planner's statistics of `polls` stale: more than
/// one in twenty rows (or never analyzed), counted over the partitions. An hour appended to
/// a week of polls is not, and its ANALYZE would be a third of that reload; autovacuum's own
/// analyze of the partitions catches up later.
async fn stale_statistics(db: impl PgExecutor<'_>, inserted: u64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT $1 * 20 > coalesce(sum(greatest(c.reltuples, 0)), 0)
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'polls'::regclass",
    )
    .bind(inserted as f64)
    .fetch_one(db)
    .await
}

async fn analyze(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ANALYZE polls").execute(db).await.map(drop)
}

/// Polls an admin removes: those of `stores` (`None`: every store) in `[from, to)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollSelection {
    pub stores: Option<Vec<String>>,
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
}

/// Deletes the selected polls (the bounds are values, never NULL, so that only the
/// partitions of `[from, to)` are visited); returns how many.
pub(crate) async fn delete(db: impl PgExecutor<'_>, selection: &PollSelection) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM polls p USING stores s
         WHERE s.id = p.store AND ($1::text[] IS NULL OR s.store_id = ANY($1))
           AND p.at >= $2 AND p.at < $3",
    )
    .bind(&selection.stores)
    .bind(selection.from)
    .bind(selection.to)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Sets anew the first poll of the selected stores whose first poll was in the removed
/// range: their earliest one left (NULL: none, and no report has a row for them).
pub(crate) async fn refresh_first_polls(
    db: impl PgExecutor<'_>,
    selection: &PollSelection,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE stores s SET first_poll = (SELECT min(at) FROM polls p WHERE p.store = s.id)
         WHERE ($1::text[] IS NULL OR s.store_id = ANY($1)) AND s.first_poll >= $2 AND s.first_poll < $3",
    )
    .bind(&selection.stores)
    .bind(selection.from)
    .bind(selection.to)
    .execute(db)
    .await
    .map(drop)
}

/// The newest poll stored, read from the polls themselves: one index probe per store.
pub(crate) async fn newest_stored(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<Option<chrono::DateTime<chrono::Utc>>> {
    sqlx::query_scalar(
        "SELECT max(p.at) FROM stores s CROSS JOIN LATERAL (
             SELECT at FROM polls WHERE store = s.id ORDER BY at DESC LIMIT 1) p",
    )
    .fetch_one(db)
    .await
}
