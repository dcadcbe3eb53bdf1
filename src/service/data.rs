//! The data reports are computed from: reloading it, and what the database holds.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::history::{self, PruningRecord};
use crate::db::idempotency::IdempotencyKey;
use crate::db::loads::{self, LoadRecord, Tally};
use crate::db::polls::PollSelection;
use crate::db::push::{self, PushAnswer};
use crate::db::reload::Reload;
use crate::db::{removal, scope};
use crate::domain::Timestamp;
use crate::input::push::NAME;
use crate::input::{DataFiles, Rejected};

use super::auth::Caller;
use super::{AppState, Error, Result};

/// Reloads the input files now (what the scheduled reload does at each tick); `force`
/// accepts hours and time-zone files that would drop many stores' rows.
pub async fn reload_now(state: &AppState, caller: &Caller, force: bool) -> Result<Reload> {
    state.reload_limit.check(caller)?;
    reload(state, force).await
}

/// Reloads the input files, for the server itself (its first load).
pub async fn reload(state: &AppState, force: bool) -> Result<Reload> {
    let files = DataFiles::find_each_off_runtime(&state.data_dir, &state.files).await?;
    let guard = if force { state.guard.forced() } else { state.guard };
    Ok(crate::db::reload::reload_with(&state.work, &files, guard).await?)
}

/// The data version after each reload that changes the data, whichever process makes it,
/// from now on.
pub fn dataset_changes(state: &AppState) -> tokio::sync::broadcast::Receiver<i64> {
    state.events.dataset_changes()
}

/// Changes exactly when a load changes the data.
pub async fn data_version(state: &AppState) -> Result<i64> {
    Ok(loads::data_version(&state.db).await?)
}

/// The newest poll: a report's default *now*.
pub async fn newest_poll(state: &AppState) -> Result<Option<Timestamp>> {
    Ok(loads::newest_poll(&state.db).await?)
}

/// Removes polls (admins): those of `store_ids` (all stores when `None`) in `[from, to)`,
/// at least one of the three given. Recorded as a load, as `deletePolls by <caller>`.
pub async fn delete_polls(
    state: &AppState,
    caller: &Caller,
    store_ids: Option<Vec<String>>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<LoadRecord> {
    if store_ids.is_none() && from.is_none() && to.is_none() {
        return Err(Error::BadInput(
            "name the stores or the time range (or both) whose polls to delete".to_string(),
        ));
    }
    if let Some(ids) = &store_ids {
        if ids.is_empty() {
            return Err(Error::BadInput(
                "storeIds is empty: no poll would be deleted".to_string(),
            ));
        }
        for id in ids {
            super::check_store_id(id)?;
        }
    }
    let from = from.map(|at| super::instant("from", at)).transpose()?;
    let to = to.map(|at| super::instant("to", at)).transpose()?;
    // The bounds of the instants the API takes: "from the start" and "to the end".
    let selection = PollSelection {
        stores: store_ids,
        from: from.unwrap_or_else(|| year_start(0)),
        to: to.unwrap_or_else(|| year_start(10_000)),
    };
    if selection.to <= selection.from {
        return Err(Error::BadInput("from must come before to".to_string()));
    }
    let record = removal::remove(
        &state.work,
        &selection,
        &format!("deletePolls by {caller}"),
        &state.incidents,
    )
    .await?;
    tracing::info!(
        caller = %caller,
        polls = record.rows_deleted,
        stores = ?selection.stores,
        from = %selection.from,
        to = %selection.to,
        "polls deleted"
    );
    Ok(record)
}

fn year_start(year: i32) -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.and_utc())
}

/// Where complete history begins, when `--keep-polls-days` has pruned any.
pub async fn polls_kept_from(state: &AppState) -> Result<Option<DateTime<Utc>>> {
    Ok(history::kept_from(&state.db).await?)
}

/// The oldest poll stored (of the caller's stores).
pub async fn oldest_poll(state: &AppState, caller: &Caller) -> Result<Option<DateTime<Utc>>> {
    Ok(match caller.groups() {
        None => history::oldest_poll(&state.db).await?,
        Some(groups) => scope::oldest_poll(&state.db, groups).await?,
    })
}

/// The newest poll stored of the caller's stores (the fleet's is a report's default now).
pub async fn newest_poll_seen(state: &AppState, caller: &Caller) -> Result<Option<DateTime<Utc>>> {
    Ok(match caller.groups() {
        None => newest_poll(state).await?.and_then(Timestamp::to_datetime),
        Some(groups) => scope::newest_poll(&state.db, groups).await?,
    })
}

/// The latest prunings of old polls, newest first; none for a scoped caller (they count
/// the fleet's polls).
pub async fn prunings(state: &AppState, caller: &Caller, limit: i64) -> Result<Vec<PruningRecord>> {
    if caller.groups().is_some() {
        return Ok(Vec::new());
    }
    Ok(history::prunings(&state.db, limit).await?)
}

/// Refuses to compute from history that was pruned: `reads_from` is the earliest instant
/// the figures depend on (a report's: the start of its week), `what` names them.
pub(crate) async fn check_kept(
    db: impl sqlx::PgExecutor<'_>,
    reads_from: DateTime<Utc>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    match history::kept_from(db).await? {
        Some(kept) if reads_from < kept => Err(Error::BadInput(format!(
            "{} reads polls from {}, but the polls before {} were pruned (--keep-polls-days): \
             the figures of a week ending {} or later are the earliest kept whole",
            what(),
            reads_from.to_rfc3339(),
            kept.to_rfc3339(),
            (kept + chrono::TimeDelta::weeks(1)).to_rfc3339()
        ))),
        _ => Ok(()),
    }
}

pub async fn tally(state: &AppState, caller: &Caller, what: Tally) -> Result<i64> {
    Ok(match caller.groups() {
        None => loads::tally(&state.db, what).await?,
        Some(groups) => scope::tally(&state.db, what, groups).await?,
    })
}

/// The newest `limit` loads, newest first; none for a scoped caller (they are the
/// fleet's files, and their rejected rows quote any store).
pub async fn loads(state: &AppState, caller: &Caller, limit: i64) -> Result<Vec<LoadRecord>> {
    if caller.groups().is_some() {
        return Ok(Vec::new());
    }
    Ok(loads::recent(&state.db, limit).await?)
}

/// The rows a load rejected, by line, at most `limit`.
pub async fn rejected_rows(state: &AppState, load: &LoadRecord, limit: i64) -> Result<Vec<Rejected>> {
    Ok(loads::rejected_of(&state.db, load.id, &load.file, limit).await?)
}

/// Whether the service can serve: the database answers and has every migration.
pub enum Readiness {
    Ready,
    MigrationsPending { applied: Option<i64>, expected: i64 },
    Unreachable,
}

pub async fn readiness(state: &AppState) -> Readiness {
    let expected = crate::db::latest_migration();
    match crate::db::applied_migration(&state.db).await {
        Ok(applied) if crate::db::has_every_migration(applied) => Readiness::Ready,
        Ok(applied) => Readiness::MigrationsPending { applied, expected },
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            Readiness::Unreachable
        }
    }
}

/// What pushing a batch of polls did.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// The batch's load in `dataset.loads`.
    pub record: LoadRecord,
    /// Every rejected row, with its line in the batch and the reason.
    pub rejected: Vec<Rejected>,
    /// The data version after it.
    pub data_version: i64,
    /// The newest poll stored after it.
    pub newest_poll: Option<Timestamp>,
    /// The answer of the same batch sent before with the same idempotency key.
    pub replayed: bool,
}

impl PushOutcome {
    /// New polls stored.
    pub fn accepted(&self) -> i64 {
        self.record.rows_inserted
    }

    /// Good rows whose poll was stored already (or given twice in the batch).
    pub fn duplicates(&self) -> i64 {
        self.record.rows_read - self.record.rows_rejected - self.record.rows_inserted
    }
}

/// Stores a pushed batch of polls (operators): read as the status file is, stored whole in
/// one transaction, recorded as a load `push by <caller>`. With an `Idempotency-Key`, the
/// same batch sent again within a day gets the first one's answer; another batch with that
/// key is refused.
pub async fn push_polls(
    state: &AppState,
    caller: &Caller,
    body: bytes::Bytes,
    format: crate::input::push::BatchFormat,
    encoding: crate::input::push::Encoding,
    idempotency_key: Option<String>,
) -> Result<PushOutcome> {
    use crate::input::push::{BatchError, read_batch};
    use sha2::Digest;
    let key = idempotency_key.map(|key| IdempotencyKey {
        principal: caller
            .token
            .as_ref()
            .map_or("anonymous".to_string(), |t| t.id.to_string()),
        key,
        fingerprint: hex::encode(
            sha2::Sha256::new()
                .chain_update([format as u8, encoding as u8])
                .chain_update(&body)
                .finalize(),
        ),
    });
    let times = crate::input::data::PollTimes::now(state.guard.max_clock_skew);
    let scope = push_scope(state, caller).await?;
    let read = tokio::task::spawn_blocking(move || read_batch(&body, format, encoding, times, scope)).await?;
    let data = read.map_err(|e| match e {
        BatchError::TooLarge(message) => Error::TooLarge(message),
        BatchError::Unreadable(message) => Error::BadInput(message),
    })?;
    store_batch(state, caller, data, key.as_ref()).await
}

/// Stores polls given one by one (`recordPolls`, operators): store id, whether active, when.
pub async fn record_polls(
    state: &AppState,
    caller: &Caller,
    polls: Vec<(String, bool, DateTime<Utc>)>,
) -> Result<PushOutcome> {
    use crate::input::push::{MAX_LISTED_POLLS, read_list};
    if polls.len() > MAX_LISTED_POLLS {
        return Err(Error::TooLarge(format!(
            "{} polls; recordPolls takes at most {MAX_LISTED_POLLS} at once: send more as batches to POST /polls",
            polls.len()
        )));
    }
    let times = crate::input::data::PollTimes::now(state.guard.max_clock_skew);
    let listed = polls.iter().map(|(id, active, at)| {
        (
            id.as_str(),
            *active,
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )
    });
    let data = read_list(listed, times, push_scope(state, caller).await?);
    store_batch(state, caller, data, None).await
}

/// The stores a caller may push polls of: a scoped token's groups' (the rest of its batch
/// are rejected rows); `None`, any store.
async fn push_scope(state: &AppState, caller: &Caller) -> Result<Option<Arc<HashSet<String>>>> {
    let Some(groups) = caller.groups() else {
        return Ok(None);
    };
    let stores = scope::store_ids(&state.db, groups).await?;
    Ok(Some(Arc::new(stores.into_iter().collect())))
}

/// Batches of this many polls or more are large: they take a core each while stored.
const LARGE_BATCH: u64 = 1_000;

/// How long a large batch waits for a core before it is told to come back.
const LARGE_BATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Stores a batch read from a push, recorded as the load `push by <caller>`.
async fn store_batch(
    state: &AppState,
    caller: &Caller,
    mut data: crate::input::InputData,
    key: Option<&IdempotencyKey>,
) -> Result<PushOutcome> {
    let Ok(_storing) = state.pushes.try_acquire() else {
        return Err(Error::RateLimited {
            message: "the server is storing as many pushed batches as it stores at once: retry in a second"
                .to_string(),
            retry_after: std::time::Duration::from_secs(1),
        });
    };
    crate::failpoint::stall("push-stall").await;
    let large = if data.counts.status.rows >= LARGE_BATCH {
        match tokio::time::timeout(LARGE_BATCH_WAIT, state.large_pushes.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return Err(Error::RateLimited {
                    message: "the server is storing as many large batches as it has cores: retry in a second"
                        .to_string(),
                    retry_after: std::time::Duration::from_secs(1),
                });
            }
        }
    } else {
        None
    };
    if large.is_some() {
        crate::failpoint::stall("large-push-stall").await;
    }
    let answer = push::push(
        &state.work,
        &mut data,
        &format!("push by {caller}"),
        key,
        &state.incidents,
    )
    .await?;
    let outcome = match answer {
        PushAnswer::Stored(pushed) => {
            crate::telemetry::metrics()
                .incident_polls(pushed.evaluated.polls_read, pushed.evaluated.polls_recalled);
            PushOutcome {
                record: pushed.record,
                rejected: std::mem::take(&mut data.rejected),
                data_version: pushed.data_version,
                newest_poll: pushed.newest_poll,
                replayed: false,
            }
        }
        PushAnswer::Replayed(pushed) => PushOutcome {
            rejected: loads::rejected_of(&state.db, pushed.record.id, NAME, pushed.record.rows_rejected)
                .await?,
            record: pushed.record,
            data_version: pushed.data_version,
            newest_poll: pushed.newest_poll,
            replayed: true,
        },
        PushAnswer::KeyReused => {
            return Err(Error::KeyReused(
                "this Idempotency-Key came with another batch before: send a new key with a new batch"
                    .to_string(),
            ));
        }
    };
    let mut outcome = outcome;
    // A scoped caller learns the newest poll of its own stores, as `dataset` tells it, not
    // the fleet's. (The data version is the fleet's for everyone: reports are keyed by it.)
    if caller.groups().is_some() {
        outcome.newest_poll = newest_poll_seen(state, caller)
            .await?
            .map(Timestamp::from_datetime);
    }
    if !outcome.replayed {
        crate::telemetry::metrics().polls_ingested(
            "push",
            outcome.accepted() as u64,
            outcome.record.rows_rejected as u64,
        );
    }
    tracing::info!(
        caller = %caller,
        load = outcome.record.id,
        rows = outcome.record.rows_read,
        accepted = outcome.accepted(),
        duplicates = outcome.duplicates(),
        rejected = outcome.record.rows_rejected,
        replayed = outcome.replayed,
        "polls pushed"
    );
    Ok(outcome)
}
