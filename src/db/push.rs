//! Polls pushed to the server (`POST /polls`, `recordPolls`): a batch is stored whole or not
//! at all, in one transaction under the load lock, shared (batches run side by side; a
//! reload, a removal or the tidying of edges waits for them, and they for it), and recorded
//! as a status load without a file, so that the data version, `dataset.loads` and the
//! `dataset` subscription tell everyone, as a reload would.
//!
//! A batch is small next to a file, and the server's answer waits for it: it goes in a few
//! statements, its values bound as arrays, no staging tables. A poll stored already is left
//! as it is (`ON CONFLICT DO NOTHING`). Pushed polls go in unmarked and each store's span
//! in the batch is noted (`polls::note_pushed_spans`): reports read every poll around the
//! spans not tidied yet, and `tidy_edges` marks the edges of runs there within a minute.
//! Marking them here, in the batch's transaction, was a third of its cost.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgExecutor};

use super::idempotency::{self, IdempotencyKey};
use super::incidents::{self, Evaluator, Touched};
use super::loads::{self, LoadRecord};
use super::{Pool, history, polls};
use crate::domain::Timestamp;
use crate::domain::history::weeks_of;
use crate::domain::load::Outcome;
use crate::input::{FileKind, InputData};

/// What storing a batch did.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The batch's load: rows read, inserted (new polls) and rejected.
    pub record: LoadRecord,
    /// The data version after it.
    pub data_version: i64,
    /// The newest poll stored after it.
    pub newest_poll: Option<Timestamp>,
    /// What evaluating its stores' incidents did (nothing, for a replay).
    pub evaluated: incidents::Evaluated,
}

/// What came of a push.
#[derive(Clone, Debug)]
pub enum PushAnswer {
    /// The batch was stored.
    Stored(Pushed),
    /// Its idempotency key came with this very batch before: what that one did.
    Replayed(Pushed),
    /// Its idempotency key came with another batch.
    KeyReused,
}

/// Stores `data`'s polls (a poll already stored for a store and instant stays) and its
/// rejected rows; `source` says who pushed, as the load's `file`. With `key`, a batch sent
/// with it before is not stored again: its answer is read back.
pub async fn push(
    pool: &Pool,
    data: &mut InputData,
    source: &str,
    key: Option<&IdempotencyKey>,
    evaluator: &Evaluator,
) -> sqlx::Result<PushAnswer> {
    let started = Utc::now();
    let mut tx = pool.begin().await?;
    if let Some(key) = key
        && !idempotency::claim(&mut *tx, key).await?
    {
        return replay(&mut tx, key).await;
    }
    let prepared = data.prepare();
    let stores: Vec<_> = prepared.stores().filter(|s| !s.polls.is_empty()).collect();
    let polls: usize = stores.iter().map(|s| s.polls.len()).sum();
    loads::lock_shared(&mut *tx).await?;
    let mut inserted = 0;
    let mut touched = Vec::new();
    let mut earlier = Vec::new();
    if !stores.is_empty() {
        let weeks = weeks_of(stores.iter().flat_map(|s| s.polls.iter().map(|p| p.at)));
        history::add_partitions(&mut *tx, &weeks).await?;
        let ids: Vec<&str> = stores.iter().map(|s| s.id).collect();
        let firsts: Vec<DateTime<Utc>> = stores.iter().map(|s| instant(s.polls[0].at)).collect();
        let keys;
        (keys, earlier) = store_keys(&mut tx, &ids, &firsts).await?;
        let (mut store, mut at, mut active) = (Vec::new(), Vec::new(), Vec::new());
        let (mut span_store, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
        // In key order: a shuffled batch's polls then land in each index page together.
        let mut in_key_order: Vec<(i32, _)> = stores.iter().map(|s| (keys[s.id], s)).collect();
        in_key_order.sort_unstable_by_key(|(key, _)| *key);
        for (key, s) in in_key_order {
            for p in s.polls {
                store.push(key);
                at.push(instant(p.at));
                active.push(p.active);
            }
            span_store.push(key);
            lo.push(instant(s.polls[0].at));
            hi.push(instant(s.polls[s.polls.len() - 1].at));
        }
        inserted = insert_new_polls(&mut tx, &store, &at, &active).await?;
        if inserted > 0 {
            polls::note_pushed_spans(&mut *tx, &span_store, &lo, &hi).await?;
            touched = stores
                .iter()
                .map(|s| Touched {
                    store: keys[s.id],
                    polls: s.polls,
                })
                .collect();
        }
    }
    let mut record = LoadRecord::failed(FileKind::Status, std::path::Path::new(source), String::new());
    record.error = None;
    record.outcome = Outcome::Loaded;
    record.rows_read = data.counts.status.rows as i64;
    record.rows_rejected = data.counts.status.rejected as i64;
    record.rows_inserted = inserted as i64;
    record.changed = inserted > 0;
    record.newest_poll = prepared.newest_poll().and_then(Timestamp::to_datetime);
    record.started_at = started;
    record.finished_at = Utc::now();
    record.id = loads::insert(&mut *tx, &record).await?;
    loads::insert_rejected(&mut tx, record.id, &data.rejected).await?;
    if record.changed {
        loads::announce_change(&mut *tx).await?;
    }
    let data_version = loads::data_version(&mut *tx).await?;
    let newest_poll = loads::newest_poll(&mut *tx).await?;
    if let Some(key) = key {
        let newest = newest_poll.and_then(Timestamp::to_datetime);
        idempotency::remember(&mut *tx, key, record.id, data_version, newest).await?;
    }
    // Last: evaluations take turns, each to its commit. First polls move back in that turn:
    // a backfill moves most stores' in each batch, and concurrent batches, each holding
    // those rows from its move to its commit, waited on one another's whole transaction
    // (a third of a shuffled backfill's time).
    let evaluating = std::time::Instant::now();
    if !earlier.is_empty() {
        incidents::lock(&mut *tx).await?;
        move_first_polls_back(&mut *tx, &earlier).await?;
    }
    let evaluated = incidents::evaluate(&mut tx, &touched, evaluator).await?;
    let evaluation = evaluating.elapsed();
    crate::failpoint::hit("push-before-commit");
    tx.commit().await?;
    // What the incidents cost a batch (docs/PERFORMANCE.md reads it).
    tracing::debug!(
        polls,
        inserted,
        stores = touched.len(),
        opened = evaluated.opened,
        resolved = evaluated.resolved,
        evaluation_us = evaluation.as_micros() as u64,
        total_us = (Utc::now() - started).num_microseconds().unwrap_or(0),
        "push stored"
    );
    Ok(PushAnswer::Stored(Pushed {
        record,
        data_version,
        newest_poll,
        evaluated,
    }))
}

/// The answer of the batch first sent with `key`, if this one is the same.
async fn replay(conn: &mut PgConnection, key: &IdempotencyKey) -> sqlx::Result<PushAnswer> {
    let Some(first) = idempotency::remembered(&mut *conn, key).await? else {
        return Err(sqlx::Error::RowNotFound);
    };
    if first.fingerprint != key.fingerprint {
        return Ok(PushAnswer::KeyReused);
    }
    let (Some(load), Some(data_version)) = (first.load, first.data_version) else {
        return Err(sqlx::Error::RowNotFound);
    };
    let Some(record) = loads::by_id(&mut *conn, load).await? else {
        return Err(sqlx::Error::RowNotFound);
    };
    Ok(PushAnswer::Replayed(Pushed {
        record,
        data_version,
        newest_poll: first.newest_poll.map(Timestamp::from_datetime),
        evaluated: incidents::Evaluated::default(),
    }))
}

/// A poll's instant as bound; polls are read within years 2000 to 9999, always in range.
fn instant(at: Timestamp) -> DateTime<Utc> {
    at.to_datetime().unwrap_or_default()
}

/// The key of each store, adding the new ones (with their first poll), and the stores whose
/// stored first polls the batch's are earlier than. Stores are stored already but for a new
/// one now and then: one read, and writes only where something changes.
async fn store_keys<'a>(
    conn: &mut PgConnection,
    ids: &[&'a str],
    firsts: &[DateTime<Utc>],
) -> sqlx::Result<(HashMap<String, i32>, Vec<(&'a str, DateTime<Utc>)>)> {
    let mut keys = HashMap::with_capacity(ids.len());
    let mut stored_first = HashMap::with_capacity(ids.len());
    for row in stored_stores(&mut *conn, ids).await? {
        stored_first.insert(row.store_id.clone(), row.first_poll);
        keys.insert(row.store_id, row.id);
    }
    let (mut new, mut earlier) = (Vec::new(), Vec::new());
    for (&id, &first) in ids.iter().zip(firsts) {
        match stored_first.get(id) {
            None => new.push((id, first)),
            Some(stored) if stored.is_none_or(|s| first < s) => earlier.push((id, first)),
            Some(_) => {}
        }
    }
    if !new.is_empty() {
        keys.extend(insert_stores(&mut *conn, &new).await?);
        // A store another batch added meanwhile: read once that batch committed.
        let raced: Vec<(&str, DateTime<Utc>)> = new
            .into_iter()
            .filter(|(id, _)| !keys.contains_key(*id))
            .collect();
        if !raced.is_empty() {
            let ids: Vec<&str> = raced.iter().map(|r| r.0).collect();
            keys.extend(
                stored_stores(&mut *conn, &ids)
                    .await?
                    .into_iter()
                    .map(|r| (r.store_id, r.id)),
            );
            earlier.extend(raced);
        }
    }
    Ok((keys, earlier))
}

#[derive(sqlx::FromRow)]
struct StoreRow {
    id: i32,
    store_id: String,
    first_poll: Option<DateTime<Utc>>,
}

async fn stored_stores(db: impl PgExecutor<'_>, ids: &[&str]) -> sqlx::Result<Vec<StoreRow>> {
    sqlx::query_as("SELECT id, store_id, first_poll FROM stores WHERE store_id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// Adds the stores `new` (id, first poll); returns the keys of those it added (not of one
/// another batch added first).
async fn insert_stores(
    db: impl PgExecutor<'_>,
    new: &[(&str, DateTime<Utc>)],
) -> sqlx::Result<Vec<(String, i32)>> {
    let (ids, firsts): (Vec<&str>, Vec<DateTime<Utc>>) = new.iter().copied().unzip();
    sqlx::query_as(
        "INSERT INTO stores (store_id, first_poll)
         SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS i (store_id, first_poll)
         ORDER BY store_id COLLATE \"C\"
         ON CONFLICT (store_id) DO NOTHING RETURNING store_id, id",
    )
    .bind(ids)
    .bind(firsts)
    .fetch_all(db)
    .await
}

/// Records the stores' first polls (id, first poll) where they are earlier than the stored.
async fn move_first_polls_back(
    db: impl PgExecutor<'_>,
    earlier: &[(&str, DateTime<Utc>)],
) -> sqlx::Result<()> {
    let (ids, firsts): (Vec<&str>, Vec<DateTime<Utc>>) = earlier.iter().copied().unzip();
    sqlx::query(
        "UPDATE stores s SET first_poll = i.first_poll
         FROM unnest($1::text[], $2::timestamptz[]) AS i (store_id, first_poll)
         WHERE s.store_id = i.store_id AND (s.first_poll IS NULL OR i.first_poll < s.first_poll)",
    )
    .bind(ids)
    .bind(firsts)
    .execute(db)
    .await
    .map(drop)
}

/// Batches from this many polls try a plain `INSERT` first (see [`insert_new_polls`]).
const PLAIN_INSERT_FROM: usize = 1_000;

/// Inserts the polls not stored yet, unmarked until tidied; returns how many. A batch is
/// mostly new polls, and looking for a conflict on each costs a third of the insert: a
/// large one goes in plainly first, and again with `ON CONFLICT DO NOTHING` only if one of
/// its polls was stored already.
async fn insert_new_polls(
    conn: &mut PgConnection,
    store: &[i32],
    at: &[DateTime<Utc>],
    active: &[bool],
) -> sqlx::Result<u64> {
    if store.len() >= PLAIN_INSERT_FROM {
        let mut attempt = conn.begin().await?;
        match insert_all_polls(&mut *attempt, store, at, active).await {
            Ok(inserted) => {
                attempt.commit().await?;
                return Ok(inserted);
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => attempt.rollback().await?,
            Err(e) => return Err(e),
        }
    }
    insert_polls(&mut *conn, store, at, active).await
}

/// Inserts every poll, unmarked; a poll stored already fails it (`unique_violation`).
async fn insert_all_polls(
    db: impl PgExecutor<'_>,
    store: &[i32],
    at: &[DateTime<Utc>],
    active: &[bool],
) -> sqlx::Result<u64> {
    sqlx::query(
        "INSERT INTO polls (store, at, active, edge)
         SELECT store, at, active, false FROM unnest($1::integer[], $2::timestamptz[], $3::boolean[]) AS p (store, at, active)",
    )
    .bind(store)
    .bind(at)
    .bind(active)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Inserts the polls not stored yet, unmarked until tidied; returns how many.
async fn insert_polls(
    db: impl PgExecutor<'_>,
    store: &[i32],
    at: &[DateTime<Utc>],
    active: &[bool],
) -> sqlx::Result<u64> {
    sqlx::query(
        "INSERT INTO polls (store, at, active, edge)
         SELECT store, at, active, false FROM unnest($1::integer[], $2::timestamptz[], $3::boolean[]) AS p (store, at, active)
         ON CONFLICT DO NOTHING",
    )
    .bind(store)
    .bind(at)
    .bind(active)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}
