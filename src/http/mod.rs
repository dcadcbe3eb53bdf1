//! The HTTP routes: the dashboard, GraphQL (with GraphiQL and WebSocket subscriptions),
//! report files, the original trigger + poll API, and health checks.

mod client;
mod compression;
mod dashboard;
mod error;
mod files;
mod graphiql;
mod graphql;
mod health;
mod legacy;
pub(crate) mod metrics;
mod origin;
mod persisted;
mod polls;
mod server;
mod ws;

pub use client::{Cidr, ProxyHeader};
pub use server::ServerLimits;
pub(crate) use server::{connection_limits, serve};
pub use ws::WebSocketLimits;

use std::net::IpAddr;

use crate::domain::access::Action;
use crate::graphql::AppSchema;
use crate::service::auth::{self, Caller, Denied, Outcome};
use crate::service::{AppState, Error};
use compression::Compression;
use poem::http::{StatusCode, header};
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, post};

/// Every route, with CORS for `cors_origins` (empty: same origin only), compression and request
/// tracing.
pub(crate) fn routes(
    state: AppState,
    schema: AppSchema,
    cors_origins: &[String],
    websocket: WebSocketLimits,
    max_response_bytes: usize,
    trusted_proxies: &[Cidr],
    proxy_header: ProxyHeader,
) -> impl Endpoint + use<> {
    Route::new()
        .at("/", get(dashboard::page))
        .at("/dashboard/:file", get(dashboard::file))
        .at("/graphql", get(graphql::endpoint).post(graphql::endpoint))
        .at("/graphql/ws", get(ws::endpoint))
        .at("/graphiql/:file", get(graphiql::file))
        .at("/reports/:file", get(files::report_file))
        .at("/polls", post(polls::push))
        .at("/trigger_report", post(legacy::trigger_report))
        .at("/get_report", get(legacy::get_report))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .data(state)
        .data(schema)
        .data(persisted::PersistedQueries::default())
        .data(websocket)
        .data(ws::OpenSockets::default())
        .data(graphql::ResponseLimit(max_response_bytes))
        .with(Compression)
        .with(origin::cors(cors_origins))
        .with(origin::SameOrigin)
        .around(metrics::measured)
        .with(client::Resolve(trusted_proxies.into(), proxy_header))
}

/// A file the binary embeds, one of `files` (name, content type, bytes), with this
/// `Cache-Control`; 404 saying which `kind` of file was not found.
fn embedded_file(
    files: &[(&str, &str, &'static [u8])],
    name: &str,
    cache: &'static str,
    kind: &str,
) -> Response {
    match files.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => Response::builder()
            .status(StatusCode::OK)
            .content_type(*content_type)
            .header(header::CACHE_CONTROL, cache)
            .body(*bytes),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body(format!("no {kind} file {name:?}")),
    }
}

/// What a person can open on a server listening at `local`, by name: the pages, the API
/// and its WebSocket, the health checks. A server listening on every address is shown at
/// the loopback one, which a browser on the same machine can open.
pub(crate) fn directory(local: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    let mut shown = local;
    if local.ip().is_unspecified() {
        shown.set_ip(match local {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    vec![
        ("dashboard", format!("http://{shown}/")),
        ("GraphiQL", format!("http://{shown}/graphql")),
        ("GraphQL (POST)", format!("http://{shown}/graphql")),
        ("subscriptions", format!("ws://{shown}/graphql/ws")),
        ("liveness", format!("http://{shown}/healthz")),
        ("readiness", format!("http://{shown}/readyz")),
    ]
}

/// The items of a header list like `Accept` or `Accept-Encoding`, each as its lower-cased
/// name and its weight (`q`) in thousandths (1000 when not given).
fn weighted<'a>(values: impl Iterator<Item = &'a str>) -> impl Iterator<Item = (String, u32)> {
    values.flat_map(|v| v.split(',')).map(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        (name, (q.clamp(0.0, 1.0) * 1000.0) as u32)
    })
}

/// A JSON body with a status code.
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// The client's address: the connection's peer, or, behind a trusted proxy
/// (`--trusted-proxy`), the address its forwarding headers name.
fn address(req: &Request) -> Option<IpAddr> {
    match req.extensions().get::<client::ClientAddress>() {
        Some(client) => Some(client.0),
        None => req.remote_addr().as_socket_addr().map(|a| a.ip()),
    }
}

/// The caller of `req`: the token of its `Authorization` header, checked, or anonymous.
async fn caller(req: &Request, state: &AppState) -> Result<Caller, Error> {
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    auth::authenticate(state, credentials, address(req)).await
}

/// The caller of a REST call, if it may do `action`; else the answer that says why (401
/// with `WWW-Authenticate`, 403, or 503 with the database down). Either way, audited.
async fn allowed(req: &Request, state: &AppState, action: Action) -> Result<Caller, Response> {
    let operation = format!("{} {}", req.method(), req.uri().path());
    let caller = match caller(req, state).await {
        Ok(caller) => caller,
        Err(error) => {
            if let Error::Denied(denied) = &error {
                auth::audit(
                    &Caller::anonymous(address(req)),
                    &operation,
                    Outcome::Refused(denied),
                );
            }
            return Err(error::response(error));
        }
    };
    if let Err(denied) = auth::authorize(state, &caller, &[action]) {
        auth::audit(&caller, &operation, Outcome::Refused(&denied));
        return Err(error::response(denied.into()));
    }
    if action.changes() || caller.token.is_some() {
        auth::audit(&caller, &operation, Outcome::Allowed);
    }
    Ok(caller)
}

/// The status of a refused call: 401 without a usable token, 403 for a role that may not.
fn refusal_status(denied: &Denied) -> StatusCode {
    match denied {
        Denied::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) => StatusCode::FORBIDDEN,
    }
}

/// Adds the `WWW-Authenticate` header a 401 has (RFC 9110, RFC 6750).
fn challenge(response: &mut Response, denied: &Denied) {
    if let Some(value) = denied
        .challenge()
        .and_then(|c| poem::http::HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
}
