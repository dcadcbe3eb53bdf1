//! Maintenance, every minute in each process that serves or works: idempotency keys of
//! pushed batches are kept a day (the IETF Idempotency-Key draft leaves how long to the
//! server; a day covers any client's retries), then forgotten: the same key may then
//! come with a new batch.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio::sync::watch;

use crate::db::{Pool, idempotency};

/// How often it runs.
const EVERY: Duration = Duration::from_secs(60);

/// How long a key is kept.
pub const KEPT: TimeDelta = TimeDelta::days(1);

/// Forgets the keys older than [`KEPT`]; returns how many.
pub async fn forget(pool: &Pool) -> anyhow::Result<u64> {
    Ok(idempotency::forget_before(pool, Utc::now() - KEPT).await?)
}

/// Runs [`forget`] every minute until `stopped`.
pub(crate) async fn every_minute(pool: Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    super::periodically(EVERY, stopped, || async {
        match forget(&pool).await {
            Ok(0) => {}
            Ok(keys) => tracing::debug!(keys, "idempotency keys forgotten"),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "cannot forget old idempotency keys; the next tick tries again"
            ),
        }
    })
    .await
}
