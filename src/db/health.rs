//! Where each store stands for incidents (`store_health`): the newest poll within business
//! hours evaluated and the run of equal statuses it belongs to, so that polls arriving in
//! time order step on from it.
//!
//! Kept in buckets of [`BUCKET_STORES`] stores by id, each bucket one row of fixed-size
//! records, and rewritten whole by the evaluation that touched one of its stores (under the
//! incidents' lock, so read, changed and written by one transaction at a time). A
//! 50,000-poll push touches 13,000 stores: their states took 35 ms to write as 13,000 rows,
//! 23 ms as 110 rows of arrays (PostgreSQL's array input and aggregates), 2 ms as 110 rows of
//! these records, stored plain (compressing them cost more than writing them).

use std::collections::{BTreeSet, HashMap};

use sqlx::{FromRow, PgConnection};

use crate::domain::Timestamp;
use crate::domain::incident::Run;

/// Stores a bucket keeps: `store / BUCKET_STORES` is its number.
const BUCKET_STORES: i32 = 128;

/// One store's record: its id (4 bytes), flags (1), its last poll and its run's start
/// (8 each, microseconds since 1970 UTC) and its run's length (4); big-endian.
const RECORD: usize = 25;

const HAS_LAST: u8 = 1;
const HAS_RUN: u8 = 2;
const RUN_ACTIVE: u8 = 4;
const FROM_HISTORY: u8 = 8;

/// Where a store stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Standing {
    /// The newest poll within business hours evaluated.
    pub last_poll: Option<Timestamp>,
    /// The run that poll belongs to.
    pub run: Option<Run>,
    /// Evaluate it afresh from its first poll: its polls were stored before incidents were
    /// evaluated.
    pub from_history: bool,
}

pub(super) fn bucket(store: i32) -> i32 {
    store.div_euclid(BUCKET_STORES)
}

#[derive(FromRow)]
struct BucketRow {
    states: Vec<u8>,
}

/// Where every store of the buckets of `stores` stands.
pub(super) async fn read(conn: &mut PgConnection, stores: &[i32]) -> sqlx::Result<HashMap<i32, Standing>> {
    let mut buckets: Vec<i32> = stores.iter().map(|&s| bucket(s)).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let rows: Vec<BucketRow> = sqlx::query_as("SELECT states FROM store_health WHERE bucket = ANY($1)")
        .bind(&buckets)
        .fetch_all(conn)
        .await?;
    let mut standings = HashMap::new();
    for row in rows {
        decode(&row.states, &mut standings).map_err(|e| sqlx::Error::Decode(e.into()))?;
    }
    Ok(standings)
}

/// Rewrites the buckets `changed` with every store of `standings` in them.
pub(super) async fn write(
    conn: &mut PgConnection,
    standings: &HashMap<i32, Standing>,
    changed: &BTreeSet<i32>,
) -> sqlx::Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let mut by_bucket: HashMap<i32, Vec<(i32, Standing)>> = HashMap::new();
    for (&store, &standing) in standings {
        if changed.contains(&bucket(store)) {
            by_bucket
                .entry(bucket(store))
                .or_default()
                .push((store, standing));
        }
    }
    let (buckets, states): (Vec<i32>, Vec<Vec<u8>>) = by_bucket
        .into_iter()
        .map(|(b, mut records)| {
            records.sort_unstable_by_key(|r| r.0);
            (b, encode(&records))
        })
        .unzip();
    sqlx::query(
        "INSERT INTO store_health (bucket, states) SELECT * FROM unnest($1::integer[], $2::bytea[])
         ON CONFLICT (bucket) DO UPDATE SET states = excluded.states",
    )
    .bind(&buckets)
    .bind(&states)
    .execute(conn)
    .await
    .map(drop)
}

fn encode(records: &[(i32, Standing)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * RECORD);
    for (store, s) in records {
        let mut flags = 0;
        if s.last_poll.is_some() {
            flags |= HAS_LAST;
        }
        if let Some(run) = s.run {
            flags |= HAS_RUN | if run.active { RUN_ACTIVE } else { 0 };
        }
        if s.from_history {
            flags |= FROM_HISTORY;
        }
        out.extend_from_slice(&store.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&s.last_poll.map_or(0, Timestamp::micros).to_be_bytes());
        out.extend_from_slice(&s.run.map_or(0, |r| r.start.micros()).to_be_bytes());
        out.extend_from_slice(&s.run.map_or(0, |r| r.length).to_be_bytes());
    }
    out
}

fn decode(bytes: &[u8], into: &mut HashMap<i32, Standing>) -> Result<(), String> {
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(format!("a store_health bucket of {} bytes", bytes.len()));
    }
    for r in bytes.chunks_exact(RECORD) {
        let store = i32::from_be_bytes(r[0..4].try_into().expect("4 bytes"));
        let flags = r[4];
        let last = i64::from_be_bytes(r[5..13].try_into().expect("8 bytes"));
        let start = i64::from_be_bytes(r[13..21].try_into().expect("8 bytes"));
        let length = u32::from_be_bytes(r[21..25].try_into().expect("4 bytes"));
        let standing = Standing {
            last_poll: (flags & HAS_LAST != 0).then_some(Timestamp(last)),
            run: (flags & HAS_RUN != 0).then_some(Run {
                start: Timestamp(start),
                active: flags & RUN_ACTIVE != 0,
                length,
            }),
            from_history: flags & FROM_HISTORY != 0,
        };
        into.insert(store, standing);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let records = [
            (1, Standing::default()),
            (
                127,
                Standing {
                    last_poll: Some(Timestamp(1_674_000_000_123_456)),
                    run: Some(Run {
                        start: Timestamp(1_673_990_000_000_000),
                        active: false,
                        length: 3,
                    }),
                    from_history: false,
                },
            ),
            (
                -5,
                Standing {
                    last_poll: None,
                    run: Some(Run {
                        start: Timestamp(-1),
                        active: true,
                        length: u32::MAX,
                    }),
                    from_history: true,
                },
            ),
        ];
        let bytes = encode(&records);
        assert_eq!(bytes.len(), records.len() * RECORD);
        let mut read = HashMap::new();
        decode(&bytes, &mut read).unwrap();
        assert_eq!(read, records.into_iter().collect());
        assert!(decode(&bytes[1..], &mut read).is_err());
    }

    #[test]
    fn the_migration_marks_history_as_this_code_reads_it() {
        // migrations/…_incidents.sql writes `int4send(id) || '\x08' || int8send(0) ||
        // int8send(0) || int4send(0)` for each store loaded before incidents were evaluated.
        let mut bytes = 42_i32.to_be_bytes().to_vec();
        bytes.push(8);
        bytes.extend_from_slice(&[0; 20]);
        let mut read = HashMap::new();
        decode(&bytes, &mut read).unwrap();
        assert_eq!(
            read[&42],
            Standing {
                from_history: true,
                ..Standing::default()
            }
        );
        assert_eq!(bucket(127), 0);
        assert_eq!(bucket(128), 1);
    }
}
