//! The HTTP routes: GraphQL (with GraphiQL and WebSocket subscriptions), report files,
//! the original trigger + poll API, and health checks.

mod health;
mod legacy;

use async_graphql::http::GraphiQLSource;
use async_graphql_poem::{GraphQL, GraphQLSubscription};
use poem::http::StatusCode;
use poem::middleware::{Cors, Tracing};
use poem::web::{Data, Html, Path};
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, get, handler, post};
use uuid::Uuid;

use crate::domain::{ReportRecord, ReportStatus};
use crate::graphql::AppSchema;
use crate::service::{self, AppState};

/// Every route, with CORS for `cors_origins` (empty: any origin) and request tracing.
pub(crate) fn routes(state: AppState, schema: AppSchema, cors_origins: &[String]) -> impl Endpoint + use<> {
    let mut cors = Cors::new();
    for origin in cors_origins {
        cors = cors.allow_origin(origin.as_str());
    }
    Route::new()
        .at("/graphql", get(graphiql).post(GraphQL::new(schema.clone())))
        .at("/graphql/ws", get(GraphQLSubscription::new(schema)))
        .at("/reports/:file", get(report_file))
        .at("/trigger_report", post(legacy::trigger_report))
        .at("/get_report", get(legacy::get_report))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .data(state)
        .with(cors)
        .with(Tracing)
}

#[handler]
async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .title("store-monitor")
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

/// A JSON body with a status code.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

pub(crate) fn csv(body: String) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/csv; charset=utf-8")
        .body(body)
}

/// An error of ours: logged with its causes, "internal error" to the client.
pub(crate) fn internal(error: anyhow::Error) -> Response {
    tracing::error!(error = format!("{error:#}"), "internal error");
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        serde_json::json!({ "error": "internal error" }),
    )
}

/// The report `id`, or the response that says why there is none (404, or 500).
pub(crate) async fn find_report(state: &AppState, id: Uuid) -> Result<ReportRecord, Response> {
    match service::get_report(state, id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("no report with id {id}") }),
        )),
        Err(e) => Err(internal(e)),
    }
}

/// `GET /reports/{id}.csv`: the finished report as a file; 404 for an unknown id, 409
/// while it is not complete.
#[handler]
async fn report_file(Path(file): Path<String>, state: Data<&AppState>) -> Response {
    let Some(id) = file.strip_suffix(".csv").and_then(|id| Uuid::parse_str(id).ok()) else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("no report file {file:?}") }),
        );
    };
    let record = match find_report(&state, id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    if record.status != ReportStatus::Complete {
        return json(
            StatusCode::CONFLICT,
            serde_json::json!({ "error": "the report is not complete", "status": record.status.name() }),
        );
    }
    match service::report_csv(&state, &record).await {
        Ok(body) => {
            let mut response = csv(body);
            let disposition = format!("attachment; filename=\"{id}.csv\"");
            if let Ok(value) = disposition.parse() {
                response.headers_mut().insert("content-disposition", value);
            }
            response
        }
        Err(e) => internal(e),
    }
    .into_response()
}
