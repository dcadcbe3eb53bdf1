//! Maintenance, in every process: the queue-depth gauge, refreshed every few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::report::QUEUE;
use crate::db::{Pool, queue};

/// How often it runs.
const EVERY: Duration = Duration::from_secs(10);

/// Keeps the gauge up to date until `stopped`.
pub(crate) async fn watch(pool: Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    let depth = Arc::new(AtomicU64::new(0));
    crate::telemetry::register_queue_depth(depth.clone());
    super::periodically(EVERY, stopped, || async {
        if let Ok(n) = queue::depth(&pool, QUEUE).await {
            depth.store(n as u64, Ordering::Relaxed);
        }
    })
    .await
}
