//! `reload_ticks`: which process runs each tick of the reload schedule.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Takes the tick for `instance`, unless another process has; `true` if it is ours.
pub(crate) async fn claim(
    db: impl PgExecutor<'_>,
    tick: DateTime<Utc>,
    instance: &str,
) -> sqlx::Result<bool> {
    let claimed =
        sqlx::query("INSERT INTO reload_ticks (tick, claimed_by) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(tick)
            .bind(instance)
            .execute(db)
            .await?
            .rows_affected();
    Ok(claimed == 1)
}

/// Ticks are claimed when they fire; one older than `before` is never claimed again.
pub(crate) async fn prune(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM reload_ticks WHERE tick < $1")
        .bind(before)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}
