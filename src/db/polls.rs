//! The `polls` table: adding a file's polls, the first stored poll of an instant winning.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::copy::CopyWriter;
use super::history;
use crate::domain::Timestamp;
use crate::domain::history::weeks_of;
use crate::domain::status::is_run_edge;
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
    let partitions = history::add_partitions(&mut *conn, &weeks).await?;
    let first = is_empty(&mut *conn).await? && history::kept_from(&mut *conn).await?.is_none();
    let inserted = if first {
        truncate(&mut *conn).await?;
        drop_key(&mut *conn).await?;
        drop_edges_index(&mut *conn).await?;
        let mut copied = 0;
        for partition in &partitions {
            // The name is one our migration's function made from a date, never from input.
            if !partition
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(sqlx::Error::Protocol(format!(
                    "unexpected partition name {:?}",
                    partition.name
                )));
            }
            let statement = format!(
                "COPY {} (store, at, active, edge) FROM STDIN (FORMAT binary, FREEZE)",
                partition.name
            );
            let span = partition.span();
            copied += copy(conn, &statement, prepared, keys, (span.start, span.end)).await?;
        }
        add_key(&mut *conn).await?;
        add_edges_index(&mut *conn).await?;
        copied
    } else {
        create_staging(&mut *conn).await?;
        copy(
            conn,
            "COPY incoming_polls (store, at, active, edge) FROM STDIN (FORMAT binary)",
            prepared,
            keys,
            (Timestamp(i64::MIN), Timestamp(i64::MAX)),
        )
        .await?;
        analyze_staging(&mut *conn).await?;
        create_added(&mut *conn).await?;
        let inserted = insert_new(&mut *conn).await?;
        if inserted > 0 {
            spans_of_added(&mut *conn).await?;
            mark_around_changes(&mut *conn).await?;
        }
        inserted
    };
    if inserted > 0 && stale_statistics(&mut *conn, inserted).await? {
        analyze(&mut *conn).await?;
    }
    Ok(inserted)
}

/// Copies the polls in `[span.0, span.1)`, store after store, each marked whether it is the
/// first or last of a run among the store's polls in the file.
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
        for (i, poll) in store.polls.iter().enumerate().take(end).skip(start) {
            w.row(4);
            w.int4(key);
            w.timestamptz(poll.at);
            w.bool(poll.active);
            w.bool(is_run_edge(store.polls, i));
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

async fn drop_edges_index(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("DROP INDEX polls_edges").execute(db).await.map(drop)
}

/// The reports' read path: the polls that end runs (see `migrations/…_partitioned_polls.sql`).
async fn add_edges_index(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("CREATE INDEX polls_edges ON polls (store, at) INCLUDE (active) WHERE edge")
        .execute(db)
        .await
        .map(drop)
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
        "CREATE TEMP TABLE incoming_polls (store integer, at timestamptz, active boolean, edge boolean) ON COMMIT DROP",
    )
    .execute(db)
    .await
    .map(drop)
}

/// The planner needs the staging table's size to pick the merge below.
async fn analyze_staging(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ANALYZE incoming_polls").execute(db).await.map(drop)
}

/// The polls a load added, for marking the edges of runs around them.
async fn create_added(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("CREATE TEMP TABLE added_polls (store integer, at timestamptz) ON COMMIT DROP")
        .execute(db)
        .await
        .map(drop)
}

/// An anti-join (a merge of two sorted inputs) finds the new polls far faster than a
/// conflict check per row; ON CONFLICT stays as the guarantee. Each is marked an edge until
/// [`mark_edges`] knows better, and noted in `added_polls`.
async fn insert_new(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    sqlx::query(
        "WITH added AS (
             INSERT INTO polls (store, at, active, edge)
             SELECT i.store, i.at, i.active, true FROM incoming_polls i
             WHERE NOT EXISTS (SELECT 1 FROM polls p WHERE p.store = i.store AND p.at = i.at)
             ON CONFLICT DO NOTHING
             RETURNING store, at)
         INSERT INTO added_polls SELECT store, at FROM added",
    )
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// For each store a load added polls to, the span of the added ones (`changed_spans`).
async fn spans_of_added(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE changed_spans ON COMMIT DROP AS
         SELECT store, min(at) AS lo, max(at) AS hi FROM added_polls GROUP BY store",
    )
    .execute(db)
    .await
    .map(drop)
}

/// For each store that lost polls (`removed_stores`), the removed range as a closed span
/// (`changed_spans`): instants are whole microseconds.
async fn spans_of_removed(db: impl PgExecutor<'_>, selection: &PollSelection) -> sqlx::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE changed_spans ON COMMIT DROP AS
         SELECT store, $1::timestamptz AS lo, $2::timestamptz - interval '1 microsecond' AS hi
         FROM removed_stores",
    )
    .bind(selection.from)
    .bind(selection.to)
    .execute(db)
    .await
    .map(drop)
}

/// Marks around each changed span of a load (`changed_spans`) and notes it for
/// [`tidy_edges`]: the stored polls inside each span and the two around it are marked, so
/// that whatever the change did to the runs there, every first and last poll of a run
/// stays marked. The spans' bounds are materialized first: computed in the same query as
/// the update, they were only a filter, and every poll of each store was read (7.5 s for an
/// hour appended at 140,000 stores, 1.0 s so). For an hour appended, the poll before each
/// new one was the last of its run, marked already: nothing is written.
async fn mark_around_changes(conn: &mut PgConnection) -> sqlx::Result<()> {
    probe_by_key(&mut *conn).await?;
    sqlx::query(
        "WITH noted AS (INSERT INTO edge_work (store, lo, hi) SELECT store, lo, hi FROM changed_spans
                        RETURNING store, lo, hi),
              s AS MATERIALIZED (
                  SELECT t.store, coalesce(b.at, t.lo) AS lo, coalesce(a.at, t.hi) AS hi
                  FROM noted t
                  LEFT JOIN LATERAL (SELECT at FROM polls WHERE store = t.store AND at < t.lo
                                     ORDER BY at DESC LIMIT 1) b ON true
                  LEFT JOIN LATERAL (SELECT at FROM polls WHERE store = t.store AND at > t.hi
                                     ORDER BY at LIMIT 1) a ON true)
         UPDATE polls p SET edge = true FROM s
         WHERE p.store = s.store AND p.at >= s.lo AND p.at <= s.hi AND NOT p.edge",
    )
    .execute(&mut *conn)
    .await?;
    planner_defaults(&mut *conn).await
}

/// Notes each store's span of a pushed batch (`store[i]` from `lo[i]` to `hi[i]`) for
/// [`tidy_edges`]; its polls went in unmarked. Until then reports read every poll of the
/// span and the one on each side (`snapshot::pending_polls`): those are all the polls
/// whose marks the batch may have made wrong.
pub(crate) async fn note_pushed_spans(
    db: impl PgExecutor<'_>,
    store: &[i32],
    lo: &[DateTime<Utc>],
    hi: &[DateTime<Utc>],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO edge_work (store, lo, hi)
         SELECT * FROM unnest($1::integer[], $2::timestamptz[], $3::timestamptz[])",
    )
    .bind(store)
    .bind(lo)
    .bind(hi)
    .execute(db)
    .await
    .map(drop)
}

/// Makes the edge marks exact in the spans loads noted for up to `stores` stores (the
/// lowest keys first), dropping those notes. Returns how many stores' spans it tidied.
pub(crate) async fn tidy_edges(conn: &mut PgConnection, stores: i64) -> sqlx::Result<u64> {
    create_changed_spans(&mut *conn).await?;
    let taken = take_edge_work(&mut *conn, stores).await?;
    if taken > 0 {
        mark_edges(conn).await?;
    }
    Ok(taken)
}

async fn create_changed_spans(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE changed_spans (store integer, lo timestamptz, hi timestamptz) ON COMMIT DROP",
    )
    .execute(db)
    .await
    .map(drop)
}

/// Moves the notes of up to `stores` stores into `changed_spans`, a span per store from
/// the first instant noted to the last.
async fn take_edge_work(db: impl PgExecutor<'_>, stores: i64) -> sqlx::Result<u64> {
    sqlx::query(
        "WITH taken AS (
             DELETE FROM edge_work
             WHERE store IN (SELECT DISTINCT store FROM edge_work ORDER BY store LIMIT $1)
             RETURNING store, lo, hi)
         INSERT INTO changed_spans SELECT store, min(lo), max(hi) FROM taken GROUP BY store",
    )
    .bind(stores)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Around each changed span, the polls that may have become, or stopped being, the first
/// or last of a run: from the poll before the span to the poll after it, read with one more
/// poll on each side (two probes of the key per span).
async fn touched_spans(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE touched_spans ON COMMIT DROP AS
         SELECT t.store,
                CASE WHEN b.n = 2 THEN b.lo ELSE '-infinity' END AS frame_lo, coalesce(b.hi, t.lo) AS update_lo,
                coalesce(a.lo, t.hi) AS update_hi, CASE WHEN a.n = 2 THEN a.hi ELSE 'infinity' END AS frame_hi
         FROM changed_spans t
         CROSS JOIN LATERAL (SELECT min(at) AS lo, max(at) AS hi, count(*) AS n FROM (
             SELECT at FROM polls WHERE store = t.store AND at < t.lo ORDER BY at DESC LIMIT 2) s) b
         CROSS JOIN LATERAL (SELECT min(at) AS lo, max(at) AS hi, count(*) AS n FROM (
             SELECT at FROM polls WHERE store = t.store AND at > t.hi ORDER BY at LIMIT 2) s) a",
    )
    .execute(db)
    .await
    .map(drop)
}

/// Marks anew whether each poll around the changed spans is the first or last of a run,
/// its neighbours read from the span's frame; only the marks that change are written.
async fn mark_edges(conn: &mut PgConnection) -> sqlx::Result<()> {
    touched_spans(&mut *conn).await?;
    probe_by_key(&mut *conn).await?;
    sqlx::query(
        "UPDATE polls p SET edge = x.edge
         FROM (SELECT q.store, q.at, q.edge AS was, t.update_lo, t.update_hi,
                      q.active IS DISTINCT FROM lag(q.active) OVER w
                      OR q.active IS DISTINCT FROM lead(q.active) OVER w AS edge
               FROM touched_spans t
               JOIN polls q ON q.store = t.store AND q.at >= t.frame_lo AND q.at <= t.frame_hi
               WINDOW w AS (PARTITION BY q.store ORDER BY q.at)) x
         WHERE x.at >= x.update_lo AND x.at <= x.update_hi AND x.edge IS DISTINCT FROM x.was
           AND p.store = x.store AND p.at = x.at",
    )
    .execute(&mut *conn)
    .await?;
    planner_defaults(&mut *conn).await
}

/// Makes the planner read the polls around the spans by the key, for the rest of the
/// transaction (undone with [`planner_defaults`]).
/// Costing reads as if from disk, it would rather scan every poll (twice) once many stores
/// are touched: an hour appended at 140,000 stores took 12.6 s that way, 3.3 s probing
/// each span.
async fn probe_by_key(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
                set_config('work_mem', '64MB', true), set_config('jit', 'off', true)",
    )
    .execute(db)
    .await
    .map(drop)
}

/// Undoes [`probe_by_key`] (and `incidents::probe_each_store`) for the rest of the
/// transaction: every planner setting either changes goes back to its default.
pub(super) async fn planner_defaults(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT set_config(name, reset_val, true) FROM pg_settings
         WHERE name IN ('enable_hashjoin', 'enable_mergejoin', 'work_mem', 'jit', 'enable_bitmapscan', 'enable_memoize')",
    )
    .execute(db)
    .await
    .map(drop)
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
/// partitions of `[from, to)` are visited), marks the runs' edges around the gaps anew, and
/// returns how many went.
pub(crate) async fn delete(conn: &mut PgConnection, selection: &PollSelection) -> sqlx::Result<u64> {
    create_removed_stores(&mut *conn).await?;
    let deleted = delete_selected(&mut *conn, selection).await?;
    if deleted > 0 {
        spans_of_removed(&mut *conn, selection).await?;
        mark_around_changes(conn).await?;
    }
    Ok(deleted)
}

async fn create_removed_stores(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("CREATE TEMP TABLE removed_stores (store integer PRIMARY KEY) ON COMMIT DROP")
        .execute(db)
        .await
        .map(drop)
}

async fn delete_selected(db: impl PgExecutor<'_>, selection: &PollSelection) -> sqlx::Result<u64> {
    let removed: i64 = sqlx::query_scalar(
        "WITH removed AS (
             DELETE FROM polls p USING stores s
             WHERE s.id = p.store AND ($1::text[] IS NULL OR s.store_id = ANY($1))
               AND p.at >= $2 AND p.at < $3
             RETURNING p.store),
         stores_hit AS (INSERT INTO removed_stores SELECT DISTINCT store FROM removed)
         SELECT count(*) FROM removed",
    )
    .bind(&selection.stores)
    .bind(selection.from)
    .bind(selection.to)
    .fetch_one(db)
    .await?;
    Ok(removed as u64)
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
