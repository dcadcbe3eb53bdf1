//! Forgetting old bookkeeping, so that a service left running for months does not grow
//! tables nobody reads: finished queue jobs, dead workers, claimed reload ticks, the
//! `unchanged` load records every tick writes, and the outbox's incident events with the
//! records of their webhook deliveries (the incidents themselves stay).
//!
//! Polls are the owners' data and are never pruned (reports have their own keeping time:
//! `jobs::report::prune`); nor are loads that changed or failed to change the data: the
//! data version, the newest poll and the checksum that lets an unchanged file be skipped
//! all come from those.

use super::{Pool, incidents, loads, queue, ticks, webhooks};
use chrono::{DateTime, Utc};

/// How many rows each kind of pruning removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub jobs: u64,
    pub workers: u64,
    pub reload_ticks: u64,
    pub loads: u64,
    pub incident_events: u64,
    pub deliveries: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.jobs + self.workers + self.reload_ticks + self.loads + self.incident_events + self.deliveries
    }
}

/// Removes what finished before `before`. Each statement stands alone: a half-done pruning
/// is as valid as none.
pub async fn prune(pool: &Pool, before: DateTime<Utc>) -> sqlx::Result<Pruned> {
    Ok(Pruned {
        jobs: queue::prune_finished(pool, before).await?,
        workers: queue::prune_dead_workers(pool, before).await?,
        reload_ticks: ticks::prune(pool, before).await?,
        loads: loads::prune_unchanged(pool, before).await?,
        deliveries: webhooks::prune_deliveries(pool, before).await?,
        incident_events: incidents::prune_events(pool, before).await?,
    })
}
