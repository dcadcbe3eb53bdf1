//! Maintenance, every minute in each process that serves or works: loads mark the edges of
//! runs generously (`migrations/…_edges_marked_generously.sql`) and pushes not at all
//! (`…_pushed_polls_unmarked.sql`); this makes the marks of the spans they noted exact, a
//! few thousand stores a transaction under the load lock, so that reports read only the
//! polls that change a figure. Reports are right either way (they read every poll of a span
//! not tidied): it only keeps them from reading more than they need. One process at a time (the lock). It waits
//! for the load lock up to a few seconds: pushed batches hold it shared and come back to
//! back, and a waiting tidy makes new ones queue behind it (PostgreSQL grants no lock past
//! a waiter), so it gets its turn; a reload that holds it longer leaves the work to the
//! next tick.

use std::time::Duration;

use tokio::sync::watch;

use crate::db::{Pool, history, loads, polls};

/// How often it runs.
const EVERY: Duration = Duration::from_secs(60);

/// Stores a transaction: an hour of polls of 5,000 stores takes a tenth of a second, as long
/// as a load waits for it.
const STORES_PER_TRANSACTION: i64 = 5_000;

/// How long it waits for the load lock before leaving the work to the next tick.
const LOCK_WAIT_MS: i64 = 5_000;

/// PostgreSQL's `lock_not_available`: the wait ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Tidies every span noted; returns how many stores' spans (fewer when a load held the
/// lock too long).
pub async fn tidy(pool: &Pool) -> anyhow::Result<u64> {
    let mut stores = 0;
    loop {
        let mut tx = pool.begin().await?;
        history::lock_timeout(&mut *tx, LOCK_WAIT_MS).await?;
        match loads::lock(&mut *tx).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                return Ok(stores);
            }
            Err(e) => return Err(e.into()),
        }
        history::lock_timeout(&mut *tx, 0).await?;
        let tidied = polls::tidy_edges(&mut tx, STORES_PER_TRANSACTION).await?;
        tx.commit().await?;
        stores += tidied;
        if tidied < STORES_PER_TRANSACTION as u64 {
            return Ok(stores);
        }
    }
}

/// Runs [`tidy`] every minute until `stopped`.
pub(crate) async fn every_minute(pool: Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    super::periodically(EVERY, stopped, || async {
        match tidy(&pool).await {
            Ok(0) => {}
            Ok(stores) => tracing::debug!(stores, "edges of runs tidied"),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "cannot tidy the edges of runs; the next tick tries again"
            ),
        }
    })
    .await
}
