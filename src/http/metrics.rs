//! `/metrics`: the service's instruments in Prometheus's text format, on the listener
//! `--metrics-bind` names (never the API's: it takes no token).

use std::time::Instant;

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response, Route, get, handler};

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

/// Counts and times each API request by route (the pattern, never the path a client sent:
/// ids would make a series each), method and status.
pub(crate) async fn measured<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    request: Request,
) -> poem::Result<Response> {
    let started = Instant::now();
    let route = route_of(request.uri().path());
    let method = request.method().clone();
    let response = match endpoint.call(request).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    crate::telemetry::metrics().http_request(
        route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    Ok(response)
}

/// The route a path took, from the fixed set `routes` serves; anything else is "other".
fn route_of(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/graphql" => "/graphql",
        "/graphql/ws" => "/graphql/ws",
        "/polls" => "/polls",
        "/trigger_report" => "/trigger_report",
        "/get_report" => "/get_report",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        _ if path.starts_with("/dashboard/") => "/dashboard/:file",
        _ if path.starts_with("/graphiql/") => "/graphiql/:file",
        _ if path.starts_with("/reports/") => "/reports/:file",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_its_pattern_never_the_path_sent() {
        assert_eq!(route_of("/reports/0b5e.csv"), "/reports/:file");
        assert_eq!(route_of("/graphql"), "/graphql");
        assert_eq!(route_of("/wp-admin/setup.php"), "other");
    }
}
