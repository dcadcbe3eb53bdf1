//! What the API does, shared by GraphQL and the REST routes: the one door through which
//! `graphql/` and `http/` reach the data, the queue and the files.

pub(crate) mod auth;
mod data;
mod error;
mod groups;
mod incidents;
pub(crate) mod rate;
mod reports;
mod stores;
mod webhooks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use self::data::{
    PushOutcome, Readiness, data_version, dataset_changes, delete_polls, loads, newest_poll_seen,
    oldest_poll, polls_kept_from, prunings, push_polls, readiness, record_polls, rejected_rows, reload,
    reload_now, tally,
};
pub use self::error::{Error, RETRY_AFTER_SECONDS, Result};
pub use self::groups::{delete_group, group_store_ids, list_groups, rename_group, set_group_stores};
pub use self::incidents::{count_incidents, incident, incident_events, list_incidents};
pub use self::reports::{
    cancel_report, count_report_rows, find_report, follow, followed_report, get_report, latest_report,
    list_reports, not_found, parse_report_id, report_changes, report_csv, report_rows, report_stores_total,
    trigger_report,
};
pub use self::stores::{StoreInfo, check_store_id, store, store_polls, store_timeline, store_uptime};
pub use self::webhooks::{
    WebhookSettings, create_webhook, delete_webhook, deliveries, last_deliveries, list_webhooks, redeliver,
    rotate_webhook_secret, webhook,
};
use crate::db::Pool;
use crate::db::events::ReportEvents;
pub use crate::db::groups::GroupRecord;
pub use crate::db::history::PruningRecord;
pub use crate::db::incidents::{EventKind, IncidentEvent, IncidentFilter, IncidentOrder, IncidentRecord};
pub use crate::db::loads::{LoadRecord, Tally};
pub use crate::db::rows::{RowFilter, RowOrder, RowPage, RowRecord};
pub use crate::db::tokens::TokenRecord;
pub use crate::db::webhooks::{DeliveryRecord, WebhookRecord};
pub use crate::domain::ReportFilter;
use crate::domain::ReportRecord;
pub use crate::domain::load::Outcome as LoadOutcome;
pub use crate::domain::report::Figure;
use crate::input::FileChoice;
pub use crate::input::FileKind;
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
    /// Pushed batches stored at once: they take the workers' connections, half at most.
    pub(crate) pushes: Arc<tokio::sync::Semaphore>,
    /// Large pushed batches stored at once: one a core, so that small ones and the API
    /// still find a core free.
    pub(crate) large_pushes: Arc<tokio::sync::Semaphore>,
    /// Reports that are finished (COMPLETE, FAILED, CANCELLED) never change again: kept
    /// here, they are read without a query.
    pub(crate) finished: FinishedReports,
    /// Whether callers need tokens, and the key of signed report links.
    pub(crate) access: auth::Access,
    /// `triggerReport` calls a minute per token (or address).
    pub(crate) trigger_limit: rate::RateLimit,
    /// `reloadData` calls a minute per token (or address).
    pub(crate) reload_limit: rate::RateLimit,
    /// Evaluates the incidents of pushed polls, keeping the stores' hours between pushes.
    pub(crate) incidents: crate::db::incidents::Evaluator,
    /// What webhooks may reach.
    pub(crate) webhooks: WebhookSettings,
}

/// An instant a client gave as `what`, if it is one the service takes (years 0000 to 9999,
/// as RFC 3339 writes them); else why not.
pub fn instant(what: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if crate::domain::time::supported(at) {
        Ok(at)
    } else {
        Err(Error::BadInput(format!(
            "{what} {} is out of range: instants are RFC 3339 ones, years 0000 to 9999",
            at.to_rfc3339()
        )))
    }
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
