//! The `stores` table: a compact integer key per store id, and each store's first poll.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};

use super::copy::CopyWriter;
use crate::domain::Timestamp;

/// Makes sure every store in `stores` has a row (and its earliest poll is recorded),
/// returning the key of each.
pub(crate) async fn upsert<'a>(
    conn: &mut PgConnection,
    stores: impl Iterator<Item = (&'a str, Option<Timestamp>)>,
) -> sqlx::Result<HashMap<String, i32>> {
    let mut seen: HashMap<&'a str, Option<Timestamp>> = HashMap::new();
    for (id, first) in stores {
        let entry = seen.entry(id).or_insert(first);
        *entry = match (*entry, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut ordered: Vec<(&'a str, Option<Timestamp>)> = seen.into_iter().collect();
    // In byte order, so that new stores get keys in the order the report lists them.
    ordered.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // One reload stages the stores of each of its files in turn.
    drop_staging(&mut *conn).await?;
    create_staging(&mut *conn).await?;
    let mut copy = conn
        .copy_in_raw("COPY incoming_stores (store_id, first_poll) FROM STDIN (FORMAT binary)")
        .await?;
    let mut w = CopyWriter::new();
    for (id, first) in &ordered {
        w.row(2);
        w.text(id);
        match first {
            Some(at) => w.timestamptz(*at),
            None => w.null(),
        }
    }
    copy.send(w.finish()).await?;
    copy.finish().await?;
    insert_staged(&mut *conn).await?;
    move_first_polls_back(&mut *conn).await?;
    staged_keys(&mut *conn).await
}

async fn drop_staging(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("DROP TABLE IF EXISTS incoming_stores")
        .execute(db)
        .await
        .map(drop)
}

async fn create_staging(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE incoming_stores (store_id text PRIMARY KEY, first_poll timestamptz) ON COMMIT DROP",
    )
    .execute(db)
    .await
    .map(drop)
}

/// New stores only: a conflict's `DO UPDATE` would lock every stored row it meets, even
/// one it leaves alone, and concurrent pushes of the same stores would queue behind each
/// other until commit.
async fn insert_staged(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO stores (store_id, first_poll)
         SELECT store_id, first_poll FROM incoming_stores ORDER BY store_id COLLATE \"C\"
         ON CONFLICT (store_id) DO NOTHING",
    )
    .execute(db)
    .await
    .map(drop)
}

/// Records an earlier first poll where the staged one is (locking only those rows).
async fn move_first_polls_back(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE stores s SET first_poll = i.first_poll FROM incoming_stores i
         WHERE s.store_id = i.store_id AND i.first_poll IS NOT NULL
           AND (s.first_poll IS NULL OR i.first_poll < s.first_poll)",
    )
    .execute(db)
    .await
    .map(drop)
}

#[derive(FromRow)]
struct StoreKey {
    id: i32,
    store_id: String,
}

async fn staged_keys(db: impl PgExecutor<'_>) -> sqlx::Result<HashMap<String, i32>> {
    let keys: Vec<StoreKey> =
        sqlx::query_as("SELECT s.id, i.store_id FROM incoming_stores i JOIN stores s USING (store_id)")
            .fetch_all(db)
            .await?;
    Ok(keys.into_iter().map(|k| (k.store_id, k.id)).collect())
}

/// A store any input file has named.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct StoreRecord {
    /// Its key in the other tables.
    pub id: i32,
    pub store_id: String,
    pub first_poll: Option<DateTime<Utc>>,
}

pub(crate) async fn by_store_id(
    db: impl PgExecutor<'_>,
    store_id: &str,
) -> sqlx::Result<Option<StoreRecord>> {
    sqlx::query_as("SELECT id, store_id, first_poll FROM stores WHERE store_id = $1")
        .bind(store_id)
        .fetch_optional(db)
        .await
}

/// Whether the store is in one of `groups`.
pub(crate) async fn in_groups(db: impl PgExecutor<'_>, store: i32, groups: &[String]) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM store_groups WHERE store = $1 AND group_name = ANY($2))")
        .bind(store)
        .bind(groups)
        .fetch_one(db)
        .await
}

/// One poll as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromRow)]
pub struct PollRecord {
    pub at: DateTime<Utc>,
    pub active: bool,
}

/// Up to `limit` of a store's polls in `[from, to)` after the instant `after`, oldest
/// first (the polls' primary key order).
pub(crate) async fn polls_of(
    db: impl PgExecutor<'_>,
    store: i32,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<PollRecord>> {
    sqlx::query_as(
        "SELECT at, active FROM polls
         WHERE store = $1 AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3)
           AND ($4::timestamptz IS NULL OR at > $4)
         ORDER BY at LIMIT $5",
    )
    .bind(store)
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A store's polls in `[from, until]` after its last one before `from`, oldest first: what
/// the engine needs for figures from `from` on, whatever the length of history.
pub(crate) async fn polls_from(
    db: impl PgExecutor<'_>,
    store: i32,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<Vec<PollRecord>> {
    sqlx::query_as(
        "SELECT at, active FROM (
             (SELECT at, active FROM polls WHERE store = $1 AND at < $2 ORDER BY at DESC LIMIT 1)
             UNION ALL
             (SELECT at, active FROM polls WHERE store = $1 AND at >= $2 AND at <= $3)) p
         ORDER BY at",
    )
    .bind(store)
    .bind(from)
    .bind(until)
    .fetch_all(db)
    .await
}

/// Every polled store's key and id.
pub(crate) async fn polled(db: impl PgExecutor<'_>) -> sqlx::Result<HashMap<i32, String>> {
    let rows: Vec<StoreKey> = sqlx::query_as("SELECT id, store_id FROM stores WHERE first_poll IS NOT NULL")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|k| (k.id, k.store_id)).collect())
}
