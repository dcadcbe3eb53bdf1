//! What the API does, shared by GraphQL and the REST routes: trigger a report, read its
//! CSV, reload the data.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::events::ReportEvents;
use crate::db::ingest::Reload;
use crate::db::reports::{self, ReportRecord, ReportStatus};
use crate::db::{ingest, loads};
use crate::domain::report::ReportLine;
use crate::domain::{Interpolation, Timestamp};
use crate::ingest::DataFiles;
use crate::ingest::files::FileChoice;
use crate::jobs::report::{self as report_job, csv_path};

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Where finished reports' CSV files are kept.
    pub reports_dir: PathBuf,
    /// Where the input files are, for `reloadData`.
    pub data_dir: PathBuf,
    pub files: FileChoice,
    pub events: ReportEvents,
    /// Reports that are COMPLETE or FAILED never change again: kept here, they are read
    /// without a query.
    pub finished: FinishedReports,
}

/// A bounded in-memory copy of finished reports.
#[derive(Clone, Default)]
pub struct FinishedReports(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Uuid, ReportRecord>>>);

impl FinishedReports {
    const CAPACITY: usize = 10_000;

    fn get(&self, id: Uuid) -> Option<ReportRecord> {
        self.0.lock().ok()?.get(&id).cloned()
    }

    fn keep(&self, record: &ReportRecord) {
        if !record.status.is_final() {
            return;
        }
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
            map.insert(record.id, record.clone());
        }
    }
}

/// Creates a report and queues its job; a report equal to a finished one (same data
/// version, instant and interpolation) is COMPLETE at once, sharing that one's result.
pub async fn trigger_report(
    state: &AppState,
    interpolation: Interpolation,
    as_of: Option<DateTime<Utc>>,
) -> anyhow::Result<ReportRecord> {
    let id = Uuid::new_v4();
    let mut conn = state.pool.acquire().await?;
    let version = loads::data_version(&mut conn).await?;
    let now = loads::report_now(&mut conn, as_of.map(Timestamp::from_datetime))
        .await?
        .and_then(Timestamp::to_datetime);
    if let Some(now) = now
        && let Some(source) = reports::find_reusable(&mut conn, version, now, interpolation).await?
    {
        tracing::info!(report = %id, source = %source.id, "report reuses an equal finished one");
        crate::telemetry::metrics().report_finished("reused", std::time::Duration::ZERO);
        return Ok(reports::insert_reused(&mut conn, id, as_of, &source).await?);
    }
    let record = reports::insert_pending(
        &mut conn,
        id,
        interpolation,
        as_of,
        crate::telemetry::current_traceparent(),
    )
    .await?;
    if let Err(e) = report_job::enqueue(&state.pool, id).await {
        reports::mark_failed(&mut conn, id, "the report could not be queued").await?;
        return Err(e);
    }
    tracing::info!(report = %id, interpolation = ?interpolation, as_of = ?as_of, "report queued");
    Ok(record)
}

pub async fn get_report(state: &AppState, id: Uuid) -> anyhow::Result<Option<ReportRecord>> {
    if let Some(record) = state.finished.get(id) {
        return Ok(Some(record));
    }
    let mut conn = state.pool.acquire().await?;
    let record = reports::get(&mut conn, id).await?;
    if let Some(record) = &record {
        state.finished.keep(record);
    }
    Ok(record)
}

/// The CSV of a COMPLETE report: its file, or, on a machine that did not compute it, the
/// same bytes rebuilt from its stored rows (and kept as a file for next time).
pub async fn report_csv(state: &AppState, record: &ReportRecord) -> anyhow::Result<String> {
    anyhow::ensure!(
        record.status == ReportStatus::Complete,
        "the report is not complete"
    );
    let path = csv_path(&state.reports_dir, record);
    match tokio::fs::read_to_string(&path).await {
        Ok(csv) => return Ok(csv),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut conn = state.pool.acquire().await?;
    let rows = reports::rows(&mut conn, record.result_id(), i64::MAX, None, None).await?;
    let mut csv = Vec::with_capacity(64 * (rows.len() + 1));
    let lines = rows.iter().map(|row| ReportLine {
        store_id: &row.store_id,
        figures: row.figures,
    });
    crate::output::write_lines(lines, &mut csv)?;
    let csv = String::from_utf8(csv).context("a report row is not UTF-8")?;
    let (csv, cached) = tokio::task::spawn_blocking(move || {
        let cached = crate::output::write_atomically(&path, |w| std::io::Write::write_all(w, csv.as_bytes()));
        (csv, cached)
    })
    .await?;
    if let Err(e) = cached {
        tracing::warn!(error = format!("{e:#}"), "cannot keep the rebuilt CSV");
    }
    Ok(csv)
}

/// Reloads the input files now (what the scheduled reload does at each tick).
pub async fn reload_now(state: &AppState) -> anyhow::Result<Reload> {
    let files = DataFiles::find(&state.data_dir, &state.files)?;
    ingest::reload(&state.pool, &files).await
}
