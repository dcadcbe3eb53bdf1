//! Background jobs: the apalis jobs (`report`, `deliver` for webhooks, with the webhooks'
//! fair `lanes` of the workers and the `wake`-ups that read their queue, the scheduled
//! `reload`) and the maintenance each process runs beside them, one job per file
//! (`reconcile`, `prune_reports`, `prune_polls`, `tidy_edges`, `forget_idempotency_keys`,
//! `gauges`). Each is a plain async function tests can call; the loops only time them.

pub mod deliver;
pub mod forget_idempotency_keys;
pub mod gauges;
pub mod lanes;
pub mod prune_polls;
pub mod prune_reports;
pub mod reconcile;
pub mod reload;
pub mod report;
pub mod tidy_edges;
pub mod wake;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `tick` now and then every `period` (a late tick is not made up for), until
/// `stopped` says so.
async fn periodically<F: Future<Output = ()>>(
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    mut tick: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = every.tick() => {}
        }
        tick().await;
    }
}
