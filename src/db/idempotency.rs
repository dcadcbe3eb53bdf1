//! The `idempotency_keys` table: what a pushed batch sent with an `Idempotency-Key` did,
//! kept a day (see `migrations/…_edges_marked_generously.sql`).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};

/// A key as a caller sent it, with what identifies the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key: the token's id (keys of different callers never meet).
    pub principal: String,
    pub key: String,
    /// A digest of the request: the same key with another body is refused.
    pub fingerprint: String,
}

/// What the first request with a key did.
#[derive(Clone, Debug, FromRow)]
pub(crate) struct Remembered {
    pub fingerprint: String,
    pub load: Option<i64>,
    pub data_version: Option<i64>,
    pub newest_poll: Option<DateTime<Utc>>,
}

/// Claims `key` in this transaction: `false` if a request with it was stored already. A
/// claim by a transaction still running waits for it to end.
pub(crate) async fn claim(db: impl PgExecutor<'_>, key: &IdempotencyKey) -> sqlx::Result<bool> {
    sqlx::query(
        "INSERT INTO idempotency_keys (principal, key, fingerprint) VALUES ($1, $2, $3)
         ON CONFLICT (principal, key) DO NOTHING",
    )
    .bind(&key.principal)
    .bind(&key.key)
    .bind(&key.fingerprint)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

pub(crate) async fn remembered(
    db: impl PgExecutor<'_>,
    key: &IdempotencyKey,
) -> sqlx::Result<Option<Remembered>> {
    sqlx::query_as(
        "SELECT fingerprint, load, data_version, newest_poll FROM idempotency_keys
         WHERE principal = $1 AND key = $2",
    )
    .bind(&key.principal)
    .bind(&key.key)
    .fetch_optional(db)
    .await
}

/// Records what the request with `key` did: its load, the data version and newest poll.
pub(crate) async fn remember(
    db: impl PgExecutor<'_>,
    key: &IdempotencyKey,
    load: i64,
    data_version: i64,
    newest_poll: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET load = $3, data_version = $4, newest_poll = $5
         WHERE principal = $1 AND key = $2",
    )
    .bind(&key.principal)
    .bind(&key.key)
    .bind(load)
    .bind(data_version)
    .bind(newest_poll)
    .execute(db)
    .await
    .map(drop)
}

/// Forgets the keys claimed before `before`.
pub(crate) async fn forget_before(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}
