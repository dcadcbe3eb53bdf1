//! The scheduled reload of the input files: an apalis cron job, run once per tick across
//! every process on the database.

use std::path::PathBuf;
use std::str::FromStr;

use apalis::prelude::*;
use apalis_cron::Tick;
use chrono::{DateTime, Utc};

use crate::db::reload::{Guard, Reload, reload_with};
use crate::db::{Pool, housekeeping, ticks};
use crate::input::{DataFiles, FileChoice};

/// What the reload needs: the database and where the files are (looked up again at every
/// tick, since files come and go).
#[derive(Clone, Debug)]
pub struct ReloadContext {
    pub pool: Pool,
    pub data_dir: PathBuf,
    pub files: FileChoice,
    /// This process's name in `reload_ticks`.
    pub instance: String,
    /// Bookkeeping older than this is pruned after each reload (see `db::housekeeping`).
    pub keep_history: chrono::TimeDelta,
    /// How much a new hours or time-zone file may take away.
    pub guard: Guard,
}

/// The cron schedule for a reload every `minutes` minutes, aligned on the clock (`:00`,
/// `:10`, … for 10). Cron cannot count arbitrary periods, so the period must divide an hour
/// or, in whole hours, a day.
pub fn every(minutes: u32) -> Result<cron::Schedule, String> {
    let expression = match minutes {
        m if m > 0 && m < 60 && 60 % m == 0 => format!("0 */{m} * * * *"),
        60 => "0 0 * * * *".to_string(),
        1440 => "0 0 0 * * *".to_string(),
        m if m > 60 && m % 60 == 0 && 1440 % m == 0 => format!("0 0 */{} * * *", m / 60),
        m => {
            return Err(format!(
                "a reload every {m} minutes cannot be scheduled on the clock: use a period that divides an hour \
                 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) or a day in whole hours, or give --reload-cron"
            ));
        }
    };
    cron::Schedule::from_str(&expression).map_err(|e| e.to_string())
}

/// Parses a cron expression with seconds first (`sec min hour day month weekday`).
pub fn schedule(expression: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expression)
        .map_err(|e| format!("bad cron expression {expression:?} (seconds first: \"0 */10 * * * *\"): {e}"))
}

/// The reload of one tick: `None` when another process has it.
pub async fn scheduled_reload(ctx: &ReloadContext, tick: DateTime<Utc>) -> anyhow::Result<Option<Reload>> {
    if !ticks::claim(&ctx.pool, tick, &ctx.instance).await? {
        tracing::debug!(%tick, "another process runs this reload");
        return Ok(None);
    }
    let files = DataFiles::find_each_off_runtime(&ctx.data_dir, &ctx.files).await?;
    let done = reload_with(&ctx.pool, &files, ctx.guard).await?;
    tracing::info!(%tick, changed = done.changed(), "scheduled reload");
    // The tick's claimer prunes too, so that it happens once per tick; a failure here is
    // no reason to call the reload failed.
    match housekeeping::prune(&ctx.pool, tick - ctx.keep_history).await {
        Ok(pruned) if pruned.total() > 0 => tracing::info!(
            jobs = pruned.jobs,
            workers = pruned.workers,
            reload_ticks = pruned.reload_ticks,
            loads = pruned.loads,
            incident_events = pruned.incident_events,
            deliveries = pruned.deliveries,
            "pruned old bookkeeping"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot prune old bookkeeping"),
    }
    Ok(Some(done))
}

/// The apalis handler of the cron worker.
pub async fn on_tick(tick: Tick, ctx: Data<ReloadContext>) -> Result<(), BoxDynError> {
    let at = DateTime::from_timestamp(tick.get_timestamp() as i64, 0).unwrap_or_else(Utc::now);
    match scheduled_reload(&ctx, at).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "scheduled reload failed");
            Err(e.into())
        }
    }
}
