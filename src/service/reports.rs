//! Reports: trigger one, follow it, read its rows and its CSV.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::auth::Caller;
use super::{AppState, Error, Result};
use crate::db::events::Following;
use crate::db::rows::{RowFilter, RowPage, RowRecord};
use crate::db::{loads, reports, rows};
use crate::domain::report::ReportLine;
use crate::domain::{Interpolation, ReportFilter, ReportRecord, ReportStatus, Timestamp, reads_from};
use crate::jobs::report as report_job;

/// Creates a report and queues its job, unless the caller is over its rate limit
/// ([`Error::RateLimited`]) or too many wait already (`--max-queued-reports`,
/// [`Error::QueueFull`]). A
/// report equal to a finished one (same data version, instant and interpolation) is
/// COMPLETE at once, sharing that one's result.
pub async fn trigger_report(
    state: &AppState,
    caller: &Caller,
    interpolation: Interpolation,
    as_of: Option<DateTime<Utc>>,
) -> Result<ReportRecord> {
    let as_of = as_of.map(|at| super::instant("asOf", at)).transpose()?;
    state.trigger_limit.check(caller)?;
    let id = Uuid::new_v4();
    // One connection from start to end, and one transaction: the report and its job are
    // committed together, so a crash in between leaves neither.
    let mut tx = state.db.begin().await?;
    let version = loads::data_version(&mut *tx).await?;
    let now = loads::report_now(&mut *tx, as_of.map(Timestamp::from_datetime))
        .await?
        .and_then(Timestamp::to_datetime);
    if let Some(now) = now {
        let reads_from = reads_from(Timestamp::from_datetime(now))
            .to_datetime()
            .unwrap_or(now);
        super::data::check_kept(&mut *tx, reads_from, || {
            format!("a report as of {}", now.to_rfc3339())
        })
        .await?;
    }
    if let Some(source) = reports::find_reusable(&mut *tx, version, now, interpolation).await? {
        let record = reports::insert_reused(&mut *tx, id, as_of, &source).await?;
        tx.commit().await?;
        tracing::info!(report = %id, source = %source.id, "report reuses an equal finished one");
        crate::telemetry::metrics()
            .report_finished(crate::telemetry::ReportOutcome::Reused, std::time::Duration::ZERO);
        return Ok(record);
    }
    let waiting = reports::waiting(&mut *tx).await?;
    if waiting >= state.max_queued as i64 {
        return Err(Error::QueueFull { waiting });
    }
    let traceparent = crate::telemetry::current_traceparent();
    let record = reports::insert_pending(&mut *tx, id, interpolation, as_of, traceparent).await?;
    crate::failpoint::hit("report-inserted");
    report_job::enqueue(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(report = %id, interpolation = ?interpolation, as_of = ?as_of, "report queued");
    Ok(record)
}

/// The error of a report id that names no report.
pub fn not_found(id: Uuid) -> Error {
    Error::NotFound(format!("no report with id {id}"))
}

/// A report id as a client wrote it, or why it is none.
pub fn parse_report_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id.trim()).map_err(|_| Error::BadInput(format!("{id:?} is not a report id (a UUID)")))
}

/// The report `id`; [`Error::NotFound`] when there is none.
pub async fn find_report(state: &AppState, id: Uuid) -> Result<ReportRecord> {
    get_report(state, id).await?.ok_or_else(|| not_found(id))
}

pub async fn get_report(state: &AppState, id: Uuid) -> Result<Option<ReportRecord>> {
    if let Some(record) = state.finished.get(id) {
        return Ok(Some(record));
    }
    let record = reports::get(&state.db, id).await?;
    if let Some(record) = &record {
        state.finished.keep(record);
    }
    Ok(record)
}

/// Reports newest first, `limit` of them, after the one created at `after` (time, id).
pub async fn list_reports(
    state: &AppState,
    filter: ReportFilter,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<ReportRecord>> {
    if let Some((at, _)) = after {
        super::instant("the cursor's instant", at)?;
    }
    Ok(reports::list(&state.db, filter, limit, after).await?)
}

/// The newest COMPLETE report (of `interpolation`, if given).
pub async fn latest_report(
    state: &AppState,
    interpolation: Option<Interpolation>,
) -> Result<Option<ReportRecord>> {
    let filter = ReportFilter {
        status: Some(ReportStatus::Complete),
        interpolation,
    };
    Ok(reports::list(&state.db, filter, 1, None).await?.pop())
}

/// A page of a COMPLETE report's rows that pass `filter`, of the caller's stores; none for
/// a report that is not complete.
pub async fn report_rows(
    state: &AppState,
    caller: &Caller,
    record: &ReportRecord,
    filter: &RowFilter,
    page: &RowPage<'_>,
) -> Result<Vec<RowRecord>> {
    check_row_filter(filter)?;
    if record.status != ReportStatus::Complete {
        return Ok(Vec::new());
    }
    let filter = in_scope(filter, caller);
    Ok(rows::page(&state.db, record.result_id(), &filter, page).await?)
}

/// `filter` kept to the stores the caller sees: a scoped caller's groups'.
fn in_scope(filter: &RowFilter, caller: &Caller) -> RowFilter {
    let mut filter = filter.clone();
    filter.groups = caller.groups().map(<[String]>::to_vec);
    filter
}

/// The most store ids a row filter may list.
pub const MAX_FILTER_STORES: usize = 1000;

fn check_row_filter(filter: &RowFilter) -> Result<()> {
    let Some(ids) = &filter.store_ids else {
        return Ok(());
    };
    if ids.len() > MAX_FILTER_STORES {
        return Err(Error::BadInput(format!(
            "filter.storeIds may list at most {MAX_FILTER_STORES} stores"
        )));
    }
    ids.iter().try_for_each(|id| super::stores::check_store_id(id))
}

/// How many rows of a COMPLETE report pass `filter`, of the caller's stores (0 before it
/// is complete).
pub async fn count_report_rows(
    state: &AppState,
    caller: &Caller,
    record: &ReportRecord,
    filter: &RowFilter,
) -> Result<i64> {
    check_row_filter(filter)?;
    if record.status != ReportStatus::Complete {
        return Ok(0);
    }
    let filter = &in_scope(filter, caller);
    // Every row: the report knows how many it has.
    if *filter == RowFilter::default()
        && let Some(total) = record.stores_total
    {
        return Ok(i64::from(total));
    }
    Ok(rows::count(&state.db, record.result_id(), filter).await?)
}

/// A followed report's current state: the newest this process has seen if another
/// follower has, else read (retried while the pool is busy), at most a few such reads at once, so that subscriptions
/// (however many open at once) leave the API's connections to other requests.
pub async fn followed_report(state: &AppState, id: Uuid) -> Result<Option<ReportRecord>> {
    if let Some(record) = state.events.last(id) {
        return Ok(Some((*record).clone()));
    }
    let _permit = state
        .subscription_reads
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    if let Some(record) = state.events.last(id) {
        return Ok(Some((*record).clone()));
    }
    // A subscription is long-lived: its first read may wait out a busy pool (three of the
    // API's 750 ms waits) where a request would be told 503 at once.
    let mut tries = 0;
    let record = loop {
        tries += 1;
        match get_report(state, id).await {
            Err(Error::Unavailable(_)) if tries < 3 => continue,
            read => break read?,
        }
    };
    if let Some(record) = &record {
        state.events.seen(record);
    }
    Ok(record)
}

/// Cancels a PENDING or RUNNING report: CANCELLED at once; a worker computing it stops
/// within a quarter of a second and writes nothing.
pub async fn cancel_report(state: &AppState, id: Uuid) -> Result<ReportRecord> {
    if let Some(cancelled) = reports::cancel(&state.db, id).await? {
        tracing::info!(report = %id, "report cancelled");
        state.finished.keep(&cancelled);
        return Ok(cancelled);
    }
    match get_report(state, id).await? {
        None => Err(not_found(id)),
        Some(record) => Err(Error::BadInput(format!(
            "the report is {} already: only a PENDING or RUNNING report can be cancelled",
            record.status.name()
        ))),
    }
}

/// Every change of any report, from every process, from now on.
pub fn report_changes(state: &AppState) -> broadcast::Receiver<Arc<ReportRecord>> {
    state.events.subscribe()
}

/// Every change of any report, from whichever process made it, and a guard that keeps
/// the report `id` re-read in case a change goes unannounced. Take both before reading
/// the report's first state, so that no change falls between.
pub fn follow(state: &AppState, id: Uuid) -> (broadcast::Receiver<Arc<ReportRecord>>, Following) {
    (state.events.subscribe(), state.events.follow(id))
}

/// The CSV of a COMPLETE report for the caller: its file, or, on a machine that did not
/// compute it, the same bytes rebuilt from its stored rows (and kept as a file for next
/// time). A scoped caller's holds its stores' rows alone, built from the rows each time
/// (the groups change with each load of them).
pub async fn report_csv(state: &AppState, caller: &Caller, record: &ReportRecord) -> Result<String> {
    if record.status != ReportStatus::Complete {
        return Err(Error::BadInput(format!(
            "the report is {}: only a COMPLETE report has a CSV",
            record.status.name()
        )));
    }
    if caller.groups().is_some() {
        return rows_csv(state, record, &in_scope(&RowFilter::default(), caller)).await;
    }
    let path = state.reports.path(record.result_id());
    match tokio::fs::read_to_string(&path).await {
        Ok(csv) => return Ok(csv),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Internal(
                anyhow::Error::from(e).context(format!("cannot read {}", path.display())),
            ));
        }
    }
    let csv = rows_csv(state, record, &RowFilter::default()).await?;
    let kept = csv.clone();
    let cached = tokio::task::spawn_blocking(move || {
        crate::output::write_atomically(&path, |w| std::io::Write::write_all(w, kept.as_bytes()))
    })
    .await?;
    if let Err(e) = cached {
        tracing::warn!(error = format!("{e:#}"), "cannot keep the rebuilt CSV");
    }
    Ok(csv)
}

/// The CSV of the report's rows that pass `filter`, written as the report's file is.
async fn rows_csv(state: &AppState, record: &ReportRecord, filter: &RowFilter) -> Result<String> {
    let everything = RowPage {
        limit: i64::MAX,
        ..RowPage::default()
    };
    let rows = rows::page(&state.db, record.result_id(), filter, &everything).await?;
    let csv = tokio::task::spawn_blocking(move || {
        let lines = rows.iter().map(|row| ReportLine {
            store_id: &row.store_id,
            figures: row.figures,
        });
        let mut csv = Vec::with_capacity(64 * (rows.len() + 1));
        crate::output::write_lines(lines, &mut csv)?;
        String::from_utf8(csv).context("a report row is not UTF-8")
    })
    .await??;
    Ok(csv)
}

/// How many stores the report has a row for, as the caller sees it: the fleet's count for
/// a fleet caller; for a scoped one its stores' rows, known once COMPLETE (a report is
/// computed for the fleet, so its progress through a scope is not known).
pub async fn report_stores_total(
    state: &AppState,
    caller: &Caller,
    record: &ReportRecord,
) -> Result<Option<i32>> {
    if caller.groups().is_none() {
        return Ok(record.stores_total);
    }
    if record.status != ReportStatus::Complete {
        return Ok(None);
    }
    let count = count_report_rows(state, caller, record, &RowFilter::default()).await?;
    Ok(Some(i32::try_from(count).unwrap_or(i32::MAX)))
}
