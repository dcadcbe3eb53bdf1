//! Polls pushed to the server (`POST /polls`, `recordPolls`): a batch is stored whole or not
//! at all, in one transaction under the load lock, shared (batches run side by side; a
//! reload, a removal or the tidying of edges waits for them, and they for it),
//! and recorded as a status load without a file, so that the data version, `dataset.loads`
//! and the `dataset` subscription tell everyone, as a reload would.

use chrono::Utc;

use super::loads::{self, LoadRecord};
use super::{Pool, polls, reload};
use crate::domain::Timestamp;
use crate::domain::load::Outcome;
use crate::input::{FileKind, InputData};

/// What storing a batch did.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The batch's load: rows read, inserted (new polls) and rejected.
    pub record: LoadRecord,
    /// The data version after it.
    pub data_version: i64,
    /// The newest poll stored after it.
    pub newest_poll: Option<Timestamp>,
}

/// Stores `data`'s polls (a poll already stored for a store and instant stays) and its
/// rejected rows; `source` says who pushed, as the load's `file`.
pub async fn push(pool: &Pool, data: &mut InputData, source: &str) -> sqlx::Result<Pushed> {
    let started = Utc::now();
    let prepared = data.prepare();
    let mut tx = pool.begin().await?;
    loads::lock_shared(&mut *tx).await?;
    let inserted = reload::store_polls(&mut tx, &prepared, polls::Adding::Beside).await?;
    let mut record = LoadRecord::failed(FileKind::Status, std::path::Path::new(source), String::new());
    record.error = None;
    record.outcome = Outcome::Loaded;
    record.rows_read = data.counts.status.rows as i64;
    record.rows_rejected = data.counts.status.rejected as i64;
    record.rows_inserted = inserted as i64;
    record.changed = inserted > 0;
    record.newest_poll = prepared.newest_poll().and_then(Timestamp::to_datetime);
    record.started_at = started;
    record.finished_at = Utc::now();
    record.id = loads::insert(&mut *tx, &record).await?;
    loads::insert_rejected(&mut tx, record.id, &data.rejected).await?;
    if record.changed {
        loads::announce_change(&mut *tx).await?;
    }
    let data_version = loads::data_version(&mut *tx).await?;
    let newest_poll = loads::newest_poll(&mut *tx).await?;
    crate::failpoint::hit("push-before-commit");
    tx.commit().await?;
    Ok(Pushed {
        record,
        data_version,
        newest_poll,
    })
}
