//! The WebSocket endpoint of subscriptions, in `graphql-transport-ws` or the older
//! `graphql-ws` protocol, with what async-graphql leaves out: a socket that does not send
//! `connection_init` in time is closed (4408, as graphql-transport-ws says), idle sockets
//! get a ping now and then so that proxies keep them open, messages have a size limit, and
//! an operation refused before it runs is the protocol's `error` message rather than a
//! `next` and a `complete`. A client address has so many sockets at once, and a socket so
//! many subscriptions.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use async_graphql_poem::GraphQLProtocol;
use futures::{SinkExt, StreamExt};
use poem::web::Data as PoemData;
use poem::web::websocket::{Message, WebSocket, WebSocketConfig};
use poem::{IntoResponse, Response, handler};

use crate::graphql::{AppSchema, RETRY_AFTER_SECONDS, SubscriptionSlots};

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
pub(crate) struct WsLimits {
    /// How long a new socket has to send `connection_init`.
    pub init_timeout: Duration,
    /// How often an open socket is pinged.
    pub keepalive: Duration,
    /// The largest message read.
    pub max_message: usize,
    /// Subscriptions one socket may have at once.
    pub max_subscriptions: usize,
    /// Sockets one client address may have open at once.
    pub max_sockets_per_address: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        let settings = crate::startup::WebSocketSettings::default();
        WsLimits {
            init_timeout: settings.init_timeout,
            keepalive: settings.keepalive,
            max_message: 64 << 10,
            max_subscriptions: settings.max_subscriptions,
            max_sockets_per_address: settings.max_sockets_per_address,
        }
    }
}

/// `GET /graphql/ws`.
#[handler]
pub(crate) fn endpoint(
    websocket: WebSocket,
    protocol: GraphQLProtocol,
    schema: PoemData<&AppSchema>,
    limits: PoemData<&WsLimits>,
    sockets: PoemData<&OpenSockets>,
    remote: &poem::web::RemoteAddr,
) -> Response {
    let (schema, limits) = (schema.clone(), **limits);
    let address = remote
        .as_socket_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
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
    websocket
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .config(config)
        .on_upgrade(move |stream| async move {
            serve(stream, schema, protocol.0, limits).await;
            drop(socket);
        })
        .into_response()
}

async fn serve(
    socket: poem::web::websocket::WebSocketStream,
    schema: AppSchema,
    protocol: WebSocketProtocols,
    limits: WsLimits,
) {
    let (mut sink, stream) = socket.split();
    // Operations refused before async-graphql sees them (`refuse_early`), answered here.
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
        .filter_map(move |message| {
            let refusals = refusals.clone();
            async move {
                match refuse_early(protocol, &message) {
                    None => Some(message),
                    Some(answers) => {
                        for answer in answers {
                            let _ = refusals.send(Message::text(answer)).await;
                        }
                        None
                    }
                }
            }
        });
    let initialized = Arc::new(AtomicBool::new(false));
    let on_init = {
        let initialized = initialized.clone();
        move |_payload: serde_json::Value| {
            initialized.store(true, Ordering::Relaxed);
            let mut data = Data::default();
            data.insert(SubscriptionSlots::new(limits.max_subscriptions));
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
            _ = keepalive.tick() => Message::Ping(Vec::new()),
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
}

/// The protocol's answer to an operation whose document is over a limit
/// (`graphql::precheck`), sent without async-graphql ever walking it; `None` for any other
/// message.
fn refuse_early(protocol: WebSocketProtocols, message: &[u8]) -> Option<Vec<String>> {
    let message: serde_json::Value = serde_json::from_slice(message).ok()?;
    if !matches!(message["type"].as_str(), Some("subscribe" | "start")) {
        return None;
    }
    let payload = &message["payload"];
    let mut request = async_graphql::Request::new(payload["query"].as_str()?);
    if let Some(variables) = payload.get("variables").filter(|v| v.is_object()) {
        request = request.variables(async_graphql::Variables::from_json(variables.clone()));
    }
    let error = crate::graphql::precheck(&mut request).err()?;
    let id = &message["id"];
    let errors = serde_json::to_value(vec![error]).ok()?;
    Some(match protocol {
        WebSocketProtocols::GraphQLWS => {
            vec![serde_json::json!({ "id": id, "type": "error", "payload": errors }).to_string()]
        }
        // subscriptions-transport-ws: a result with the errors, then the end.
        _ => vec![
            serde_json::json!({ "id": id, "type": "data", "payload": { "data": null, "errors": errors } })
                .to_string(),
            serde_json::json!({ "id": id, "type": "complete" }).to_string(),
        ],
    })
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
