//! Report changes from every process, heard through PostgreSQL `LISTEN`.
//!
//! One listener per process forwards each `report_events` notification to the in-process
//! subscribers, so that a subscription hears about a report whichever process runs it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};

use super::Pool;
use super::reports::CHANNEL;
use crate::domain::ReportRecord;

/// The in-process fan-out of report changes.
#[derive(Clone)]
pub struct ReportEvents {
    sender: broadcast::Sender<Arc<ReportRecord>>,
}

impl ReportEvents {
    /// Listens until `stopped` turns true (the listener holds a pool connection, which
    /// must be given back before the pool can close). The listener reconnects on its own
    /// if the connection drops; subscriptions also re-read their report now and then, so
    /// nothing lost meanwhile stays lost.
    pub async fn start(pool: &Pool, mut stopped: watch::Receiver<bool>) -> anyhow::Result<ReportEvents> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let (sender, _) = broadcast::channel(1024);
        let events = ReportEvents {
            sender: sender.clone(),
        };
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = stopped.wait_for(|stop| *stop) => break,
                    received = listener.recv() => received,
                };
                match received {
                    Ok(notification) => match serde_json::from_str::<ReportRecord>(notification.payload()) {
                        Ok(record) => {
                            let _ = sender.send(Arc::new(record));
                        }
                        Err(e) => tracing::warn!(error = %e, "unreadable report event"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "report events listener lost its connection; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(events)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ReportRecord>> {
        self.sender.subscribe()
    }
}
