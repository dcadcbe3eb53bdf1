//! The read path of a report: one repeatable-read snapshot whose polls stream, store by
//! store and in time order, into the engine.
//!
//! Polls leave PostgreSQL through binary `COPY` in the primary key's order (an index-only
//! scan), so only one store's polls are in memory at a time; the hours and zones (a few
//! hundred thousand rows at most) are read whole first. The stores are cut into one range
//! per core, each read on its own connection that shares the snapshot
//! (`pg_export_snapshot`), so that PostgreSQL and the engine both use every core.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use futures::TryStreamExt;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::copy::CopyReader;
use super::loads;
use crate::domain::{Engine, HoursRow, Interpolation, LocalTime, Poll, Timestamp, Weekday, Zone};
use crate::ingest::dataset::StoreReport;

/// A consistent view of the data at one instant, ready to compute a report from.
pub struct Snapshot {
    pool: PgPool,
    tx: Transaction<'static, Postgres>,
    /// Lets other connections see exactly what `tx` sees.
    exported: String,
    /// The report's *now*: `asOf`, or the newest poll (`None`: no polls at all).
    pub now: Option<Timestamp>,
    /// The data version the view shows (see [`loads::data_version`]).
    pub data_version: i64,
    /// How many stores the report will have a row for.
    pub stores_total: u64,
}

/// What every part of a report reads besides its polls.
struct Shared {
    ids: HashMap<i32, String>,
    hours: HashMap<i32, Vec<HoursRow>>,
    zones: HashMap<i32, Zone>,
}

impl Snapshot {
    /// Opens the view; `as_of` fixes *now* (default: the newest poll).
    pub async fn open(pool: &PgPool, as_of: Option<Timestamp>) -> anyhow::Result<Snapshot> {
        let mut tx = pool
            .begin()
            .await
            .context("cannot start the report transaction")?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let exported: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await?;
        let data_version = loads::data_version(&mut tx).await?;
        let now = loads::report_now(&mut tx, as_of).await?;
        let stores_total = match now.and_then(Timestamp::to_datetime) {
            Some(now) => {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM stores WHERE first_poll <= $1")
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                n as u64
            }
            None => 0,
        };
        Ok(Snapshot {
            pool: pool.clone(),
            tx,
            exported,
            now,
            data_version,
            stores_total,
        })
    }

    /// Computes every store's row, in byte order of store ids, counting finished stores
    /// in `done` as it goes.
    pub async fn report(
        mut self,
        interpolation: Interpolation,
        done: Arc<AtomicU64>,
    ) -> anyhow::Result<Vec<StoreReport>> {
        let Some(now) = self.now else {
            return Ok(Vec::new());
        };
        let shared = Arc::new(Shared {
            ids: store_ids(&mut self.tx).await?,
            hours: business_hours(&mut self.tx).await?,
            zones: zones(&mut self.tx).await?,
        });
        let parts = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let bounds = store_ranges(shared.ids.keys().copied().collect(), parts);
        let mut readers = Vec::new();
        for (start, end) in bounds {
            let (pool, exported, shared, done) = (
                self.pool.clone(),
                self.exported.clone(),
                shared.clone(),
                done.clone(),
            );
            readers.push(tokio::spawn(async move {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                // The snapshot id comes from PostgreSQL itself, not from any input.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET TRANSACTION SNAPSHOT '{exported}'"
                )))
                .execute(&mut *tx)
                .await?;
                let rows = read_range(&mut tx, &shared, start, end, now, interpolation, &done).await?;
                tx.commit().await?;
                anyhow::Ok(rows)
            }));
        }
        let mut rows = Vec::with_capacity(self.stores_total as usize);
        for reader in readers {
            rows.extend(reader.await.context("a report reader stopped")??);
        }
        self.tx.commit().await?;
        rows.sort_unstable_by(|a, b| a.store_id.as_bytes().cmp(b.store_id.as_bytes()));
        Ok(rows)
    }
}

/// The report rows of the stores with keys in `[start, end)`.
async fn read_range(
    conn: &mut PgConnection,
    shared: &Shared,
    start: i32,
    end: Option<i32>,
    now: Timestamp,
    interpolation: Interpolation,
    done: &AtomicU64,
) -> anyhow::Result<Vec<StoreReport>> {
    let mut engine = Engine::new(now, interpolation);
    let mut rows = Vec::new();
    let mut current: Option<i32> = None;
    let mut polls: Vec<Poll> = Vec::new();
    let mut flush = |store: i32, polls: &mut Vec<Poll>, rows: &mut Vec<StoreReport>| {
        let hours = shared.hours.get(&store).map_or(&[][..], Vec::as_slice);
        let zone = shared.zones.get(&store).copied().unwrap_or_default();
        // Polls after `now` are ignored by the engine itself.
        if let Some(uptime) = engine.store(polls, hours, zone) {
            rows.push(StoreReport {
                store_id: shared.ids.get(&store).cloned().unwrap_or_default(),
                uptime,
            });
            done.fetch_add(1, Ordering::Relaxed);
        }
        polls.clear();
    };
    // COPY takes no parameters; the bounds are integers, not input.
    let statement = match end {
        Some(end) => format!(
            "COPY (SELECT store, at, active FROM polls WHERE store >= {start} AND store < {end} ORDER BY store, at) TO STDOUT (FORMAT binary)"
        ),
        None => format!(
            "COPY (SELECT store, at, active FROM polls WHERE store >= {start} ORDER BY store, at) TO STDOUT (FORMAT binary)"
        ),
    };
    let mut reader = CopyReader::new();
    let mut stream = conn.copy_out_raw(&statement).await?;
    while let Some(chunk) = stream.try_next().await? {
        reader.feed(&chunk, &[4, 8, 1], |row| {
            let store = row.int4(0);
            if current != Some(store) {
                if let Some(previous) = current {
                    flush(previous, &mut polls, &mut rows);
                }
                current = Some(store);
            }
            polls.push(Poll {
                at: row.timestamptz(1),
                active: row.bool(2),
            });
        })?;
    }
    reader.finish()?;
    drop(stream);
    if let Some(last) = current {
        flush(last, &mut polls, &mut rows);
    }
    Ok(rows)
}

/// Cuts the polled stores' keys into up to `parts` ranges of about as many stores each.
fn store_ranges(mut keys: Vec<i32>, parts: usize) -> Vec<(i32, Option<i32>)> {
    keys.sort_unstable();
    let mut cuts: Vec<i32> = (1..parts)
        .filter_map(|k| keys.get(keys.len() * k / parts).copied())
        .collect();
    cuts.dedup();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut start = i32::MIN;
    for cut in cuts {
        ranges.push((start, Some(cut)));
        start = cut;
    }
    ranges.push((start, None));
    ranges
}

async fn store_ids(tx: &mut Transaction<'static, Postgres>) -> sqlx::Result<HashMap<i32, String>> {
    let rows: Vec<(i32, String)> =
        sqlx::query_as("SELECT id, store_id FROM stores WHERE first_poll IS NOT NULL")
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().collect())
}

async fn business_hours(
    tx: &mut Transaction<'static, Postgres>,
) -> anyhow::Result<HashMap<i32, Vec<HoursRow>>> {
    let rows: Vec<(i32, i16, i64, i64)> = sqlx::query_as(
        // date_part's double holds every microsecond of a day exactly, and is much faster
        // than extract's numeric.
        "SELECT store, day,
                (date_part('epoch', start_local) * 1000000)::bigint,
                (date_part('epoch', end_local) * 1000000)::bigint
         FROM business_hours",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut by_store: HashMap<i32, Vec<HoursRow>> = HashMap::new();
    for (store, day, start, end) in rows {
        let row = (|| {
            Some(HoursRow {
                day: Weekday::new(u8::try_from(day).ok()?)?,
                start: LocalTime::from_micros(start)?,
                end: LocalTime::from_micros(end)?,
            })
        })()
        .with_context(|| format!("business_hours holds an impossible row for store {store}"))?;
        by_store.entry(store).or_default().push(row);
    }
    Ok(by_store)
}

async fn zones(tx: &mut Transaction<'static, Postgres>) -> sqlx::Result<HashMap<i32, Zone>> {
    let rows: Vec<(i32, String)> = sqlx::query_as("SELECT store, zone FROM timezones")
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(store, name)| match name.parse::<Zone>() {
            Ok(zone) => Some((store, zone)),
            Err(e) => {
                tracing::warn!(store, "{e}; the store is read as America/Chicago");
                None
            }
        })
        .collect())
}
