//! Incidents, evaluated in the transaction that stores the polls (a push, a reload, a
//! removal), by the rules of `domain::incident`, one evaluation at a time (an advisory lock
//! held to the commit): `store_health` keeps where each store stands, so that polls in time
//! order step on from it; a store whose new polls are not all later than those evaluated is
//! evaluated afresh from a week of its stored polls back (or all of them). What changed goes
//! into the `incident_events` outbox in the same transaction, and one `NOTIFY` tells every
//! process to read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::incident::{self, Edit, Health, Incident, Notice, Rules, Run};
use crate::domain::{HoursRow, Poll, Timestamp, Zone};

/// The lock evaluations take, to the commit: one store's polls are evaluated by one
/// transaction at a time, which sees every poll those before it stored, and the outbox's
/// `seq` follows commit order.
const INCIDENT_LOCK: i64 = 0x0057_01e0_1c1d;

/// Where `incident_events` are announced (the newest `seq`, as text).
pub(crate) const CHANNEL: &str = "incident_events";

/// How far back a late poll makes a store's polls be read first; a store with no fresh
/// start in that much is read from its first poll.
const LOOK_BACK_MICROS: i64 = 7 * 24 * 3_600_000_000;

/// How long after it an incident still makes news (see `incident::notices`), counted back
/// from the store's newest poll.
const NEWS_MICROS: i64 = 24 * 3_600_000_000;

/// What evaluates incidents: the rules, and the business hours and zones of every store,
/// kept from one evaluation to the next until a load changes them.
#[derive(Clone, Default)]
pub struct Evaluator {
    rules: Rules,
    hours: HoursCache,
}

impl Evaluator {
    pub fn new(rules: Rules) -> Self {
        Evaluator {
            rules,
            hours: HoursCache::default(),
        }
    }
}

#[derive(Clone, Default)]
struct HoursCache(Arc<Mutex<Option<Arc<StoreHours>>>>);

struct StoreHours {
    /// The newest load that changed hours or zones, when these were read.
    version: i64,
    hours: HashMap<i32, Vec<HoursRow>>,
    zones: HashMap<i32, Zone>,
}

impl StoreHours {
    fn of(&self, store: i32) -> (&[HoursRow], Zone) {
        let hours = self.hours.get(&store).map_or(&[][..], Vec::as_slice);
        (hours, self.zones.get(&store).copied().unwrap_or_default())
    }
}

impl HoursCache {
    async fn get(&self, conn: &mut PgConnection) -> sqlx::Result<Arc<StoreHours>> {
        let version = hours_version(&mut *conn).await?;
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hours) = cached.filter(|h| h.version == version) {
            return Ok(hours);
        }
        let read = Arc::new(StoreHours {
            version,
            hours: super::snapshot::business_hours(&mut *conn)
                .await
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            zones: super::snapshot::zones(&mut *conn).await?,
        });
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(read.clone());
        Ok(read)
    }
}

/// A store's new polls (in time order; some may have been stored already).
pub(crate) struct Touched<'a> {
    pub store: i32,
    pub polls: &'a [Poll],
}

/// What an evaluation changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evaluated {
    pub opened: usize,
    pub resolved: usize,
    /// Events written to the outbox.
    pub told: usize,
}

/// Evaluates the stores `touched`, whose polls are stored already in this transaction,
/// and writes their incidents, health and events.
pub(crate) async fn evaluate(
    conn: &mut PgConnection,
    touched: &[Touched<'_>],
    evaluator: &Evaluator,
) -> sqlx::Result<Evaluated> {
    let rules = evaluator.rules;
    if touched.is_empty() {
        return Ok(Evaluated::default());
    }
    lock(&mut *conn).await?;
    let hours = evaluator.hours.get(&mut *conn).await?;
    let mut inside: Vec<(i32, Vec<Poll>)> = Vec::with_capacity(touched.len());
    for t in touched {
        let (rows, zone) = hours.of(t.store);
        let polls = incident::within_hours(t.polls, rows, zone);
        if !polls.is_empty() {
            inside.push((t.store, polls));
        }
    }
    if inside.is_empty() {
        return Ok(Evaluated::default());
    }
    let stores: Vec<i32> = inside.iter().map(|(s, _)| *s).collect();
    let health: HashMap<i32, HealthRow> = healths(&mut *conn, &stores)
        .await?
        .into_iter()
        .map(|h| (h.store, h))
        .collect();
    let open: HashMap<i32, IncidentRow> = open_incidents(&mut *conn, &stores)
        .await?
        .into_iter()
        .map(|i| (i.store, i))
        .collect();

    let mut writes = Writes::default();
    let mut afresh = Vec::new();
    for (store, polls) in &inside {
        let row = health.get(store);
        let last = row.and_then(|h| h.last_poll).map(Timestamp::from_datetime);
        let in_order = row.is_none_or(|h| !h.from_history) && last.is_none_or(|l| polls[0].at > l);
        if !in_order {
            afresh.push((*store, polls[0].at, row.is_some_and(|h| h.from_history)));
            continue;
        }
        let open = open.get(store);
        let mut state = Health {
            run: row.and_then(HealthRow::run),
            open: open.map(IncidentRow::incident),
        };
        let edits = incident::advance(&mut state, open.map(|o| o.id), polls, rules);
        writes.store(*store, &state, polls[polls.len() - 1].at, edits);
    }
    if !afresh.is_empty() {
        evaluate_afresh(&mut *conn, &hours, &afresh, rules, &mut writes).await?;
    }
    writes.apply(&mut *conn).await
}

/// Evaluates afresh the stores whose polls from `from` on some were removed (the removal's
/// `removed_stores`), in the removal's transaction: an incident the removed polls made goes.
pub(crate) async fn evaluate_removal(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    evaluator: &Evaluator,
) -> sqlx::Result<Evaluated> {
    let stores = removed_stores(&mut *conn).await?;
    if stores.is_empty() {
        return Ok(Evaluated::default());
    }
    lock(&mut *conn).await?;
    let hours = evaluator.hours.get(&mut *conn).await?;
    let cut = Timestamp::from_datetime(from);
    let afresh: Vec<(i32, Timestamp, bool)> = stores.into_iter().map(|s| (s, cut, false)).collect();
    let mut writes = Writes::default();
    evaluate_afresh(&mut *conn, &hours, &afresh, evaluator.rules, &mut writes).await?;
    writes.apply(&mut *conn).await
}

/// Evaluates the stores `afresh` (store, first changed poll within hours, whether to read
/// all its polls) from their stored polls: a week back first, all of them for those with
/// no fresh start in that week.
async fn evaluate_afresh(
    conn: &mut PgConnection,
    hours: &StoreHours,
    afresh: &[(i32, Timestamp, bool)],
    rules: Rules,
    writes: &mut Writes,
) -> sqlx::Result<()> {
    let first = |at: Timestamp, whole: bool| {
        if whole {
            DateTime::<Utc>::UNIX_EPOCH
        } else {
            Timestamp(at.0.saturating_sub(LOOK_BACK_MICROS))
                .to_datetime()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        }
    };
    let mut round: Vec<(i32, Timestamp, DateTime<Utc>)> = afresh
        .iter()
        .map(|&(s, cut, whole)| (s, cut, first(cut, whole)))
        .collect();
    while !round.is_empty() {
        let stores: Vec<i32> = round.iter().map(|r| r.0).collect();
        let froms: Vec<DateTime<Utc>> = round.iter().map(|r| r.2).collect();
        let mut polls: HashMap<i32, Vec<Poll>> = HashMap::new();
        for p in polls_from(&mut *conn, &stores, &froms).await? {
            polls.entry(p.store).or_default().push(Poll {
                at: Timestamp::from_datetime(p.at),
                active: p.active,
            });
        }
        let mut stored: HashMap<i32, Vec<(Uuid, Incident)>> = HashMap::new();
        for i in incidents_from(&mut *conn, &stores, &froms).await? {
            stored.entry(i.store).or_default().push((i.id, i.incident()));
        }
        let mut again = Vec::new();
        for (store, cut, from) in round {
            let whole = from == DateTime::<Utc>::UNIX_EPOCH;
            let (rows, zone) = hours.of(store);
            let read = polls.remove(&store).unwrap_or_default();
            let inside = incident::within_hours(&read, rows, zone);
            let stored = stored.remove(&store).unwrap_or_default();
            match incident::reevaluate(&inside, cut, &stored, whole, rules) {
                Some((state, edits)) => {
                    let last = inside.last().map_or(cut, |p| p.at);
                    writes.store(store, &state, last, edits);
                }
                None => again.push((store, cut, DateTime::<Utc>::UNIX_EPOCH)),
            }
        }
        round = again;
    }
    Ok(())
}

/// The rows an evaluation writes.
#[derive(Default)]
struct Writes {
    health: Vec<(i32, Option<Run>, Timestamp)>,
    withdrawn: Vec<Uuid>,
    incidents: Vec<(Uuid, i32, Incident)>,
    events: Vec<(Uuid, &'static str, Uuid, i32, Incident)>,
    counts: Evaluated,
}

impl Writes {
    /// A store's new state and its incidents' edits, and what they tell.
    fn store(&mut self, store: i32, state: &Health, last: Timestamp, edits: Vec<Edit<Uuid>>) {
        self.health.push((store, state.run, last));
        let since = Timestamp(last.0.saturating_sub(NEWS_MICROS));
        for edit in edits {
            let key = match edit {
                Edit::New(new) => {
                    let key = Uuid::new_v4();
                    self.incidents.push((key, store, new));
                    key
                }
                Edit::Changed { key, new, .. } => {
                    self.incidents.push((key, store, new));
                    key
                }
                Edit::Withdrawn { key, .. } => {
                    self.withdrawn.push(key);
                    key
                }
            };
            for notice in incident::notices(&edit, since) {
                let (kind, incident) = match notice {
                    Notice::Opened(i) => {
                        self.counts.opened += 1;
                        ("opened", i)
                    }
                    Notice::Resolved(i) => {
                        self.counts.resolved += 1;
                        ("resolved", i)
                    }
                    Notice::Withdrawn(i) => ("withdrawn", i),
                };
                self.events.push((Uuid::new_v4(), kind, key, store, incident));
            }
        }
    }

    async fn apply(self, conn: &mut PgConnection) -> sqlx::Result<Evaluated> {
        if !self.withdrawn.is_empty() {
            delete_incidents(&mut *conn, &self.withdrawn).await?;
        }
        if !self.incidents.is_empty() {
            let (mut id, mut store, mut opened, mut resolved, mut inactive) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (key, s, i) in &self.incidents {
                id.push(*key);
                store.push(*s);
                opened.push(instant(i.opened_at));
                resolved.push(i.resolved_at.map(instant));
                inactive.push(i.inactive_polls as i32);
            }
            save_incidents(&mut *conn, &id, &store, &opened, &resolved, &inactive).await?;
        }
        let (mut store, mut last, mut start, mut active, mut length) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (s, run, at) in &self.health {
            store.push(*s);
            last.push(instant(*at));
            start.push(run.map(|r| instant(r.start)));
            active.push(run.map(|r| r.active));
            length.push(run.map(|r| r.length as i32));
        }
        save_health(&mut *conn, &store, &last, &start, &active, &length).await?;
        let mut counts = self.counts;
        if !self.events.is_empty() {
            let (mut id, mut kind, mut incident, mut store, mut opened, mut resolved, mut inactive) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            for (event, k, key, s, i) in &self.events {
                id.push(*event);
                kind.push(*k);
                incident.push(*key);
                store.push(*s);
                opened.push(instant(i.opened_at));
                resolved.push(i.resolved_at.map(instant));
                inactive.push(i.inactive_polls as i32);
            }
            insert_events(
                &mut *conn, &id, &kind, &incident, &store, &opened, &resolved, &inactive,
            )
            .await?;
            announce(&mut *conn).await?;
            counts.told = self.events.len();
            let typed: Vec<(Uuid, &str)> = self.events.iter().map(|e| (e.0, event_type(e.1))).collect();
            super::webhooks::queue_deliveries(&mut *conn, &typed).await?;
        }
        Ok(counts)
    }
}

/// The `type` a webhook's body gives an event of this kind: a withdrawal ends the incident
/// as a resolution does (the body says it was withdrawn).
pub fn event_type(kind: &str) -> &'static str {
    match kind {
        "opened" => "incident.opened",
        _ => "incident.resolved",
    }
}

/// An instant as bound: evaluated polls are within years 2000 to 9999.
fn instant(at: Timestamp) -> DateTime<Utc> {
    at.to_datetime().unwrap_or_default()
}

async fn lock(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(INCIDENT_LOCK)
        .execute(db)
        .await
        .map(drop)
}

/// The stores a removal took polls from (its temporary table).
async fn removed_stores(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<i32>> {
    sqlx::query_scalar("SELECT store FROM removed_stores ORDER BY store")
        .fetch_all(db)
        .await
}

/// The newest load that changed business hours or zones.
async fn hours_version(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(max(id), 0) FROM data_loads WHERE kind IN ('hours', 'timezones') AND changed",
    )
    .fetch_one(db)
    .await
}

#[derive(FromRow)]
struct HealthRow {
    store: i32,
    last_poll: Option<DateTime<Utc>>,
    run_start: Option<DateTime<Utc>>,
    run_active: Option<bool>,
    run_length: Option<i32>,
    from_history: bool,
}

impl HealthRow {
    fn run(&self) -> Option<Run> {
        Some(Run {
            start: Timestamp::from_datetime(self.run_start?),
            active: self.run_active?,
            length: u32::try_from(self.run_length?).ok()?,
        })
    }
}

async fn healths(db: impl PgExecutor<'_>, stores: &[i32]) -> sqlx::Result<Vec<HealthRow>> {
    sqlx::query_as(
        "SELECT store, last_poll, run_start, run_active, run_length, from_history
         FROM store_health WHERE store = ANY($1)",
    )
    .bind(stores)
    .fetch_all(db)
    .await
}

async fn save_health(
    db: impl PgExecutor<'_>,
    store: &[i32],
    last: &[DateTime<Utc>],
    start: &[Option<DateTime<Utc>>],
    active: &[Option<bool>],
    length: &[Option<i32>],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO store_health (store, last_poll, run_start, run_active, run_length)
         SELECT * FROM unnest($1::integer[], $2::timestamptz[], $3::timestamptz[], $4::boolean[], $5::integer[])
         ON CONFLICT (store) DO UPDATE SET last_poll = excluded.last_poll, run_start = excluded.run_start,
             run_active = excluded.run_active, run_length = excluded.run_length, from_history = false",
    )
    .bind(store)
    .bind(last)
    .bind(start)
    .bind(active)
    .bind(length)
    .execute(db)
    .await
    .map(drop)
}

#[derive(FromRow)]
struct IncidentRow {
    id: Uuid,
    store: i32,
    opened_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    inactive_polls: i32,
}

impl IncidentRow {
    fn incident(&self) -> Incident {
        Incident {
            opened_at: Timestamp::from_datetime(self.opened_at),
            resolved_at: self.resolved_at.map(Timestamp::from_datetime),
            inactive_polls: self.inactive_polls.max(0) as u32,
        }
    }
}

async fn open_incidents(db: impl PgExecutor<'_>, stores: &[i32]) -> sqlx::Result<Vec<IncidentRow>> {
    sqlx::query_as(
        "SELECT id, store, opened_at, resolved_at, inactive_polls
         FROM incidents WHERE store = ANY($1) AND resolved_at IS NULL",
    )
    .bind(stores)
    .fetch_all(db)
    .await
}

/// Each store's incidents not resolved before its instant, in time order.
async fn incidents_from(
    db: impl PgExecutor<'_>,
    stores: &[i32],
    froms: &[DateTime<Utc>],
) -> sqlx::Result<Vec<IncidentRow>> {
    sqlx::query_as(
        "SELECT i.id, i.store, i.opened_at, i.resolved_at, i.inactive_polls
         FROM unnest($1::integer[], $2::timestamptz[]) AS s (store, since)
         JOIN incidents i ON i.store = s.store AND (i.resolved_at IS NULL OR i.resolved_at > s.since)
         ORDER BY i.store, i.opened_at",
    )
    .bind(stores)
    .bind(froms)
    .fetch_all(db)
    .await
}

#[derive(FromRow)]
struct PollRow {
    store: i32,
    at: DateTime<Utc>,
    active: bool,
}

/// Each store's polls from its instant on, in time order.
async fn polls_from(
    db: impl PgExecutor<'_>,
    stores: &[i32],
    froms: &[DateTime<Utc>],
) -> sqlx::Result<Vec<PollRow>> {
    sqlx::query_as(
        "SELECT p.store, p.at, p.active
         FROM unnest($1::integer[], $2::timestamptz[]) AS s (store, since)
         JOIN polls p ON p.store = s.store AND p.at >= s.since
         ORDER BY p.store, p.at",
    )
    .bind(stores)
    .bind(froms)
    .fetch_all(db)
    .await
}

async fn delete_incidents(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM incidents WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await
        .map(drop)
}

async fn save_incidents(
    db: impl PgExecutor<'_>,
    id: &[Uuid],
    store: &[i32],
    opened: &[DateTime<Utc>],
    resolved: &[Option<DateTime<Utc>>],
    inactive: &[i32],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO incidents (id, store, opened_at, resolved_at, inactive_polls)
         SELECT * FROM unnest($1::uuid[], $2::integer[], $3::timestamptz[], $4::timestamptz[], $5::integer[])
         ON CONFLICT (id) DO UPDATE SET opened_at = excluded.opened_at, resolved_at = excluded.resolved_at,
             inactive_polls = excluded.inactive_polls",
    )
    .bind(id)
    .bind(store)
    .bind(opened)
    .bind(resolved)
    .bind(inactive)
    .execute(db)
    .await
    .map(drop)
}

#[allow(clippy::too_many_arguments)]
async fn insert_events(
    db: impl PgExecutor<'_>,
    id: &[Uuid],
    kind: &[&str],
    incident: &[Uuid],
    store: &[i32],
    opened: &[DateTime<Utc>],
    resolved: &[Option<DateTime<Utc>>],
    inactive: &[i32],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO incident_events (id, kind, incident, store, opened_at, resolved_at, inactive_polls)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::integer[], $5::timestamptz[],
                              $6::timestamptz[], $7::integer[])",
    )
    .bind(id)
    .bind(kind)
    .bind(incident)
    .bind(store)
    .bind(opened)
    .bind(resolved)
    .bind(inactive)
    .execute(db)
    .await
    .map(drop)
}

/// Tells every process that events were written (delivered at commit).
async fn announce(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(db)
        .await
        .map(drop)
}

/// An incident as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct IncidentRecord {
    pub id: Uuid,
    pub store_id: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub inactive_polls: i32,
}

/// Which incidents a list shows; `None` fields keep every incident.
#[derive(Clone, Debug, Default)]
pub struct IncidentFilter {
    /// Only open ones (`true`) or only resolved ones (`false`).
    pub open: Option<bool>,
    pub store_ids: Option<Vec<String>>,
    /// Only those going on at or after this instant (open, or resolved after it).
    pub since: Option<DateTime<Utc>>,
}

/// An order of incidents, each by a key a cursor carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentOrder {
    /// Newest opening first.
    Newest,
    /// Open ones first, down longest first; then resolved ones, longest first.
    Worst,
}

/// A list's item: the incident and its key in the list's order.
#[derive(Clone, Debug, FromRow)]
pub struct RankedIncident {
    #[sqlx(flatten)]
    pub incident: IncidentRecord,
    pub rank: i64,
}

/// Up to `limit` incidents passing `filter` in `order`, after the one with key `after`.
pub(crate) async fn list(
    db: impl PgExecutor<'_>,
    filter: &IncidentFilter,
    order: IncidentOrder,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<RankedIncident>> {
    let statement = match order {
        IncidentOrder::Newest => LIST_NEWEST,
        IncidentOrder::Worst => LIST_WORST,
    };
    sqlx::query_as(statement)
        .bind(filter.open)
        .bind(filter.store_ids.as_deref())
        .bind(filter.since)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(db)
        .await
}

const LIST_NEWEST: &str = "SELECT * FROM (
        SELECT i.id, s.store_id, i.opened_at, i.resolved_at, i.inactive_polls,
               (extract(epoch FROM i.opened_at) * 1000000)::bigint AS rank
        FROM incidents i JOIN stores s ON s.id = i.store
        WHERE ($1::boolean IS NULL OR (i.resolved_at IS NULL) = $1)
          AND ($2::text[] IS NULL OR s.store_id = ANY($2))
          AND ($3::timestamptz IS NULL OR i.resolved_at IS NULL OR i.resolved_at > $3)
    ) i
    WHERE $4::bigint IS NULL OR (rank, id) < ($4, $5::uuid)
    ORDER BY rank DESC, id DESC LIMIT $6";

// Open incidents rank above every resolved one (4e18 less their opening, in microseconds),
// resolved ones by how long they lasted.
const LIST_WORST: &str = "SELECT * FROM (
        SELECT i.id, s.store_id, i.opened_at, i.resolved_at, i.inactive_polls,
               (CASE WHEN i.resolved_at IS NULL
                     THEN 4000000000000000000 - extract(epoch FROM i.opened_at) * 1000000
                     ELSE (extract(epoch FROM i.resolved_at) - extract(epoch FROM i.opened_at)) * 1000000
                END)::bigint AS rank
        FROM incidents i JOIN stores s ON s.id = i.store
        WHERE ($1::boolean IS NULL OR (i.resolved_at IS NULL) = $1)
          AND ($2::text[] IS NULL OR s.store_id = ANY($2))
          AND ($3::timestamptz IS NULL OR i.resolved_at IS NULL OR i.resolved_at > $3)
    ) i
    WHERE $4::bigint IS NULL OR (rank, id) < ($4, $5::uuid)
    ORDER BY rank DESC, id DESC LIMIT $6";

/// How many incidents pass `filter`.
pub(crate) async fn count(db: impl PgExecutor<'_>, filter: &IncidentFilter) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM incidents i JOIN stores s ON s.id = i.store
         WHERE ($1::boolean IS NULL OR (i.resolved_at IS NULL) = $1)
           AND ($2::text[] IS NULL OR s.store_id = ANY($2))
           AND ($3::timestamptz IS NULL OR i.resolved_at IS NULL OR i.resolved_at > $3)",
    )
    .bind(filter.open)
    .bind(filter.store_ids.as_deref())
    .bind(filter.since)
    .fetch_one(db)
    .await
}

/// The incident `id`, if it is stored.
pub(crate) async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<IncidentRecord>> {
    sqlx::query_as(
        "SELECT i.id, s.store_id, i.opened_at, i.resolved_at, i.inactive_polls
         FROM incidents i JOIN stores s ON s.id = i.store WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// What an event tells of its incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Opened,
    Resolved,
    /// Late polls showed the store was not down: the incident is gone.
    Withdrawn,
}

/// An event of the outbox: what changed, and the incident as it was then.
#[derive(Clone, Debug)]
pub struct IncidentEvent {
    pub seq: i64,
    pub id: Uuid,
    pub kind: EventKind,
    pub created_at: DateTime<Utc>,
    pub incident: IncidentRecord,
}

#[derive(FromRow)]
struct EventRow {
    seq: i64,
    event: Uuid,
    kind: String,
    created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    incident: IncidentRecord,
}

/// Up to `limit` events after `seq`, in order.
pub(crate) async fn events_after(
    db: impl PgExecutor<'_>,
    seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<IncidentEvent>> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT e.seq, e.id AS event, e.kind, e.created_at, e.incident AS id, s.store_id, e.opened_at,
                e.resolved_at, e.inactive_polls
         FROM incident_events e JOIN stores s ON s.id = e.store
         WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(EventRow::into_event).collect())
}

impl EventRow {
    fn into_event(self) -> IncidentEvent {
        IncidentEvent {
            seq: self.seq,
            id: self.event,
            kind: match self.kind.as_str() {
                "opened" => EventKind::Opened,
                "resolved" => EventKind::Resolved,
                _ => EventKind::Withdrawn,
            },
            created_at: self.created_at,
            incident: self.incident,
        }
    }
}

/// The event `id`, if it is stored.
pub(crate) async fn event(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<IncidentEvent>> {
    let row: Option<EventRow> = sqlx::query_as(
        "SELECT e.seq, e.id AS event, e.kind, e.created_at, e.incident AS id, s.store_id, e.opened_at,
                e.resolved_at, e.inactive_polls
         FROM incident_events e JOIN stores s ON s.id = e.store WHERE e.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(EventRow::into_event))
}

/// Deletes the events written before `before` (a delivery still queued for one finds it
/// gone and is skipped). The newest is kept: its `seq` is where readers start.
pub(crate) async fn prune_events(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM incident_events WHERE created_at < $1
           AND seq < (SELECT max(seq) FROM incident_events)",
    )
    .bind(before)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// The newest event's `seq` (0: none yet).
pub(crate) async fn last_event(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM incident_events")
        .fetch_one(db)
        .await
}
