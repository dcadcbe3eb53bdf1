//! Maintenance, in every process: the gauges that need the database (queue, incidents,
//! polls' freshness, readiness), read every few seconds into numbers the metrics observe.

use std::sync::Arc;

use std::time::Duration;

use tokio::sync::watch;

use super::report::QUEUE;
use crate::db::{Pool, incidents, loads, queue};
use crate::telemetry::Readings;

/// How often it runs.
const EVERY: Duration = Duration::from_secs(10);

/// Keeps the gauges of `pool` (the work pool) and `api` (the API's) up to date until
/// `stopped`. A reading that fails leaves the last one, but readiness, which drops to 0.
pub(crate) async fn watch(pool: Pool, api: Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    let readings = Arc::new(Readings::default());
    Readings::set(&readings.newest_poll_age_seconds, f64::NAN);
    let pools = [("work", pool.clone()), ("api", api)];
    crate::telemetry::register_gauges(readings.clone(), pools.clone());
    super::periodically(EVERY, stopped, || async {
        for ((_, probed), wait) in pools.iter().zip(&readings.acquire_wait_seconds) {
            Readings::set(wait, acquire_wait(probed).await.as_secs_f64());
        }
        if let Ok(n) = queue::depth(&pool, QUEUE).await {
            Readings::set(&readings.queue_depth, n as f64);
        }
        if let Ok(seconds) = queue::oldest_waiting_seconds(&pool, QUEUE).await {
            Readings::set(&readings.oldest_job_seconds, seconds);
        }
        if let Ok(n) = incidents::open_count(&pool).await {
            Readings::set(&readings.incidents_open, n as f64);
        }
        if let Ok(newest) = loads::newest_poll(&pool).await {
            let age = newest
                .and_then(crate::domain::Timestamp::to_datetime)
                .map_or(f64::NAN, |at| (chrono::Utc::now() - at).as_seconds_f64());
            Readings::set(&readings.newest_poll_age_seconds, age);
        }
        let ready = matches!(
            crate::db::applied_migration(&pool).await,
            Ok(applied) if crate::db::has_every_migration(applied)
        );
        Readings::set(&readings.ready, if ready { 1.0 } else { 0.0 });
    })
    .await
}

/// How long a caller waits for a connection of `pool` now; a wait longer than a round of
/// the gauges is cut there.
async fn acquire_wait(pool: &Pool) -> Duration {
    let started = std::time::Instant::now();
    match tokio::time::timeout(EVERY, pool.acquire()).await {
        Ok(Ok(connection)) => {
            let waited = started.elapsed();
            drop(connection);
            waited
        }
        Ok(Err(_)) | Err(_) => started.elapsed(),
    }
}
