//! The `polls` table: adding a file's polls, the first stored poll of an instant winning.

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor};

use super::copy::CopyWriter;
use crate::input::data::Prepared;

/// Adds `prepared`'s polls (`keys`: each store id's key), keeping any poll already stored
/// for a store and instant. Returns how many were new.
///
/// Into the table itself when it is empty: the data is de-duplicated already, building the
/// primary key once afterwards takes a third of the time of keeping it up to date row by
/// row, and a table truncated in this (sub)transaction can take the rows frozen, all-visible
/// at once, so that reports read them by an index-only scan with no VACUUM. Otherwise
/// through a staging table, so that polls already stored win.
pub(crate) async fn add(
    conn: &mut PgConnection,
    prepared: &Prepared,
    keys: &HashMap<String, i32>,
) -> sqlx::Result<u64> {
    let inserted = if is_empty(&mut *conn).await? {
        truncate(&mut *conn).await?;
        drop_key(&mut *conn).await?;
        let copied = copy(
            conn,
            "COPY polls (store, at, active) FROM STDIN (FORMAT binary, FREEZE)",
            prepared,
            keys,
        )
        .await?;
        add_key(&mut *conn).await?;
        copied
    } else {
        create_staging(&mut *conn).await?;
        copy(
            conn,
            "COPY incoming_polls (store, at, active) FROM STDIN (FORMAT binary)",
            prepared,
            keys,
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

async fn copy(
    conn: &mut PgConnection,
    statement: &'static str,
    prepared: &Prepared,
    keys: &HashMap<String, i32>,
) -> sqlx::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut w = CopyWriter::new();
    for store in prepared.stores() {
        let key = keys[store.id];
        for poll in store.polls {
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
/// one in twenty rows (or never analyzed). An hour appended to a week of polls is not, and
/// its ANALYZE would be a third of that reload; autovacuum's own analyze catches up later.
async fn stale_statistics(db: impl PgExecutor<'_>, inserted: u64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT $1 * 20 > greatest(reltuples, 0) FROM pg_class WHERE oid = 'polls'::regclass")
        .bind(inserted as f64)
        .fetch_one(db)
        .await
}

async fn analyze(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("ANALYZE polls").execute(db).await.map(drop)
}
