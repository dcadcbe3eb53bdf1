//! A webhook receiver of the tests' own: an HTTP server on a free loopback port that keeps
//! every request it gets (headers and body as received) and answers each with the next
//! status of its script (200 once the script is spent; `0` holds the request unanswered
//! until the test ends, as a receiver that hangs), after a delay of its own if it has one (a
//! slow receiver). Signatures are checked afterwards by the Standard Webhooks npm library
//! (`verify`), never by code of ours.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::service::service_fn;
use serde_json::{Value, json};

/// One request as the receiver got it.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The status it was answered with (0: none).
    pub answered: u16,
    /// When it arrived (before any delay of the receiver's).
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    arrived: Arc<tokio::sync::Notify>,
    /// How long each answer takes.
    delay: Duration,
}

impl Receiver {
    /// A receiver answering `script`'s statuses in turn, then 200.
    pub async fn start(script: &[u16]) -> Receiver {
        Self::slow(script, Duration::ZERO).await
    }

    /// [`Receiver::start`], each answer given `delay` after its request arrived.
    pub async fn slow(script: &[u16], delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            arrived: Arc::default(),
            delay,
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let serving = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let serving = serving.clone();
                        async move { Ok::<_, Infallible>(serving.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    async fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<http_body_util::Full<Bytes>> {
        use http_body_util::BodyExt;
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (id, timestamp, signature) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        );
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let status = self.script.lock().unwrap().pop_front().unwrap_or(200);
        self.received.lock().unwrap().push(Received {
            id,
            timestamp,
            signature,
            body: String::from_utf8(body.to_vec()).unwrap(),
            answered: status,
            at: Instant::now(),
        });
        self.arrived.notify_waiters();
        if status == 0 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.delay).await;
        hyper::Response::builder()
            .status(status)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap()
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests have come (at most `limit`, a safety net for a broken
    /// server), and returns them all.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        match self.wait_until(limit, |got| got.len() >= n).await {
            Ok(got) => got,
            Err(got) => panic!("{} requests of {n} within {limit:?}: {got:?}", got.len()),
        }
    }

    /// Waits until `done` holds of the requests so far, for at most `limit`: them all, as
    /// `Err` if it did not come to hold.
    pub async fn wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Result<Vec<Received>, Vec<Received>> {
        let deadline = Instant::now() + limit;
        loop {
            let arrived = self.arrived.notified();
            let got = self.received();
            if done(&got) {
                return Ok(got);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(got);
            }
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }
}

/// What the Standard Webhooks npm library says of each request, verified with `secret`:
/// "verified", or why it refused.
pub async fn verify(received: &[Received], secret: &str) -> Vec<String> {
    let cases: Vec<Value> = received
        .iter()
        .map(|r| {
            json!({
                "secret": secret, "id": r.id, "timestamp": r.timestamp,
                "signature": r.signature, "body": r.body,
            })
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), Value::Array(cases).to_string()).unwrap();
    let log = super::js::run(
        "standardwebhooks.mjs",
        vec![file.path().to_string_lossy().into_owned()],
        vec![],
    )
    .await;
    serde_json::from_str(log.trim()).unwrap()
}
