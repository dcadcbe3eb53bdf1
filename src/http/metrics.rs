//! `/metrics`: the service's instruments in Prometheus's text format, on the listener
//! `--metrics-bind` names (never the API's: it takes no token).

use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response, Route, get, handler};

/// The metrics listener's one route.
pub(crate) fn routes() -> Route {
    Route::new().at("/metrics", get(metrics))
}

#[handler]
fn metrics() -> Response {
    match crate::telemetry::prometheus_text() {
        Some(Ok(text)) => Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Some(Err(error)) => {
            tracing::error!(error = format!("{error:#}"), "cannot encode the metrics");
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body("internal error")
        }
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body("no metrics are kept: this process was started without --metrics-bind"),
    }
}

/// Counts and times each API request by route (the pattern the router matched, never the
/// path a client sent: ids would make a series each; "other" when no route took it, or it
/// was refused before routing), method and status.
pub(crate) async fn measured<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    request: Request,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = request.method().clone();
    let response = match endpoint.call(request).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    let route = response.data::<PathPattern>().map_or("other", |p| &p.0);
    crate::telemetry::metrics().http_request(
        route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    Ok(response)
}
