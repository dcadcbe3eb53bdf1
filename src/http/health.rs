//! Liveness and readiness.

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use super::json;
use crate::service::{self, AppState, Readiness};

/// `GET /healthz`: the process answers.
#[handler]
pub async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and has every migration this build knows.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    match service::readiness(&state).await {
        Readiness::Ready => json(StatusCode::OK, serde_json::json!({ "status": "ready" })),
        Readiness::MigrationsPending { applied, expected } => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "migrations pending", "applied": applied, "expected": expected }),
        ),
        Readiness::Unreachable => super::error::unavailable("database unreachable"),
    }
}
