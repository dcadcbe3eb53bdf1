//! The `store_groups` table as admins edit it (the store-groups file replaces it whole:
//! `replace`), and what the API lists of it.

use sqlx::{FromRow, PgExecutor};

/// A group and how many stores it has.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct GroupRecord {
    pub name: String,
    pub stores: i64,
}

/// Up to `limit` groups by name after `after`, of `names` only when given.
pub(crate) async fn page(
    db: impl PgExecutor<'_>,
    names: Option<&[String]>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<GroupRecord>> {
    sqlx::query_as(
        "SELECT group_name AS name, count(*) AS stores FROM store_groups
         WHERE ($1::text[] IS NULL OR group_name = ANY($1)) AND ($2::text IS NULL OR group_name > $2)
         GROUP BY group_name ORDER BY group_name LIMIT $3",
    )
    .bind(names)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Up to `limit` of the group's store ids in byte order, after `after`.
pub(crate) async fn store_ids(
    db: impl PgExecutor<'_>,
    group: &str,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT store_id FROM store_groups
         WHERE group_name = $1 AND ($2::text IS NULL OR store_id > $2) ORDER BY store_id LIMIT $3",
    )
    .bind(group)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Of `store_ids`, those that name no store.
pub(crate) async fn unknown_stores(
    db: impl PgExecutor<'_>,
    store_ids: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM unnest($1::text[]) AS named(id)
         WHERE NOT EXISTS (SELECT 1 FROM stores s WHERE s.store_id = named.id) ORDER BY 1",
    )
    .bind(store_ids)
    .fetch_all(db)
    .await
}

/// Takes every store out of `group`: how many were in it.
pub(crate) async fn clear(db: impl PgExecutor<'_>, group: &str) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM store_groups WHERE group_name = $1")
        .bind(group)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// Puts the stores `store_ids` (known ones) in `group`.
pub(crate) async fn add(db: impl PgExecutor<'_>, group: &str, store_ids: &[String]) -> sqlx::Result<u64> {
    sqlx::query(
        "INSERT INTO store_groups (group_name, store, store_id)
         SELECT $1, id, store_id FROM stores WHERE store_id = ANY($2) ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(store_ids)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Renames `from` to `to`: how many of its rows moved.
pub(crate) async fn rename(db: impl PgExecutor<'_>, from: &str, to: &str) -> sqlx::Result<u64> {
    sqlx::query("UPDATE store_groups SET group_name = $2 WHERE group_name = $1")
        .bind(from)
        .bind(to)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// Whether `group` has a store.
pub(crate) async fn exists(db: impl PgExecutor<'_>, group: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM store_groups WHERE group_name = $1)")
        .bind(group)
        .fetch_one(db)
        .await
}
