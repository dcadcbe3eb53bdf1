//! A report's life: queued (PENDING), computed by a worker (RUNNING), then finished for
//! good: COMPLETE, FAILED, or CANCELLED on request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Interpolation;

/// Where a report is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportStatus {
    Pending,
    Running,
    Complete,
    Failed,
    /// Stopped on request before it finished (`cancelReport`): no result.
    Cancelled,
}

impl ReportStatus {
    pub const ALL: [ReportStatus; 5] = [
        ReportStatus::Pending,
        ReportStatus::Running,
        ReportStatus::Complete,
        ReportStatus::Failed,
        ReportStatus::Cancelled,
    ];

    /// The name clients see (GraphQL, REST), and the stored value: the one place each
    /// status is spelled.
    pub fn name(self) -> &'static str {
        match self {
            ReportStatus::Pending => "PENDING",
            ReportStatus::Running => "RUNNING",
            ReportStatus::Complete => "COMPLETE",
            ReportStatus::Failed => "FAILED",
            ReportStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether the report will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReportStatus::Complete | ReportStatus::Failed | ReportStatus::Cancelled
        )
    }

    /// How far along the life this is: a later stage never turns back into an earlier one.
    fn stage(self) -> u8 {
        match self {
            ReportStatus::Pending => 0,
            ReportStatus::Running => 1,
            ReportStatus::Complete | ReportStatus::Failed | ReportStatus::Cancelled => 2,
        }
    }
}

/// A report as stored: what was asked, and how far it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub id: Uuid,
    pub status: ReportStatus,
    pub interpolation: Interpolation,
    /// The `asOf` the client gave, if any.
    pub requested_as_of: Option<DateTime<Utc>>,
    /// The report's *now*, fixed when a worker starts it.
    pub as_of: Option<DateTime<Utc>>,
    pub data_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub stores_total: Option<i32>,
    pub stores_done: i32,
    pub error: Option<String>,
    /// The report whose result this one shares (itself once computed).
    pub result_of: Option<Uuid>,
    /// The W3C trace context of the request that asked for it.
    pub traceparent: Option<String>,
    /// How many times a worker has started it, crashes included.
    #[serde(default)]
    pub attempts: i32,
}

impl ReportRecord {
    /// The report whose rows and CSV file this one has (once COMPLETE).
    pub fn result_id(&self) -> Uuid {
        self.result_of.unwrap_or(self.id)
    }

    /// `stores_done / stores_total`, from 0 to 1 (1 once COMPLETE).
    pub fn progress(&self) -> f64 {
        match (self.status, self.stores_total) {
            (ReportStatus::Complete, _) => 1.0,
            (_, Some(total)) if total > 0 => (f64::from(self.stores_done) / f64::from(total)).min(1.0),
            _ => 0.0,
        }
    }

    /// Whether this state of the report is newer than `other`'s: notifications may arrive
    /// late or twice, and a follower must never step back.
    pub fn is_newer_than(&self, other: &ReportRecord) -> bool {
        let key = |r: &ReportRecord| (r.status.stage(), r.started_at, r.stores_done);
        key(self) > key(other)
    }
}

/// Which reports a list keeps: `None` keeps any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportFilter {
    pub status: Option<ReportStatus>,
    pub interpolation: Option<Interpolation>,
}

impl ReportFilter {
    pub fn keeps(&self, report: &ReportRecord) -> bool {
        self.status.is_none_or(|s| s == report.status)
            && self.interpolation.is_none_or(|i| i == report.interpolation)
    }
}
