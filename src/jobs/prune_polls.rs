//! Maintenance, every minute in each process started with `--keep-polls-days` (and once
//! after `ingest`): the weeks of polls older than the retention go, oldest first, one
//! transaction a week, each recorded in `poll_prunings`. One process prunes at a time (the
//! partitions' lock); a pruning cut short (a crash, a lock not granted in time) has changed
//! nothing of the week it was on, and the next tick goes on from there.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::db::history::{self, PruningRecord};
use crate::db::{Pool, loads};
use crate::domain::history::{kept_from, partitions_to_prune};

/// How often it runs.
const EVERY: Duration = Duration::from_secs(60);

/// How long a week's pruning waits for `polls` to itself (running reports hold it shared)
/// before it gives up until the next tick.
const LOCK_WAIT_MS: i64 = 5_000;

/// What one pruning did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunedPolls {
    /// Week partitions dropped.
    pub weeks: u32,
    /// Polls removed.
    pub polls: i64,
    /// Where complete history now begins, if anything was pruned.
    pub kept_from: Option<chrono::DateTime<Utc>>,
    /// Another process held the partitions' lock: it prunes instead.
    pub busy: bool,
}

/// Prunes every week that ends `keep_days` or more before the newest poll (nothing when
/// `keep_days` is 0).
pub async fn prune(pool: &Pool, keep_days: u32) -> anyhow::Result<PrunedPolls> {
    let mut done = PrunedPolls::default();
    let Some(newest) = loads::newest_poll(pool).await? else {
        return Ok(done);
    };
    if keep_days == 0 {
        return Ok(done);
    }
    loop {
        let mut tx = pool.begin().await?;
        history::lock_timeout(&mut *tx, LOCK_WAIT_MS).await?;
        if !history::try_lock(&mut *tx).await? {
            done.busy = true;
            return Ok(done);
        }
        let partitions = history::partitions(&mut *tx).await?;
        let Some(&span) = partitions_to_prune(&partitions, newest, keep_days).first() else {
            return Ok(done);
        };
        let week = span.start;
        let polls = history::prune_partition(&mut *tx, span).await?;
        crate::failpoint::hit("prune-polls-before-commit");
        let kept = kept_from(span).to_datetime();
        let (Some(week_at), Some(kept_at), Some(newest_at)) =
            (week.to_datetime(), kept, newest.to_datetime())
        else {
            anyhow::bail!("a week outside the supported instants: {week}");
        };
        history::record_pruning(
            &mut *tx,
            &PruningRecord {
                finished_at: Utc::now(),
                week: week_at,
                kept_from: kept_at,
                polls,
                newest_poll: newest_at,
                keep_days: keep_days as i32,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(week = %week, polls, kept_from = %kept_at, "pruned a week of polls");
        done.weeks += 1;
        done.polls += polls;
        done.kept_from = kept;
        crate::failpoint::hit("prune-polls-after-a-week");
    }
}

/// Runs [`prune`] every minute until `stopped`.
pub(crate) async fn every_minute(
    pool: Pool,
    keep_days: u32,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    super::periodically(EVERY, stopped, || async {
        match prune(&pool, keep_days).await {
            Ok(p) if p.weeks > 0 => tracing::info!(
                weeks = p.weeks,
                polls = p.polls,
                kept_from = ?p.kept_from,
                keep_days,
                "pruned old polls"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "cannot prune old polls; the next tick tries again"
            ),
        }
    })
    .await
}
