//! The `api_tokens` and `signing_keys` tables, and the announcement of a revocation.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::codes::Code;
use crate::domain::access::Role;

/// One row of `api_tokens`, without its secret's hash.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "Code<Role>")]
    pub role: Role,
    /// The store groups it is scoped to; `None`: the whole fleet.
    pub groups: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token.
pub(crate) struct NewToken<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub role: Role,
    pub groups: Option<&'a [String]>,
    pub secret_sha256: &'a [u8],
    pub expires_at: Option<DateTime<Utc>>,
}

pub(crate) async fn insert(db: impl PgExecutor<'_>, token: &NewToken<'_>) -> sqlx::Result<TokenRecord> {
    sqlx::query_as(
        "INSERT INTO api_tokens (id, name, role, groups, secret_sha256, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, name, role, groups, created_at, last_used_at, expires_at, revoked_at",
    )
    .bind(token.id)
    .bind(token.name)
    .bind(Code(token.role))
    .bind(token.groups)
    .bind(token.secret_sha256)
    .bind(token.expires_at)
    .fetch_one(db)
    .await
}

/// The token whose secret hashes to `secret_sha256`, revoked and expired ones included.
pub(crate) async fn by_secret(
    db: impl PgExecutor<'_>,
    secret_sha256: &[u8],
) -> sqlx::Result<Option<TokenRecord>> {
    sqlx::query_as(
        "SELECT id, name, role, groups, created_at, last_used_at, expires_at, revoked_at
         FROM api_tokens WHERE secret_sha256 = $1",
    )
    .bind(secret_sha256)
    .fetch_optional(db)
    .await
}

pub(crate) async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TokenRecord>> {
    sqlx::query_as(
        "SELECT id, name, role, groups, created_at, last_used_at, expires_at, revoked_at
         FROM api_tokens WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The groups among `names` that no store is in.
pub(crate) async fn unknown_groups(db: impl PgExecutor<'_>, names: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT n FROM unnest($1::text[]) AS n
         WHERE NOT EXISTS (SELECT 1 FROM store_groups g WHERE g.group_name = n) ORDER BY n",
    )
    .bind(names)
    .fetch_all(db)
    .await
}

/// Every token, newest first.
pub(crate) async fn all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TokenRecord>> {
    sqlx::query_as(
        "SELECT id, name, role, groups, created_at, last_used_at, expires_at, revoked_at
         FROM api_tokens ORDER BY created_at DESC, id",
    )
    .fetch_all(db)
    .await
}

/// Where a revocation is announced (`pg_notify` in the statement, delivered at commit), so
/// that every process forgets the token at once: the payload is its id.
pub(crate) const REVOKED_CHANNEL: &str = "api_token_revoked";

/// Revokes the token (a revoked one keeps its first revocation time) and announces it on
/// [`REVOKED_CHANNEL`]; `None`: no such token.
pub(crate) async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TokenRecord>> {
    sqlx::query_as(
        "WITH t AS (
             UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
             RETURNING id, name, role, groups, created_at, last_used_at, expires_at, revoked_at
         )
         SELECT t.*, pg_notify('api_token_revoked', t.id::text) FROM t",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Unrevoked tokens scoped to `group`.
pub(crate) async fn scoped_to(db: impl PgExecutor<'_>, group: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE $1 = ANY(groups) AND revoked_at IS NULL")
        .bind(group)
        .fetch_one(db)
        .await
}

/// Renames the group `from` to `to` in every token scoped to it, announced on
/// [`REVOKED_CHANNEL`] so that every process reads those tokens again: their ids.
pub(crate) async fn rename_group(db: impl PgExecutor<'_>, from: &str, to: &str) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "WITH t AS (
             UPDATE api_tokens SET groups = array_replace(groups, $1, $2) WHERE $1 = ANY(groups) RETURNING id
         )
         SELECT t.id FROM t, LATERAL pg_notify('api_token_revoked', t.id::text)",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// Tokens that can be used now: neither revoked nor expired.
pub(crate) async fn usable(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens
         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    )
    .fetch_one(db)
    .await
}

pub(crate) async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Stores `key` as the link-signing key unless there is one already.
pub(crate) async fn offer_signing_key(db: impl PgExecutor<'_>, key: &[u8]) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO signing_keys (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

pub(crate) async fn signing_key(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<u8>> {
    sqlx::query_scalar("SELECT key FROM signing_keys WHERE id = 1")
        .fetch_one(db)
        .await
}

/// The tokens whose id starts with `prefix` (as `token list` prints ids), at most two: two
/// say the prefix is ambiguous.
pub(crate) async fn by_id_prefix(db: impl PgExecutor<'_>, prefix: &str) -> sqlx::Result<Vec<TokenRecord>> {
    sqlx::query_as(
        "SELECT id, name, role, groups, created_at, last_used_at, expires_at, revoked_at
         FROM api_tokens WHERE starts_with(id::text, $1) ORDER BY id LIMIT 2",
    )
    .bind(prefix)
    .fetch_all(db)
    .await
}
