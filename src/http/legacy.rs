//! The trigger + poll API of the Flask app this service replaces, kept so that its
//! clients work unchanged.

use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::{error, json};
use crate::domain::access::Action;
use crate::domain::{Interpolation, ReportStatus};
use crate::service::{self, AppState};

/// `POST /trigger_report` → `{"report_id": "<uuid>"}`.
#[handler]
pub async fn trigger_report(req: &Request, state: Data<&AppState>) -> Response {
    let caller = match super::allowed(req, &state, Action::TriggerReport).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    match service::trigger_report(&state, &caller, Interpolation::Nearest, None).await {
        Ok(record) => json(StatusCode::OK, serde_json::json!({ "report_id": record.id })),
        Err(failed) => error::response(failed),
    }
}

#[derive(Deserialize)]
pub struct GetReport {
    report_id: Option<String>,
}

/// `GET /get_report?report_id=…`: `{"status": "Running"}` until done, then the CSV (with
/// the download's headers, conditions and ranges; a scoped token's stores alone); 404 for
/// an unknown id; 500 with the error for a failed report; 410 for a cancelled one.
#[handler]
pub async fn get_report(req: &Request, Query(query): Query<GetReport>, state: Data<&AppState>) -> Response {
    let caller = match super::allowed(req, &state, Action::Read).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let Some(raw) = query.report_id else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "report_id is required" }),
        );
    };
    let record = match service::parse_report_id(&raw) {
        Ok(id) => service::find_report(&state, id).await,
        Err(bad) => Err(bad),
    };
    let record = match record {
        Ok(record) => record,
        Err(failed) => return error::response(failed),
    };
    match record.status {
        ReportStatus::Pending | ReportStatus::Running => {
            json(StatusCode::OK, serde_json::json!({ "status": "Running" }))
        }
        ReportStatus::Failed => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "status": "Failed", "error": record.error.unwrap_or_default() }),
        ),
        ReportStatus::Cancelled => json(
            StatusCode::GONE,
            serde_json::json!({ "status": "Cancelled", "error": "the report was cancelled: it has no result" }),
        ),
        ReportStatus::Complete => super::files::csv_download(req.headers(), &state, &caller, &record).await,
    }
}
