//! Incidents, evaluated in the transaction that stores the polls (a push, a reload, a
//! removal), by the rules of `domain::incident`, one evaluation at a time (an advisory lock
//! held to the commit): `super::health` keeps where each store stands, so that polls in
//! time order step on from it; a store whose new polls are not all later than those
//! evaluated is evaluated afresh from a day of its stored polls back (or more, or all),
//! which the evaluator then keeps (those within business hours: `domain::known_polls`)
//! while no other evaluation intervenes.
//! What changed goes into the `incident_events` outbox in the same transaction, and one
//! `NOTIFY` tells every process to read it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::health::{self, Standing};
use crate::domain::incident::{self, Edit, Health, Incident, Notice, Rules};
use crate::domain::known_polls::KnownPolls;
use crate::domain::time::MICROS_PER_HOUR as HOUR;
use crate::domain::zone::Clocks;
use crate::domain::{HoursRow, Poll, Timestamp, Zone};

/// The lock evaluations take, to the commit: one store's polls are evaluated by one
/// transaction at a time, which sees every poll those before it stored, and the outbox's
/// `seq` follows commit order.
const INCIDENT_LOCK: i64 = 0x0057_01e0_1c1d;

/// Where `incident_events` are announced (the newest `seq`, as text).
pub(crate) const CHANNEL: &str = "incident_events";

/// How far back from a late poll a store's polls are read, in turn, until they hold a fresh
/// start (`incident::fresh_start`); a store with none in the last is read from its first
/// poll. Most stores are up, and their last active poll within business hours is a fresh
/// start: a day back finds one for nearly all (three hours did for few: nights are closed),
/// where a week cost concurrent pushes that committed out of time order 0.4 s a push.
const LOOK_BACKS_MICROS: [i64; 2] = [24 * HOUR, 8 * 24 * HOUR];

/// How long after it an incident still makes news (see `incident::notices`), counted back
/// from the store's newest poll.
const NEWS_MICROS: i64 = 24 * HOUR;

/// What evaluates incidents: the rules, and the business hours and zones of every store,
/// kept from one evaluation to the next until a load changes them, and the polls of the
/// stores it evaluated afresh, kept until another evaluation intervenes.
#[derive(Clone, Default)]
pub struct Evaluator {
    rules: Rules,
    hours: HoursCache,
    known: Remembered,
}

impl Evaluator {
    pub fn new(rules: Rules) -> Self {
        Evaluator {
            rules,
            hours: HoursCache::default(),
            known: Remembered::default(),
        }
    }
}

/// The polls an evaluator knows, and the mark its last evaluation left: they hold while the
/// next evaluation finds that mark, no new pruning (see `leave_mark`) and the same hours.
#[derive(Clone, Default)]
struct Remembered(Arc<Mutex<Option<(Mark, KnownPolls)>>>);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Mark {
    evaluation: Uuid,
    prunings: i64,
    hours: i64,
}

impl Remembered {
    /// Leaves this evaluation's mark (under the evaluations' lock) and takes what is known,
    /// if it still holds: nothing, else. Put it back with [`Remembered::keep`] once the
    /// evaluation is done; an evaluation that fails leaves nothing known.
    async fn take(&self, conn: &mut PgConnection, hours: &StoreHours) -> sqlx::Result<(Mark, KnownPolls)> {
        let evaluation = Uuid::new_v4();
        let (left, prunings) = leave_mark(&mut *conn, evaluation).await?;
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let before = Mark {
            evaluation: left,
            prunings,
            hours: hours.version,
        };
        let known = match kept {
            Some((mark, known)) if mark == before => known,
            _ => KnownPolls::default(),
        };
        let mark = Mark { evaluation, ..before };
        Ok((mark, known))
    }

    fn keep(&self, mark: Mark, known: KnownPolls) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((mark, known));
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

/// What an evaluation changed, and what it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evaluated {
    pub opened: usize,
    pub resolved: usize,
    /// Events written to the outbox.
    pub told: usize,
    /// Stored polls read from the database to evaluate stores afresh.
    pub polls_read: u64,
    /// Stored polls the evaluator knew already, not read again.
    pub polls_recalled: u64,
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
    let started = std::time::Instant::now();
    lock(&mut *conn).await?;
    let locked = started.elapsed();
    let hours = evaluator.hours.get(&mut *conn).await?;
    let (mark, mut known) = evaluator.known.take(&mut *conn, &hours).await?;
    let mut clocks = clocks_over(touched.iter().map(|t| t.polls));
    let mut inside: Vec<(i32, Vec<Poll>)> = Vec::with_capacity(touched.len());
    for t in touched {
        let (rows, zone) = hours.of(t.store);
        let polls = incident::within_hours(t.polls, rows, clocks.of(zone));
        if !polls.is_empty() {
            known.stored(t.store, &polls);
            inside.push((t.store, polls));
        }
    }
    if inside.is_empty() {
        evaluator.known.keep(mark, known);
        return Ok(Evaluated::default());
    }
    let stores: Vec<i32> = inside.iter().map(|(s, _)| *s).collect();
    let health = health::read(&mut *conn, &stores).await?;
    let open: HashMap<i32, IncidentRow> = open_incidents(&mut *conn, &stores)
        .await?
        .into_iter()
        .map(|i| (i.store, i))
        .collect();
    let read = started.elapsed();

    let mut afresh = Vec::new();
    let mut writes = Writes::new(health);
    for (store, polls) in &inside {
        let row = writes.health.get(store).copied().unwrap_or_default();
        let in_order = !row.from_history && row.last_poll.is_none_or(|l| polls[0].at > l);
        if !in_order {
            afresh.push((*store, polls[0].at, row.from_history));
            continue;
        }
        let open = open.get(store);
        let mut state = Health {
            run: row.run,
            open: open.map(IncidentRow::incident),
        };
        let edits = incident::advance(&mut state, open.map(|o| o.id), polls, rules);
        writes.store(*store, &state, polls[polls.len() - 1].at, edits);
    }
    if !afresh.is_empty() {
        evaluate_afresh(&mut *conn, &hours, &afresh, rules, &mut writes, &mut known).await?;
    }
    let judged = started.elapsed();
    let evaluated = writes.apply(&mut *conn).await?;
    known.bound(&stores);
    tracing::debug!(
        stores = inside.len(),
        afresh = afresh.len(),
        polls_read = evaluated.polls_read,
        polls_recalled = evaluated.polls_recalled,
        known = known.len(),
        lock_us = locked.as_micros() as u64,
        read_us = (read - locked).as_micros() as u64,
        judge_us = (judged - read).as_micros() as u64,
        write_us = (started.elapsed() - judged).as_micros() as u64,
        "evaluated"
    );
    evaluator.known.keep(mark, known);
    Ok(evaluated)
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
    let (mark, mut known) = evaluator.known.take(&mut *conn, &hours).await?;
    for store in &stores {
        known.forget(*store);
    }
    let cut = Timestamp::from_datetime(from);
    let mut writes = Writes::new(health::read(&mut *conn, &stores).await?);
    let afresh: Vec<(i32, Timestamp, bool)> = stores.into_iter().map(|s| (s, cut, false)).collect();
    evaluate_afresh(
        &mut *conn,
        &hours,
        &afresh,
        evaluator.rules,
        &mut writes,
        &mut known,
    )
    .await?;
    let evaluated = writes.apply(&mut *conn).await?;
    evaluator.known.keep(mark, known);
    Ok(evaluated)
}

/// Evaluates the stores `afresh` (store, first changed poll within hours, whether to read
/// all its polls) from their stored polls: as far back as [`LOOK_BACKS_MICROS`] says in
/// turn, then all of them, until they hold a fresh start. Each round reads only what the
/// rounds before it did not (the polls older than those), and a look back that reaches a
/// store's first poll reads all of it and is its last: in a shuffled backfill most stores
/// hold no fresh start, and each round read the whole of their history again. Polls `known`
/// are not read again; those read join them.
async fn evaluate_afresh(
    conn: &mut PgConnection,
    hours: &StoreHours,
    afresh: &[(i32, Timestamp, bool)],
    rules: Rules,
    writes: &mut Writes,
    known: &mut KnownPolls,
) -> sqlx::Result<()> {
    // A store whose polls are all known begins at its first within hours (or never).
    let mut firsts: HashMap<i32, DateTime<Utc>> = HashMap::with_capacity(afresh.len());
    let mut unknown = Vec::new();
    for &(store, _, _) in afresh {
        match known.all(store) {
            Some(polls) => {
                let first = polls.first().and_then(|p| p.at.to_datetime());
                firsts.insert(store, first.unwrap_or(DateTime::<Utc>::MAX_UTC));
            }
            None => unknown.push(store),
        }
    }
    if !unknown.is_empty() {
        firsts.extend(first_polls(&mut *conn, &unknown).await?);
    }
    // From the `step`th look back; past the last, or before the store's first poll, from
    // its first poll: all of it.
    let first = |store: i32, cut: Timestamp, step: usize| {
        let first_poll = firsts.get(&store).copied().unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        match LOOK_BACKS_MICROS.get(step) {
            Some(back) => {
                let from = Timestamp(cut.0.saturating_sub(*back))
                    .to_datetime()
                    .unwrap_or(first_poll);
                if from <= first_poll {
                    (first_poll, true)
                } else {
                    (from, false)
                }
            }
            None => (first_poll, true),
        }
    };
    let mut round: Vec<Round> = afresh
        .iter()
        .map(|&(store, cut, whole)| Round {
            store,
            cut,
            step: if whole { LOOK_BACKS_MICROS.len() } else { 0 },
            until: None,
            polls: Vec::new(),
            within_hours: false,
        })
        .collect();
    while !round.is_empty() {
        let reads: Vec<(DateTime<Utc>, bool)> = round.iter().map(|r| first(r.store, r.cut, r.step)).collect();
        let (mut stores, mut froms, mut untils) = (Vec::new(), Vec::new(), Vec::new());
        for (r, &(from, _)) in round.iter_mut().zip(&reads) {
            if let Some(polls) = known.from(r.store, Timestamp::from_datetime(from)) {
                writes.counts.polls_recalled += polls.len() as u64;
                r.polls = polls.to_vec();
                r.within_hours = true;
            } else {
                stores.push(r.store);
                froms.push(from);
                // Up to where the round before began; the first reads to the end.
                untils.push(r.until.unwrap_or(DateTime::<Utc>::MAX_UTC));
            }
        }
        let mut older: HashMap<i32, Vec<Poll>> = HashMap::new();
        if !stores.is_empty() {
            probe_each_store(&mut *conn).await?;
            let read = polls_between(&mut *conn, &stores, &froms, &untils).await?;
            super::polls::planner_defaults(&mut *conn).await?;
            writes.counts.polls_read += read.len() as u64;
            for p in read {
                older.entry(p.store).or_default().push(Poll {
                    at: Timestamp::from_datetime(p.at),
                    active: p.active,
                });
            }
        }
        let all: Vec<i32> = round.iter().map(|r| r.store).collect();
        let all_froms: Vec<DateTime<Utc>> = reads.iter().map(|r| r.0).collect();
        let mut stored: HashMap<i32, Vec<(Uuid, Incident)>> = HashMap::new();
        for i in incidents_from(&mut *conn, &all, &all_froms).await? {
            stored.entry(i.store).or_default().push((i.id, i.incident()));
        }
        for r in &mut round {
            if let Some(mut polls) = older.remove(&r.store) {
                polls.append(&mut r.polls);
                r.polls = polls;
            }
        }
        let mut clocks = clocks_over(round.iter().map(|r| r.polls.as_slice()));
        let mut again = Vec::new();
        for (mut r, (from, whole)) in round.into_iter().zip(reads) {
            let inside = if r.within_hours {
                std::mem::take(&mut r.polls)
            } else {
                let (rows, zone) = hours.of(r.store);
                incident::within_hours(&r.polls, rows, clocks.of(zone))
            };
            let stored = stored.remove(&r.store).unwrap_or_default();
            match incident::reevaluate(&inside, r.cut, &stored, whole, rules) {
                Some((state, edits)) => {
                    let last = inside.last().map_or(r.cut, |p| p.at);
                    writes.store(r.store, &state, last, edits);
                    if !r.within_hours {
                        known.learn(r.store, Timestamp::from_datetime(from), whole, inside);
                    }
                }
                None if r.within_hours => {
                    // Known from `from` on, and older polls are not: read them all again.
                    r.step += 1;
                    r.until = None;
                    r.within_hours = false;
                    again.push(r);
                }
                None => {
                    r.step += 1;
                    r.until = Some(from);
                    again.push(r);
                }
            }
        }
        round = again;
    }
    Ok(())
}

/// A store evaluated afresh, between rounds: the polls read so far (from `until` on), all
/// of them, or those within its hours when they were known (and none were read).
struct Round {
    store: i32,
    cut: Timestamp,
    step: usize,
    until: Option<DateTime<Utc>>,
    polls: Vec<Poll>,
    within_hours: bool,
}

/// Clocks covering every poll of these stores (each in time order): one clock a zone for
/// the evaluation, not one a store.
fn clocks_over<'a>(stores: impl Iterator<Item = &'a [Poll]>) -> Clocks {
    let (mut from, mut to) = (i64::MAX, i64::MIN);
    for polls in stores {
        if let (Some(first), Some(last)) = (polls.first(), polls.last()) {
            from = from.min(first.at.micros());
            to = to.max(last.at.micros() + 1);
        }
    }
    if from > to {
        // No polls: the clocks are never read, only made.
        (from, to) = (0, 0);
    }
    Clocks::new(Timestamp(from), Timestamp(to))
}

/// The rows an evaluation writes.
struct Writes {
    /// Where the stores of every bucket read stand, those evaluated updated.
    health: HashMap<i32, Standing>,
    /// The buckets with a store evaluated.
    changed: BTreeSet<i32>,
    withdrawn: Vec<Uuid>,
    incidents: Vec<(Uuid, i32, Incident)>,
    events: Vec<(Uuid, &'static str, Uuid, i32, Incident)>,
    counts: Evaluated,
}

impl Writes {
    fn new(health: HashMap<i32, Standing>) -> Self {
        Writes {
            health,
            changed: BTreeSet::new(),
            withdrawn: Vec::new(),
            incidents: Vec::new(),
            events: Vec::new(),
            counts: Evaluated::default(),
        }
    }

    /// A store's new state and its incidents' edits, and what they tell.
    fn store(&mut self, store: i32, state: &Health, last: Timestamp, edits: Vec<Edit<Uuid>>) {
        let standing = Standing {
            last_poll: Some(last),
            run: state.run,
            from_history: false,
        };
        self.health.insert(store, standing);
        self.changed.insert(health::bucket(store));
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
        health::write(&mut *conn, &self.health, &self.changed).await?;
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

/// Takes the evaluations' turn, to the commit (again, if taken already).
pub(crate) async fn lock(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
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

/// Leaves this evaluation's mark; answers the mark left before it, and how many prunings
/// there have been (a pruning drops polls without an evaluation).
async fn leave_mark(db: impl PgExecutor<'_>, mark: Uuid) -> sqlx::Result<(Uuid, i64)> {
    sqlx::query_as(
        "WITH before AS (SELECT mark FROM incident_evaluation_mark)
         UPDATE incident_evaluation_mark SET mark = $1
         RETURNING (SELECT mark FROM before), (SELECT coalesce(max(id), 0) FROM poll_prunings)",
    )
    .bind(mark)
    .fetch_one(db)
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

/// Each store's polls from its first instant to (before) its second, in time order.
async fn polls_between(
    db: impl PgExecutor<'_>,
    stores: &[i32],
    froms: &[DateTime<Utc>],
    untils: &[DateTime<Utc>],
) -> sqlx::Result<Vec<PollRow>> {
    sqlx::query_as(
        // A probe of the key a store (`probe_each_store`): as a join, the planner merged
        // the stores with every stored poll in key order.
        "SELECT s.store, p.at, p.active
         FROM unnest($1::integer[], $2::timestamptz[], $3::timestamptz[]) AS s (store, since, until)
         CROSS JOIN LATERAL (
             SELECT p.at, p.active FROM polls p
             WHERE p.store = s.store AND p.at >= s.since AND p.at < s.until ORDER BY p.at
         ) p",
    )
    .bind(stores)
    .bind(froms)
    .bind(untils)
    .fetch_all(db)
    .await
}

/// Each store's first poll (stores without polls are left out).
async fn first_polls(db: impl PgExecutor<'_>, stores: &[i32]) -> sqlx::Result<Vec<(i32, DateTime<Utc>)>> {
    sqlx::query_as("SELECT id, first_poll FROM stores WHERE id = ANY($1) AND first_poll IS NOT NULL")
        .bind(stores)
        .fetch_all(db)
        .await
}

/// Makes the planner read [`polls_between`] by one index-only probe a store, for the rest of
/// the transaction (undone with `polls::planner_defaults`). Expecting thousands of polls a store,
/// it chose bitmap scans, sorts and a cache of them, and compiled the plan: 12,000 stores
/// read 3 hours back took 0.76 s as a join, 0.21 s as probes so, 0.07 s as plain ones.
async fn probe_each_store(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_memoize', 'off', true),
                set_config('jit', 'off', true)",
    )
    .execute(db)
    .await
    .map(drop)
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
    /// Only those of the stores of these groups: the caller's scope (`None`: the fleet).
    pub groups: Option<Vec<String>>,
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
        .bind(filter.groups.as_deref())
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
          AND ($7::text[] IS NULL OR i.store IN (SELECT g.store FROM store_groups g WHERE g.group_name = ANY($7)))
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
          AND ($7::text[] IS NULL OR i.store IN (SELECT g.store FROM store_groups g WHERE g.group_name = ANY($7)))
    ) i
    WHERE $4::bigint IS NULL OR (rank, id) < ($4, $5::uuid)
    ORDER BY rank DESC, id DESC LIMIT $6";

/// How many incidents pass `filter`.
pub(crate) async fn count(db: impl PgExecutor<'_>, filter: &IncidentFilter) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM incidents i JOIN stores s ON s.id = i.store
         WHERE ($1::boolean IS NULL OR (i.resolved_at IS NULL) = $1)
           AND ($2::text[] IS NULL OR s.store_id = ANY($2))
           AND ($3::timestamptz IS NULL OR i.resolved_at IS NULL OR i.resolved_at > $3)
           AND ($4::text[] IS NULL OR i.store IN (SELECT g.store FROM store_groups g WHERE g.group_name = ANY($4)))",
    )
    .bind(filter.open)
    .bind(filter.store_ids.as_deref())
    .bind(filter.since)
    .bind(filter.groups.as_deref())
    .fetch_one(db)
    .await
}

/// The incident `id`, if it is stored.
/// Incidents open now, every store's.
pub(crate) async fn open_count(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM incidents WHERE resolved_at IS NULL")
        .fetch_one(db)
        .await
}

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
    /// The store groups of its store when the event was read: who may hear of it.
    pub groups: Vec<String>,
}

impl IncidentEvent {
    /// Whether a caller scoped to `groups` (`None`: the fleet) may hear of it.
    pub fn visible_to(&self, groups: Option<&[String]>) -> bool {
        groups.is_none_or(|scope| self.groups.iter().any(|g| scope.contains(g)))
    }
}

#[derive(FromRow)]
struct EventRow {
    seq: i64,
    event: Uuid,
    kind: String,
    created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    incident: IncidentRecord,
    groups: Vec<String>,
}

/// Up to `limit` events after `seq`, in order.
pub(crate) async fn events_after(
    db: impl PgExecutor<'_>,
    seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<IncidentEvent>> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT e.seq, e.id AS event, e.kind, e.created_at, e.incident AS id, s.store_id, e.opened_at,
                e.resolved_at, e.inactive_polls,
                ARRAY(SELECT g.group_name FROM store_groups g WHERE g.store = e.store) AS groups
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
            groups: self.groups,
        }
    }
}

/// The event `id`, if it is stored.
pub(crate) async fn event(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<IncidentEvent>> {
    let row: Option<EventRow> = sqlx::query_as(
        "SELECT e.seq, e.id AS event, e.kind, e.created_at, e.incident AS id, s.store_id, e.opened_at,
                e.resolved_at, e.inactive_polls,
                ARRAY(SELECT g.group_name FROM store_groups g WHERE g.store = e.store) AS groups
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
