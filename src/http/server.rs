//! The accept loop, in place of poem's: poem's server has no header-read timeout (a client
//! that sends a header byte now and then holds a connection for ever), no cap on
//! connections, and spins at full CPU when `accept` fails for want of file descriptors.
//! Here hyper serves each connection with a header-read timeout (which also closes idle
//! keep-alive connections), a connection over the cap is answered 503 and closed, and a
//! failing `accept` is retried after a pause.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// What the server allows each connection.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, and how long a keep-alive
    /// connection may wait idle for its next request.
    pub header_timeout: Duration,
    /// How long running requests have to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept for the database pools, the report files and the input files.
const RESERVED_FILES: usize = 128;

/// `limits`, with no more connections than the process can open files for: past that,
/// `accept` itself would fail.
pub(crate) fn connection_limits(mut limits: ServerLimits) -> ServerLimits {
    if let Some(files) = open_files_limit() {
        let most = files.saturating_sub(RESERVED_FILES).max(16);
        if limits.max_connections > most {
            tracing::warn!(
                asked = limits.max_connections,
                open_files_limit = files,
                max_connections = most,
                "fewer connections than asked: the process may open only so many files (raise `ulimit -n`)"
            );
            limits.max_connections = most;
        }
    }
    limits
}

/// The answer to a connection over the cap, written before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: text/plain\r\n\
connection: close\r\ncontent-length: 43\r\n\r\ntoo many connections to this server: retry\n";

/// Serves `endpoint` on `listener` until `stop` resolves, then lets running requests
/// finish for the grace period.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ServerLimits,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint.map_to_response());
    let local = LocalAddr(poem::Addr::SocketAddr(listener.local_addr()?));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let accept_errors = Throttled::default();
    let refusals = Throttled::default();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: accepting again at once would fail
                // again at once. The waiting connections stay in the kernel's backlog.
                accept_errors.warn(
                    |n| tracing::error!(error = %e, failures = n, "cannot accept connections; pausing"),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.warn(|n| {
                tracing::warn!(
                    max = limits.max_connections,
                    refused = n,
                    "connection cap reached; refusing"
                )
            });
            tokio::spawn(async move {
                let mut tcp = tcp;
                let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(BUSY)).await;
            });
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (endpoint, local, builder) = (endpoint.clone(), local.clone(), builder.clone());
        let remote = RemoteAddr(poem::Addr::SocketAddr(remote));
        let mut closing = closing_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (endpoint, local, remote) = (endpoint.clone(), local.clone(), remote.clone());
                    async move {
                        let request =
                            poem::Request::from((request, local, remote, poem::http::uri::Scheme::HTTP));
                        let response = match endpoint.call(request).await {
                            Ok(response) => response,
                            Err(error) => error.into_response(),
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::from(response))
                    }
                });
            // hyper's timeout runs from the first byte: before it, hyper waits to tell
            // HTTP/1 from HTTP/2 for as long as the client says nothing.
            let first_byte = tokio::time::timeout(header_timeout, tcp.peek(&mut [0u8; 1])).await;
            if !matches!(first_byte, Ok(Ok(1..))) {
                drop(slot);
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open when the grace period ended");
    }
    Ok(())
}

/// Errors of one connection (it was reset before it was accepted): the next may be fine.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

/// A warning logged at most once a second, with how many times it happened.
#[derive(Default)]
struct Throttled {
    count: AtomicU64,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Throttled {
    fn warn(&self, log: impl FnOnce(u64)) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            log(count);
        }
    }
}

/// The file descriptors this process may open (its soft `RLIMIT_NOFILE`), read from
/// `/proc/self/limits`: connections beyond what the process can hold must be refused
/// before `accept` fails.
pub fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_the_length_it_says() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{body:?}"
        );
    }

    #[test]
    fn the_open_files_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
