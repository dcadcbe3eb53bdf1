//! A WebSocket speaking graphql-transport-ws message by message, as graphql-ws's client
//! does: for the tests that look at each message, close code included.
#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket speaking graphql-transport-ws, as graphql-ws's client does.
pub struct Socket {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Socket {
    pub async fn open(address: &str, payload: Value) -> Socket {
        let url = format!("{}/graphql/ws", address.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.send(Message::Text(
            json!({ "type": "connection_init", "payload": payload })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        Socket { ws }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let message =
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next protocol message (pings skipped); `None` once closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(std::time::Duration::from_secs(60), self.ws.next())
                .await
                .expect("the socket answers in time")?;
            match message {
                Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
                Ok(Message::Close(frame)) => {
                    let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return Some(
                        json!({ "type": "close", "code": frame.as_ref().map(|f| f.0), "reason": frame.map(|f| f.1) }),
                    );
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    pub async fn expect_ack(&mut self) {
        let message = self.next().await.unwrap();
        assert_eq!(message["type"], "connection_ack", "{message}");
    }
}
