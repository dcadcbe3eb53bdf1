//! What the API does, shared by GraphQL and the REST routes: the one door through which
//! `graphql/` and `http/` reach the data, the queue and the files.

pub(crate) mod auth;
mod data;
pub(crate) mod rate;
mod reports;
mod stores;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

pub use self::data::{
    Readiness, data_version, dataset_changes, loads, newest_poll, readiness, rejected_rows, reload,
    reload_now, tally,
};
pub use self::reports::{
    NotCancelled, QueueFull, cancel_report, count_report_rows, follow, followed_report, get_report,
    latest_report, list_reports, report_changes, report_csv, report_rows, trigger_report,
};
pub use self::stores::{BadSpan, StoreInfo, store, store_polls, store_timeline, store_uptime};
use crate::db::Pool;
use crate::db::events::ReportEvents;
pub use crate::db::loads::{LoadRecord, Outcome, Tally};
pub use crate::db::reports::{ReportFilter, RowFilter, RowOrder, RowPage};
use crate::domain::ReportRecord;
use crate::input::FileChoice;
use crate::output::ReportFiles;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The API's connections: a request waits for one under a second.
    pub(crate) db: Pool,
    /// The connections of the report workers, the reload and the maintenance loop, which
    /// a burst of requests cannot take.
    pub(crate) work: Pool,
    /// Where finished reports' CSV files are kept.
    pub(crate) reports: ReportFiles,
    /// Where the input files are, for `reloadData`.
    pub(crate) data_dir: PathBuf,
    pub(crate) files: FileChoice,
    /// How much a reload's new hours or time-zone file may take away.
    pub(crate) guard: crate::db::reload::Guard,
    pub(crate) events: ReportEvents,
    /// Reports that may wait for a worker before `triggerReport` says "later".
    pub(crate) max_queued: usize,
    /// Subscriptions' first reads at once (see `followed_report`).
    pub(crate) subscription_reads: Arc<tokio::sync::Semaphore>,
    /// Reports that are COMPLETE or FAILED never change again: kept here, they are read
    /// without a query.
    pub(crate) finished: FinishedReports,
    /// Whether callers need tokens, and the key of signed report links.
    pub(crate) access: auth::Access,
    /// `triggerReport` calls a minute per token (or address).
    pub(crate) trigger_limit: rate::RateLimit,
    /// `reloadData` calls a minute per token (or address).
    pub(crate) reload_limit: rate::RateLimit,
}

/// Whether `error` says the database is down or saturated: the client should retry later
/// (`SERVICE_UNAVAILABLE`, HTTP 503), it is not a bug of ours.
pub fn database_unavailable(error: &anyhow::Error) -> bool {
    crate::db::unavailable(error)
}

/// A bounded in-memory copy of finished reports.
#[derive(Clone, Default)]
pub(crate) struct FinishedReports(Arc<Mutex<HashMap<Uuid, ReportRecord>>>);

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
