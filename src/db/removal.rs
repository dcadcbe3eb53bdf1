//! Removing polls on an admin's word (`deletePolls`): a poll from a clock gone wrong, a
//! store's bad hours. Recorded as a status load without a file, so that the data version,
//! `dataset.loads` and the `dataset` subscription tell everyone, as a reload would.

use chrono::Utc;

use super::Pool;
use super::incidents::{self, Evaluator};
use super::loads::{self, LoadRecord};
use super::polls::{self, PollSelection};
use crate::domain::load::Outcome;
use crate::input::FileKind;

/// Deletes the selected polls in one transaction under the load lock (no reload
/// interleaves), fixing what depended on them: the stores' first polls and the newest poll,
/// a report's default *now*, and the stores' incidents. `source` says who asked, as the load's `file`.
pub async fn remove(
    pool: &Pool,
    selection: &PollSelection,
    source: &str,
    evaluator: &Evaluator,
) -> sqlx::Result<LoadRecord> {
    let started = Utc::now();
    let mut tx = pool.begin().await?;
    loads::lock(&mut *tx).await?;
    let deleted = polls::delete(&mut tx, selection).await?;
    let mut newest = None;
    if deleted > 0 {
        polls::refresh_first_polls(&mut *tx, selection).await?;
        newest = polls::newest_stored(&mut *tx).await?;
        loads::cap_newest_poll(&mut *tx, newest).await?;
        incidents::evaluate_removal(&mut tx, selection.from, evaluator).await?;
    }
    let mut record = LoadRecord::failed(FileKind::Status, std::path::Path::new(source), String::new());
    record.error = None;
    record.outcome = Outcome::Loaded;
    record.rows_deleted = deleted as i64;
    record.changed = deleted > 0;
    record.newest_poll = newest;
    record.started_at = started;
    record.finished_at = Utc::now();
    record.id = loads::insert(&mut *tx, &record).await?;
    if record.changed {
        loads::announce_change(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(record)
}
