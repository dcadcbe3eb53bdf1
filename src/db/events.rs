//! Report changes and token revocations from every process, heard through PostgreSQL
//! `LISTEN`.
//!
//! One listener per process forwards each `report_events` notification to the in-process
//! subscribers, so that a subscription hears about a report whichever process runs it, and
//! each `api_token_revoked` one to whoever keeps tokens (`service::auth`), and each
//! `dataset_events` one (a reload changed the data) to the `dataset` subscription. An
//! `incident_events` notice wakes the reader of that outbox, which passes on its new rows
//! (in `seq` order, which is commit order) to the `incidents` subscription, and the delivery
//! workers, whose jobs were queued with the events.
//! Notices sent while the listener was reconnecting are lost; so every few seconds one
//! query re-reads the reports that someone follows, and passes on those that changed
//! unheard. Subscribers never read the database themselves: however many there are, a
//! process makes one query per period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::Pool;
use super::incidents::{self, IncidentEvent};
use super::loads::DATASET_CHANNEL;
use super::reports::{self, CHANNEL};
use super::tokens::REVOKED_CHANNEL;
use crate::domain::ReportRecord;

/// The in-process fan-out of report changes.
#[derive(Clone)]
pub struct ReportEvents {
    sender: broadcast::Sender<Arc<ReportRecord>>,
    followed: Followed,
    /// Token revocations: the token's id, or `None` when notices may have been lost (the
    /// listener reconnected), so that whatever was kept must be read again.
    revoked: broadcast::Sender<Option<Uuid>>,
    /// The data version after each reload that changed the data.
    dataset: broadcast::Sender<i64>,
    /// Incidents opened, resolved or withdrawn, in the outbox's order.
    incidents: broadcast::Sender<Arc<IncidentEvent>>,
    /// Wakes the outbox's reader: a notice came, or a recheck is due.
    outbox: Arc<tokio::sync::Notify>,
    /// Wakes the delivery workers: events (and their deliveries) were committed.
    committed: Arc<tokio::sync::Notify>,
}

/// The reports someone follows.
#[derive(Clone, Default)]
struct Followed(Arc<Mutex<HashMap<Uuid, FollowedReport>>>);

/// How many follow a report, and its newest state passed on.
#[derive(Default)]
struct FollowedReport {
    followers: usize,
    last: Option<Arc<ReportRecord>>,
}

impl Followed {
    /// Notes `record` as passed on; `false` if it is not newer than what was.
    fn note(&self, record: &Arc<ReportRecord>) -> bool {
        let mut followed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match followed.get_mut(&record.id) {
            Some(FollowedReport { last: Some(last), .. }) if !record.is_newer_than(last) => false,
            Some(followed) => {
                followed.last = Some(record.clone());
                true
            }
            None => true,
        }
    }

    fn ids(&self) -> Vec<Uuid> {
        let followed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        followed.keys().copied().collect()
    }
}

/// A report followed for as long as this lives.
pub struct Following {
    id: Uuid,
    followed: Followed,
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut followed = self.followed.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(report) = followed.get_mut(&self.id) {
            report.followers -= 1;
            if report.followers == 0 {
                followed.remove(&self.id);
            }
        }
    }
}

impl ReportEvents {
    /// How often the followed reports are re-read in case a notice was lost.
    pub const RECHECK: Duration = Duration::from_secs(5);

    /// Listens until `stopped` turns true (the listener holds a pool connection, which
    /// must be given back before the pool can close). The listener reconnects on its own
    /// if the connection drops.
    pub async fn start(pool: &Pool, stopped: watch::Receiver<bool>) -> anyhow::Result<ReportEvents> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([CHANNEL, REVOKED_CHANNEL, DATASET_CHANNEL, incidents::CHANNEL])
            .await?;
        let (sender, _) = broadcast::channel(1024);
        let events = ReportEvents {
            sender,
            followed: Followed::default(),
            revoked: broadcast::channel(64).0,
            dataset: broadcast::channel(64).0,
            incidents: broadcast::channel(4096).0,
            outbox: Arc::default(),
            committed: Arc::default(),
        };
        let seen = incidents::last_event(pool).await?;
        tokio::spawn(events.clone().read_outbox(pool.clone(), seen, stopped.clone()));
        tokio::spawn(events.clone().listen(listener, stopped.clone()));
        tokio::spawn(events.clone().recheck(pool.clone(), stopped));
        Ok(events)
    }

    async fn listen(self, mut listener: PgListener, mut stopped: watch::Receiver<bool>) {
        loop {
            let received = tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => break,
                received = listener.recv() => received,
            };
            match received {
                Ok(notification) if notification.channel() == REVOKED_CHANNEL => {
                    let _ = self.revoked.send(Uuid::parse_str(notification.payload()).ok());
                }
                Ok(notification) if notification.channel() == incidents::CHANNEL => {
                    self.outbox.notify_one();
                    self.committed.notify_one();
                }
                Ok(notification) if notification.channel() == DATASET_CHANNEL => {
                    if let Ok(version) = notification.payload().parse() {
                        let _ = self.dataset.send(version);
                    }
                }
                Ok(notification) => match serde_json::from_str::<ReportRecord>(notification.payload()) {
                    Ok(record) => self.pass_on(Arc::new(record)),
                    Err(e) => tracing::warn!(error = %e, "unreadable report event"),
                },
                Err(e) => {
                    let _ = self.revoked.send(None);
                    tracing::warn!(error = %e, "report events listener lost its connection; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One timer for the whole process, which no notice resets.
    async fn recheck(self, pool: Pool, mut stopped: watch::Receiver<bool>) {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + Self::RECHECK, Self::RECHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => break,
                _ = every.tick() => {}
            }
            self.outbox.notify_one();
            let ids = self.followed.ids();
            if ids.is_empty() {
                continue;
            }
            match reports::get_many(&pool, &ids).await {
                Ok(records) => records.into_iter().for_each(|r| self.pass_on(Arc::new(r))),
                Err(e) => tracing::debug!(error = %e, "cannot re-read the followed reports"),
            }
        }
    }

    /// Passes on the outbox's events after `seen` each time it is woken. With nobody
    /// listening, it only notes where the outbox ends.
    async fn read_outbox(self, pool: Pool, mut seen: i64, mut stopped: watch::Receiver<bool>) {
        const BATCH: i64 = 1000;
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => break,
                _ = self.outbox.notified() => {}
            }
            loop {
                let read = if self.incidents.receiver_count() == 0 {
                    incidents::last_event(&pool).await.map(|last| {
                        seen = last;
                        0
                    })
                } else {
                    incidents::events_after(&pool, seen, BATCH).await.map(|events| {
                        let n = events.len();
                        for event in events {
                            seen = event.seq;
                            let _ = self.incidents.send(Arc::new(event));
                        }
                        n
                    })
                };
                match read {
                    Ok(n) if n as i64 == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot read the incident events");
                        break;
                    }
                }
            }
        }
    }

    /// Notified each time a process commits incident events, and so their first delivery
    /// attempts: as soon as the notice is heard, with no re-reading. A notice lost while the
    /// listener reconnected is not made up for: the delivery workers read their queue on a
    /// timer as well.
    pub fn events_committed(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// Incidents opened, resolved or withdrawn in any process, from now on.
    pub fn incident_events(&self) -> broadcast::Receiver<Arc<IncidentEvent>> {
        self.incidents.subscribe()
    }

    fn pass_on(&self, record: Arc<ReportRecord>) {
        if self.followed.note(&record) {
            let _ = self.sender.send(record);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ReportRecord>> {
        self.sender.subscribe()
    }

    /// The data version after each reload that changed the data, from every process.
    pub fn dataset_changes(&self) -> broadcast::Receiver<i64> {
        self.dataset.subscribe()
    }

    /// Token revocations from every process (`None`: some may have been missed).
    pub fn revocations(&self) -> broadcast::Receiver<Option<Uuid>> {
        self.revoked.subscribe()
    }

    /// The newest state of the followed report `id` this process has seen, if any.
    pub fn last(&self, id: Uuid) -> Option<Arc<ReportRecord>> {
        let followed = self.followed.0.lock().unwrap_or_else(|e| e.into_inner());
        followed.get(&id).and_then(|report| report.last.clone())
    }

    /// Notes `record`, read by a follower, as the newest state seen (if it is).
    pub fn seen(&self, record: &ReportRecord) {
        self.followed.note(&Arc::new(record.clone()));
    }

    /// Follows the report `id`: it is re-read with the others every [`Self::RECHECK`]
    /// until the returned guard is dropped.
    pub fn follow(&self, id: Uuid) -> Following {
        let mut followed = self.followed.0.lock().unwrap_or_else(|e| e.into_inner());
        followed.entry(id).or_default().followers += 1;
        Following {
            id,
            followed: self.followed.clone(),
        }
    }
}
