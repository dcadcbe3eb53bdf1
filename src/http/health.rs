//! Liveness and readiness.

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use super::json;
use crate::service::AppState;

/// `GET /healthz`: the process answers.
#[handler]
pub async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers and has every migration this build knows.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    let expected = crate::db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.pool)
            .await;
    match applied {
        Ok(Some(version)) if version >= expected => {
            json(StatusCode::OK, serde_json::json!({ "status": "ready" }))
        }
        Ok(version) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "migrations pending", "applied": version, "expected": expected }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "status": "database unreachable" }),
            )
        }
    }
}
