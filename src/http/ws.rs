//! The WebSocket endpoint of subscriptions, in `graphql-transport-ws` or the older
//! `graphql-ws` protocol, with what async-graphql leaves out: a socket that does not send
//! `connection_init` in time is closed (4408, as graphql-transport-ws says), idle sockets
//! get a ping now and then so that proxies keep them open, messages have a size limit, and
//! an operation refused before it runs is the protocol's `error` message rather than a
//! `next` and a `complete`. A client address has so many sockets at once, and a socket so
//! many subscriptions.
//!
//! The caller's token comes in `connection_init` (or the upgrade's `Authorization`
//! header): without one where one is needed the socket is closed with 4401, with one that
//! does not work with 4403. Each operation is authorized before async-graphql sees it, and
//! the token looked up again, so that one revoked meanwhile closes the socket (also checked
//! at each keep-alive ping, and at once when any process announces the token revoked or its
//! groups renamed: a socket whose token's groups changed is closed with 4403 too, since its
//! caller, made at `connection_init`, would go on seeing the old groups).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use async_graphql::{Data, ServerError};
use async_graphql_poem::GraphQLProtocol;
use futures::{SinkExt, StreamExt};
use poem::web::Data as PoemData;
use poem::web::websocket::{Message, WebSocket, WebSocketConfig};
use poem::{IntoResponse, Response, handler};

use crate::graphql::{AppSchema, SubscriptionSlots};
use crate::service::AppState;
use crate::service::auth::{self, Caller, Denied, Outcome};
use crate::service::{Error, RETRY_AFTER_SECONDS};

/// The open sockets of each client address.
#[derive(Clone, Default)]
pub(crate) struct OpenSockets(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open socket, counted until dropped.
struct OpenSocket(OpenSockets, IpAddr);

impl OpenSockets {
    fn open(&self, address: IpAddr, max: usize) -> Option<OpenSocket> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(OpenSocket(self.clone(), address))
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        let mut open = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// How the endpoint treats its sockets.
#[derive(Clone, Copy, Debug)]
pub struct WebSocketLimits {
    /// How long a new socket has to send `connection_init`.
    pub init_timeout: Duration,
    /// How often an open socket is pinged, so that proxies do not close it as idle.
    pub keepalive: Duration,
    /// The largest message read.
    pub max_message: usize,
    /// Subscriptions one socket may have at once.
    pub max_subscriptions: usize,
    /// Sockets one client address may have open at once.
    pub max_sockets_per_address: usize,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            init_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            max_message: 64 << 10,
            max_subscriptions: 100,
            max_sockets_per_address: 64,
        }
    }
}

/// `GET /graphql/ws`.
#[handler]
pub(crate) fn endpoint(
    websocket: WebSocket,
    protocol: GraphQLProtocol,
    schema: PoemData<&AppSchema>,
    limits: PoemData<&WebSocketLimits>,
    sockets: PoemData<&OpenSockets>,
    state: PoemData<&AppState>,
    req: &poem::Request,
) -> Response {
    let (schema, limits) = (schema.clone(), **limits);
    let address = super::address(req).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let Some(socket) = sockets.open(address, limits.max_sockets_per_address) else {
        tracing::warn!(%address, max = limits.max_sockets_per_address, "WebSocket refused: too many from this address");
        return Response::builder()
            .status(poem::http::StatusCode::TOO_MANY_REQUESTS)
            .header(poem::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS)
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "this address has {} subscription sockets open, the most it may: close one, or subscribe on one you have",
                limits.max_sockets_per_address
            ));
    };
    // tungstenite reads through a 128 KiB buffer by default, nearly all of an idle socket's
    // memory (112 KiB each, measured); messages here are small. A client that stops reading
    // gets its socket closed once 1 MiB waits to be written, rather than growing it.
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_message))
        .read_buffer_size(4 << 10)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let session = Arc::new(Session {
        state: state.clone(),
        address: Some(address),
        // A client that can set headers on the upgrade may send its token there; browsers
        // cannot, and send it in `connection_init`.
        header: req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        caller: Mutex::new(None),
    });
    websocket
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .config(config)
        .on_upgrade(move |stream| async move {
            serve(stream, schema, protocol.0, limits, session).await;
            drop(socket);
        })
        .into_response()
}

/// Who is on a socket.
struct Session {
    state: AppState,
    address: Option<IpAddr>,
    /// The upgrade request's `Authorization` header.
    header: Option<String>,
    /// Set once `connection_init` is accepted.
    caller: Mutex<Option<Caller>>,
}

impl Session {
    fn caller(&self) -> Option<Caller> {
        self.caller.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn serve(
    socket: poem::web::websocket::WebSocketStream,
    schema: AppSchema,
    protocol: WebSocketProtocols,
    limits: WebSocketLimits,
    session: Arc<Session>,
) {
    let (mut sink, stream) = socket.split();
    // Messages refused before async-graphql sees them (`screen`), answered here.
    let (refusals, mut refused_early) = tokio::sync::mpsc::channel::<Message>(16);
    let incoming = stream
        .take_while(|m| futures::future::ready(m.is_ok()))
        .filter_map(|m| futures::future::ready(m.ok().filter(|m| m.is_text() || m.is_binary())))
        .map(Message::into_bytes)
        // async-graphql parses, validates and starts an operation inside the socket's one
        // task: a burst of messages would hold a runtime thread until all were done.
        .then(|message| async move {
            tokio::task::yield_now().await;
            message
        })
        .filter_map({
            let session = session.clone();
            move |message| {
                let (refusals, session) = (refusals.clone(), session.clone());
                async move {
                    match screen(&session, protocol, &message).await {
                        None => Some(message),
                        Some(answers) => {
                            for answer in answers {
                                let _ = refusals.send(answer).await;
                            }
                            None
                        }
                    }
                }
            }
        });
    let initialized = Arc::new(AtomicBool::new(false));
    let on_init = {
        let (initialized, session) = (initialized.clone(), session.clone());
        move |_payload: serde_json::Value| {
            initialized.store(true, Ordering::Relaxed);
            let mut data = Data::default();
            data.insert(SubscriptionSlots::new(limits.max_subscriptions));
            // `screen` accepted the caller before passing `connection_init` on.
            if let Some(caller) = session.caller() {
                data.insert(caller);
            }
            futures::future::ready(Ok(data))
        }
    };
    let mut refused = HashSet::new();
    let outgoing = async_graphql::http::WebSocket::new(schema, incoming, protocol)
        .on_connection_init(on_init)
        .filter_map(move |message| {
            let message = match message {
                WsMessage::Text(text) => as_protocol_error(protocol, text, &mut refused).map(Message::text),
                WsMessage::Close(code, reason) => Some(Message::close_with(code, reason)),
            };
            futures::future::ready(message)
        });
    futures::pin_mut!(outgoing);
    let deadline = tokio::time::sleep(limits.init_timeout);
    tokio::pin!(deadline);
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + limits.keepalive, limits.keepalive);
    // Token notices from every process (revoked, or its groups renamed): the socket's caller
    // was made at `connection_init`, and must not outlive what its token may see.
    let mut notices = auth::token_notices(&session.state);
    let mut listening = true;
    loop {
        let message = tokio::select! {
            message = outgoing.next() => match message {
                Some(message) => message,
                None => break,
            },
            () = &mut deadline, if !initialized.load(Ordering::Relaxed) => {
                let _ = sink.send(Message::close_with(4408u16, "Connection initialisation timeout")).await;
                break;
            }
            Some(refusal) = refused_early.recv() => refusal,
            _ = keepalive.tick() => match still_allowed(&session).await {
                // A token revoked while its socket is open ends the socket.
                Some(close) => close,
                None => Message::Ping(Vec::new()),
            },
            notice = notices.recv(), if listening => {
                let notice = match notice {
                    Ok(id) => id,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        // The process is stopping; keep-alive rechecks still hold.
                        listening = false;
                        continue;
                    }
                };
                let concerns = session
                    .caller()
                    .is_some_and(|caller| auth::notice_concerns(&session.state, &caller, notice));
                match concerns.then_some(()) {
                    Some(()) => match still_allowed(&session).await {
                        Some(close) => close,
                        None => continue,
                    },
                    None => continue,
                }
            }
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
}

/// The close frame of a socket whose token no longer works; `None` while it does.
async fn still_allowed(session: &Session) -> Option<Message> {
    let caller = session.caller()?;
    match auth::recheck(&session.state, &caller).await {
        Err(Error::Denied(denied)) => {
            auth::audit(&caller, "WebSocket", Outcome::Closed(&denied));
            Some(close(4403, "Forbidden", &denied))
        }
        _ => None,
    }
}

/// A close frame with the protocol's code and reason: its word, then why, cut to fit the
/// 123 bytes a close reason may have.
fn close(code: u16, word: &str, denied: &Denied) -> Message {
    let mut reason = format!("{word}: {}", denied.message());
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    Message::close_with(code, reason)
}

/// What `connection_init` carries the token in: graphql-ws's `connectionParams`, as
/// `{"Authorization": "Bearer …"}` (any case), Apollo's `{"headers": {"Authorization": …}}`,
/// or `{"token": …}`.
fn credentials(payload: &serde_json::Value) -> Option<String> {
    let find = |object: &serde_json::Value, names: &[&str]| {
        object.as_object()?.iter().find_map(|(k, v)| {
            names
                .iter()
                .any(|n| k.eq_ignore_ascii_case(n))
                .then(|| v.as_str().map(str::to_string))
                .flatten()
        })
    };
    find(payload, &["authorization", "token"]).or_else(|| find(&payload["headers"], &["authorization"]))
}

/// Looks at a client's message before async-graphql does: `connection_init` is accepted
/// only with a usable token (or none, where none is needed), and an operation only when its
/// document is within the limits (`graphql::precheck`) and its caller may do all it asks.
/// `None` passes the message on; otherwise these are the answers, and it goes no further.
async fn screen(session: &Session, protocol: WebSocketProtocols, message: &[u8]) -> Option<Vec<Message>> {
    let message: serde_json::Value = serde_json::from_slice(message).ok()?;
    match message["type"].as_str() {
        Some("connection_init") => accept(session, &message["payload"]).await.err(),
        Some("subscribe" | "start") => {
            let (kind, refused) = screen_operation(session, protocol, &message).await?;
            let metrics = crate::telemetry::metrics();
            match refused {
                None => {
                    metrics.graphql_operation(kind, "ok");
                    None
                }
                Some((code, answer)) => {
                    metrics.graphql_operation(kind, &code);
                    Some(answer)
                }
            }
        }
        _ => None,
    }
}

/// [`screen`] of an operation: its kind, and, when it must not start, its error's code and
/// what answers it instead of async-graphql. `None` when async-graphql is to answer it.
async fn screen_operation(
    session: &Session,
    protocol: WebSocketProtocols,
    message: &serde_json::Value,
) -> Option<(&'static str, Option<(String, Vec<Message>)>)> {
    let id = &message["id"];
    let payload = &message["payload"];
    let mut request = async_graphql::Request::new(payload["query"].as_str()?);
    if let Some(variables) = payload.get("variables").filter(|v| v.is_object()) {
        request = request.variables(async_graphql::Variables::from_json(variables.clone()));
    }
    if let Some(name) = payload["operationName"].as_str() {
        request = request.operation_name(name);
    }
    let kind = crate::graphql::operation_kind(&mut request);
    let error = |error: ServerError| {
        let code = error.extensions.as_ref().and_then(|x| x.get("code")).map_or_else(
            || "?".to_string(),
            |c| c.to_string().trim_matches('"').to_string(),
        );
        Some((kind, Some((code, operation_error(protocol, id, error)))))
    };
    if let Err(refused) = crate::graphql::precheck(&mut request) {
        return error(refused);
    }
    // Not initialised yet: async-graphql closes the socket, as the protocol says.
    let caller = session.caller()?;
    let actions = crate::graphql::actions(&mut request);
    let operation = format!(
        "GraphQL over WebSocket {} [{}]",
        request.operation_name.as_deref().unwrap_or("(unnamed)"),
        actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    );
    match auth::recheck(&session.state, &caller).await {
        Ok(()) => {}
        Err(Error::Denied(denied)) => {
            auth::audit(&caller, &operation, Outcome::Closed(&denied));
            let answer = vec![close(4403, "Forbidden", &denied)];
            return Some((kind, Some(("FORBIDDEN".to_string(), answer))));
        }
        Err(failed) => return error(crate::graphql::request_error(failed)),
    }
    if let Err(denied) = auth::authorize(&session.state, &caller, &actions) {
        auth::audit(&caller, &operation, Outcome::Refused(&denied));
        return error(crate::graphql::request_error(denied.into()));
    }
    if caller.token.is_some() || actions.iter().any(|a| a.changes()) {
        auth::audit(&caller, &operation, Outcome::Started);
    }
    Some((kind, None))
}

/// Accepts `connection_init`'s caller, or closes the socket: 4401 without a token where one
/// is needed, 4403 with one that is unknown, revoked or expired (graphql-transport-ws's
/// codes; the older protocol gets its `connection_error`).
async fn accept(session: &Session, payload: &serde_json::Value) -> Result<(), Vec<Message>> {
    let state = &session.state;
    let sent = credentials(payload).or_else(|| session.header.clone());
    let anonymous = Caller::anonymous(session.address);
    let refuse = |code: u16, word: &str, denied: Denied| {
        auth::audit(&anonymous, "WebSocket connection_init", Outcome::Refused(&denied));
        Err(vec![close(code, word, &denied)])
    };
    match auth::authenticate(state, sent.as_deref(), session.address).await {
        Ok(caller) => {
            if caller.token.is_none() && auth::tokens_required(state) {
                return refuse(
                    4401,
                    "Unauthorized",
                    Denied::Unauthenticated {
                        reason: "send a token in connection_init: {\"Authorization\": \"Bearer …\"}".into(),
                        token_sent: false,
                    },
                );
            }
            if caller.token.is_some() {
                auth::audit(&caller, "WebSocket connection_init", Outcome::Accepted);
            }
            *session.caller.lock().unwrap_or_else(|e| e.into_inner()) = Some(caller);
            Ok(())
        }
        Err(Error::Denied(denied)) => refuse(4403, "Forbidden", denied),
        Err(error) => {
            // The token could not be checked: the socket is closed as the WebSocket codes
            // say, "try again later" for an outage (RFC 6455's registry), else our error.
            error.log();
            let (code, reason) = match error {
                Error::Unavailable(_) => (1013u16, "Try again later: the database is unavailable"),
                _ => (1011u16, "internal error"),
            };
            Err(vec![Message::close_with(code, reason)])
        }
    }
}

/// The protocol's answer to an operation refused before it ran.
fn operation_error(protocol: WebSocketProtocols, id: &serde_json::Value, error: ServerError) -> Vec<Message> {
    let errors = serde_json::to_value(vec![error]).unwrap_or_default();
    let answers = match protocol {
        WebSocketProtocols::GraphQLWS => {
            vec![serde_json::json!({ "id": id, "type": "error", "payload": errors })]
        }
        // subscriptions-transport-ws: a result with the errors, then the end.
        _ => vec![
            serde_json::json!({ "id": id, "type": "data", "payload": { "data": null, "errors": errors } }),
            serde_json::json!({ "id": id, "type": "complete" }),
        ],
    };
    answers
        .into_iter()
        .map(|a| Message::text(a.to_string()))
        .collect()
}

/// In graphql-transport-ws, an operation refused before it ran (its result has errors, no
/// data, and no error at a field) is an `error` message with the errors, and nothing
/// follows it: async-graphql sends it as `next`, then `complete`. Other messages pass.
fn as_protocol_error(
    protocol: WebSocketProtocols,
    text: String,
    refused: &mut HashSet<String>,
) -> Option<String> {
    if protocol != WebSocketProtocols::GraphQLWS {
        return Some(text);
    }
    let Ok(mut message) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Some(text);
    };
    let id = message["id"].as_str().unwrap_or_default().to_string();
    match message["type"].as_str() {
        Some("next") => {
            let payload = &message["payload"];
            let errors = payload["errors"].as_array();
            let request_error = payload["data"].is_null()
                && errors.is_some_and(|e| !e.is_empty() && e.iter().all(|e| e.get("path").is_none()));
            if !request_error {
                return Some(text);
            }
            let errors = message["payload"]["errors"].take();
            refused.insert(id.clone());
            Some(serde_json::json!({ "id": id, "type": "error", "payload": errors }).to_string())
        }
        Some("complete") if refused.remove(&id) => None,
        _ => Some(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_operation_is_an_error_message_and_nothing_after_it() {
        let mut refused = HashSet::new();
        let p = WebSocketProtocols::GraphQLWS;
        let next = r#"{"id":"1","type":"next","payload":{"data":null,"errors":[{"message":"x","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}}"#;
        let error: serde_json::Value =
            serde_json::from_str(&as_protocol_error(p, next.into(), &mut refused).unwrap()).unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(
            error["payload"][0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
        assert_eq!(
            as_protocol_error(p, r#"{"id":"1","type":"complete"}"#.into(), &mut refused),
            None
        );
        // A field's error is a result like any other.
        let field = r#"{"id":"2","type":"next","payload":{"data":null,"errors":[{"message":"x","path":["report"]}]}}"#;
        assert_eq!(
            as_protocol_error(p, field.into(), &mut refused).as_deref(),
            Some(field)
        );
        let complete = r#"{"id":"2","type":"complete"}"#;
        assert_eq!(
            as_protocol_error(p, complete.into(), &mut refused).as_deref(),
            Some(complete)
        );
    }
}
