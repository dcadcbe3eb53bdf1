//! Loading the input files into PostgreSQL: validated in Rust, moved with binary `COPY`.
//!
//! A reload is one transaction under an advisory lock: it checks each file's checksum
//! against the last successful load of its kind, skips unchanged files, adds new polls
//! (existing ones win), and replaces the business-hours and time-zone snapshots when they
//! differ. A file that cannot be read at all (missing column, unreadable) changes nothing
//! and is recorded as a failed load; the other files still load.
//!
//! Reading, checksumming, parsing and sorting run on blocking threads: a reload must not
//! stall the requests the same runtime serves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sqlx::{Connection, PgConnection};

use super::copy::CopyWriter;
use super::incidents::{self, Evaluator, Touched};
use super::loads::{self, LoadRecord};
use super::replace::{Replaced, ReplacedTable};
use super::{Pool, polls, stores};
use crate::domain::Timestamp;
use crate::domain::incident::Rules;
use crate::domain::load::Outcome;
use crate::input::checksum::{Prefix, checksum};
use crate::input::data::{PollTimes, Prepared};
use crate::input::{DataFiles, FileKind, FoundFiles, InputData, InputError, Rejected};

/// How many rejected rows of a load are kept in its summary (all are stored).
pub const SUMMARY_REJECTED: usize = 10;

/// What a reload did with one file: its record in `data_loads`, and more.
#[derive(Clone, Debug)]
pub struct FileLoad {
    pub record: LoadRecord,
    /// The first rejected rows.
    pub rejected: Vec<Rejected>,
    pub elapsed: Duration,
}

/// What a reload did.
#[derive(Clone, Debug, Default)]
pub struct Reload {
    pub files: Vec<FileLoad>,
}

impl Reload {
    pub fn changed(&self) -> bool {
        self.files.iter().any(|f| f.record.changed)
    }
}

/// What a reload accepts: how much it may take away, and how far in the future a poll may be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guard {
    /// The share of the stores with business hours (or a time zone) that a new file may
    /// leave without any; a file that would drop more is refused, as a half-copied file
    /// would. `None`: any (what `--force` asks for).
    pub max_loss: Option<f64>,
    /// How far after the server's clock a poll may be; later ones are rejected rows.
    pub max_clock_skew: std::time::Duration,
    /// When a store is down, for the incidents its new polls open or resolve.
    pub incident_rules: Rules,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::DEFAULT
    }
}

impl Guard {
    /// A fifth of the stores may lose their rows; polls up to an hour ahead of the clock.
    pub const DEFAULT: Guard = Guard {
        max_loss: Some(0.2),
        max_clock_skew: std::time::Duration::from_secs(3600),
        incident_rules: Rules::DEFAULT,
    };

    /// Any loss goes: the operator says the new files are right.
    pub const FORCE: Guard = Guard::DEFAULT.forced();

    /// This guard, but accepting any loss (`--force`).
    pub const fn forced(self) -> Guard {
        Guard {
            max_loss: None,
            ..self
        }
    }
}

/// Loads the files into the database (see the module docs), refusing snapshots that
/// would drop more than a fifth of their stores (the default [`Guard`]).
pub async fn reload(pool: &Pool, files: &DataFiles) -> anyhow::Result<Reload> {
    reload_with(pool, &files.found(), Guard::default()).await
}

/// What an unfinished reload's loads say: recorded before the reload starts and deleted
/// in the transaction that commits it, so that a reload the database's (or the
/// process's) death cut short is still in `dataset.loads`.
const UNFINISHED: &str =
    "the reload did not finish: it was interrupted (the database or the process stopped) or is still running";

/// [`reload`] with the given guard, each file found (or not) on its own: a file that
/// could not be found is recorded as its kind's failed load.
#[tracing::instrument(name = "data reload", skip_all)]
pub async fn reload_with(pool: &Pool, files: &FoundFiles, guard: Guard) -> anyhow::Result<Reload> {
    let mut unfinished = Vec::new();
    for kind in FileKind::ALL {
        if let Ok(Some(path)) = &files[kind] {
            let mut record = LoadRecord::failed(kind, path, UNFINISHED.to_string());
            record.id = loads::insert(pool, &record)
                .await
                .context("cannot record the reload")?;
            unfinished.push(record.id);
        }
    }
    let mut tx = pool.begin().await.context("cannot start the load transaction")?;
    loads::lock(&mut *tx).await.context("cannot take the load lock")?;
    loads::delete(&mut *tx, &unfinished).await?;
    let mut reload = Reload::default();
    let mut new_polls = None;
    for kind in FileKind::ALL {
        let path = match &files[kind] {
            Ok(Some(path)) => path,
            Ok(None) => continue,
            Err(missing) => {
                let record = LoadRecord::failed(kind, &missing.file, missing.error.clone());
                tracing::warn!(kind = kind.flag(), error = missing.error, "data load: no file");
                reload
                    .files
                    .push(finish(&mut tx, record, Vec::new(), Instant::now()).await?);
                continue;
            }
        };
        let load = load_file(&mut tx, kind, path, guard, &mut new_polls).await?;
        let r = &load.record;
        tracing::info!(
            kind = kind.flag(),
            file = %path.display(),
            outcome = r.outcome.name(),
            read_from = r.read_from,
            rows_read = r.rows_read,
            rows_inserted = r.rows_inserted,
            rows_rejected = r.rows_rejected,
            changed = r.changed,
            error = r.error.as_deref(),
            elapsed_ms = load.elapsed.as_millis() as u64,
            "data load"
        );
        crate::telemetry::metrics().rows_loaded(kind.flag(), r.rows_inserted as u64, r.rows_rejected as u64);
        if kind == FileKind::Status {
            crate::telemetry::metrics().polls_ingested(
                "file",
                r.rows_inserted as u64,
                r.rows_rejected as u64,
            );
        }
        reload.files.push(load);
    }
    if let Some(new) = &new_polls {
        evaluate_incidents(&mut tx, new, guard.incident_rules).await?;
    }
    if reload.changed() {
        loads::announce_change(&mut *tx).await?;
    }
    crate::failpoint::hit("reload-before-commit");
    tx.commit().await.context("cannot commit the load")?;
    Ok(reload)
}

/// A file read and made ready to store.
struct Parsed {
    data: InputData,
    /// The status file's polls, grouped by store and sorted.
    polls: Option<Prepared>,
}

#[tracing::instrument(name = "data load", skip_all, fields(kind = kind.flag(), file = %path.display()))]
async fn load_file(
    conn: &mut PgConnection,
    kind: FileKind,
    path: &Path,
    guard: Guard,
    new_polls: &mut Option<NewPolls>,
) -> anyhow::Result<FileLoad> {
    let started = Instant::now();
    let mut record = LoadRecord::failed(kind, path, String::new());
    record.error = None;
    let last = loads::last_good_file(&mut *conn, kind).await?;
    let parsed = read(&mut record, kind, path.to_path_buf(), last, guard).await?;
    let mut rejected = Vec::new();
    match parsed {
        Err(error) => record.error = Some(error),
        Ok(None) => {}
        Ok(Some(mut parsed)) => {
            let counts = parsed.data.counts[kind];
            record.rows_read = counts.rows as i64;
            record.rows_rejected = counts.rejected as i64;
            rejected = std::mem::take(&mut parsed.data.rejected);
            let mut savepoint = conn.begin().await?;
            let mut keys = HashMap::new();
            let applied = match (kind, &parsed.polls) {
                (FileKind::Status, Some(polls)) => apply_status(&mut savepoint, polls, &mut keys).await?,
                (FileKind::Hours, _) => apply_hours(&mut savepoint, &parsed.data, guard).await?,
                (FileKind::Timezones, _) => apply_timezones(&mut savepoint, &parsed.data, guard).await?,
                (FileKind::Groups, _) => apply_groups(&mut savepoint, &parsed.data, guard).await?,
                (FileKind::Status, None) => unreachable!("a status file is prepared when read"),
            };
            let applied = match applied {
                Ok(applied) => applied,
                Err(refusal) => {
                    // Nothing of it stays: not even the stores it named.
                    savepoint.rollback().await?;
                    record.error = Some(refusal);
                    return finish(conn, record, rejected, started).await;
                }
            };
            record.rows_inserted = applied.inserted as i64;
            record.changed = applied.changed;
            record.newest_poll = applied.newest_poll.and_then(Timestamp::to_datetime);
            record.outcome = Outcome::Loaded;
            record.finished_at = Utc::now();
            record.id = loads::insert(&mut *savepoint, &record).await?;
            loads::insert_rejected(&mut savepoint, record.id, &rejected).await?;
            savepoint.commit().await?;
            if record.changed
                && let Some(prepared) = parsed.polls.take()
            {
                *new_polls = Some(NewPolls { prepared, keys });
            }
        }
    }
    if record.outcome != Outcome::Loaded {
        return finish(conn, record, rejected, started).await;
    }
    rejected.truncate(SUMMARY_REJECTED);
    Ok(FileLoad {
        record,
        rejected,
        elapsed: started.elapsed(),
    })
}

/// Records a load that did not apply its file (unchanged, unreadable or refused).
async fn finish(
    conn: &mut PgConnection,
    mut record: LoadRecord,
    mut rejected: Vec<Rejected>,
    started: Instant,
) -> anyhow::Result<FileLoad> {
    record.finished_at = Utc::now();
    record.id = loads::insert(&mut *conn, &record).await?;
    rejected.truncate(SUMMARY_REJECTED);
    Ok(FileLoad {
        record,
        rejected,
        elapsed: started.elapsed(),
    })
}

/// Checksums the file and, unless it is unchanged since `last`, parses it: `Ok(None)` for
/// an unchanged file, `Err` with the reason for one that cannot be read. Fills in the
/// record's checksum, size, offset and (when unchanged) outcome.
async fn read(
    record: &mut LoadRecord,
    kind: FileKind,
    path: PathBuf,
    last: Option<loads::GoodFile>,
    guard: Guard,
) -> anyhow::Result<Result<Option<Parsed>, String>> {
    // Only polls accumulate; hours and zones are snapshots, always read whole.
    let prefix = last
        .as_ref()
        .filter(|_| kind == FileKind::Status)
        .and_then(|l| u64::try_from(l.size_bytes).ok());
    let summed = tokio::task::spawn_blocking(move || checksum(&path, prefix).map(|c| (c, path))).await?;
    let (sum, path) = match summed {
        Ok(summed) => summed,
        Err(e) => {
            // The load's error is shown to clients: the reason, not the OS's text.
            tracing::warn!(file = record.file, error = %e, "cannot read an input file");
            return Ok(Err(format!(
                "cannot read the file: {}",
                crate::input::io_reason(&e)
            )));
        }
    };
    record.checksum = Some(sum.checksum.clone());
    record.size_bytes = Some(sum.size as i64);
    let last_checksum = last.map(|l| l.checksum);
    if last_checksum.as_ref() == Some(&sum.checksum) {
        record.outcome = Outcome::Unchanged;
        return Ok(Ok(None));
    }
    // The last loaded file plus rows appended: its polls are stored already.
    let appended = sum.prefix.filter(|p| Some(&p.checksum) == last_checksum.as_ref());
    if let Some(p) = &appended {
        record.read_from = p.len as i64;
    }
    let times = PollTimes::now(guard.max_clock_skew);
    let parsed = tokio::task::spawn_blocking(move || parse(kind, &path, appended, times)).await?;
    Ok(parsed.map(Some).map_err(|e| {
        tracing::warn!(file = record.file, error = %e, "cannot read an input file");
        e.reason()
    }))
}

fn parse(
    kind: FileKind,
    path: &Path,
    appended: Option<Prefix>,
    times: PollTimes,
) -> Result<Parsed, InputError> {
    let mut data = InputData::default();
    data.poll_times = times;
    match kind {
        FileKind::Status => match appended {
            Some(p) => data.load_status_tail(path, p.len, p.lines)?,
            None => data.load_status(path)?,
        },
        FileKind::Hours => data.load_hours(path)?,
        FileKind::Timezones => data.load_timezones(path)?,
        FileKind::Groups => data.load_groups(path)?,
    }
    let polls = (kind == FileKind::Status).then(|| data.prepare());
    Ok(Parsed { data, polls })
}

/// What applying a file did.
struct Applied {
    inserted: u64,
    changed: bool,
    newest_poll: Option<Timestamp>,
}

/// Adds the file's polls; polls already stored for a store and instant stay as they were.
/// Polls only accumulate, so there is nothing a status file could wipe.
async fn apply_status(
    conn: &mut PgConnection,
    prepared: &Prepared,
    keys: &mut HashMap<String, i32>,
) -> anyhow::Result<Result<Applied, String>> {
    let inserted;
    (inserted, *keys) = store_polls(conn, prepared).await?;
    Ok(Ok(Applied {
        inserted,
        changed: inserted > 0,
        newest_poll: prepared.newest_poll(),
    }))
}

/// Adds `prepared`'s stores and polls; returns how many polls were new, and the stores' keys.
async fn store_polls(
    conn: &mut PgConnection,
    prepared: &Prepared,
) -> sqlx::Result<(u64, HashMap<String, i32>)> {
    let keys = stores::upsert(
        &mut *conn,
        prepared.stores().map(|s| (s.id, s.polls.first().map(|p| p.at))),
    )
    .await?;
    let inserted = polls::add(conn, prepared, &keys).await?;
    Ok((inserted, keys))
}

/// A status file's new polls, kept until the reload's other files are applied.
struct NewPolls {
    prepared: Prepared,
    keys: HashMap<String, i32>,
}

/// Evaluates the incidents of the stores with new polls, once the reload has applied its
/// hours and zones too (a first load must not judge polls by no hours at all).
async fn evaluate_incidents(conn: &mut PgConnection, new: &NewPolls, rules: Rules) -> sqlx::Result<()> {
    let touched: Vec<Touched> = new
        .prepared
        .stores()
        .filter(|s| !s.polls.is_empty())
        .map(|s| Touched {
            store: new.keys[s.id],
            polls: s.polls,
        })
        .collect();
    let evaluated = incidents::evaluate(conn, &touched, &Evaluator::new(rules)).await?;
    tracing::info!(
        stores = touched.len(),
        opened = evaluated.opened,
        resolved = evaluated.resolved,
        told = evaluated.told,
        "incidents evaluated"
    );
    Ok(())
}

/// Replaces the business hours when the file's rows differ from the stored ones.
async fn apply_hours(
    conn: &mut PgConnection,
    data: &InputData,
    guard: Guard,
) -> anyhow::Result<Result<Applied, String>> {
    let keys = stores::upsert(&mut *conn, data.hours_rows().map(|(id, _)| (id, None))).await?;
    let mut w = CopyWriter::new();
    for (id, row) in data.hours_rows() {
        w.row(4);
        w.int4(keys[id]);
        w.int2(i16::from(row.day.number()));
        w.time(row.start.micros());
        w.time(row.end.micros());
    }
    let outcome = ReplacedTable::BusinessHours
        .replace(conn, w, guard.max_loss)
        .await?;
    Ok(replaced(outcome, "business hours", guard))
}

/// Replaces the time zones when the file's differ from the stored ones.
async fn apply_timezones(
    conn: &mut PgConnection,
    data: &InputData,
    guard: Guard,
) -> anyhow::Result<Result<Applied, String>> {
    let keys = stores::upsert(&mut *conn, data.zones().map(|(id, _)| (id, None))).await?;
    let mut w = CopyWriter::new();
    for (id, zone) in data.zones() {
        w.row(2);
        w.int4(keys[id]);
        w.text(zone.name());
    }
    let outcome = ReplacedTable::Timezones.replace(conn, w, guard.max_loss).await?;
    Ok(replaced(outcome, "a time zone", guard))
}

/// Replaces the store groups when the file's differ from the stored ones.
async fn apply_groups(
    conn: &mut PgConnection,
    data: &InputData,
    guard: Guard,
) -> anyhow::Result<Result<Applied, String>> {
    let keys = stores::upsert(&mut *conn, data.group_rows().map(|(id, _)| (id, None))).await?;
    let mut w = CopyWriter::new();
    for (id, group) in data.group_rows() {
        w.row(3);
        w.text(group);
        w.int4(keys[id]);
        w.text(id);
    }
    let outcome = ReplacedTable::StoreGroups
        .replace(conn, w, guard.max_loss)
        .await?;
    Ok(replaced(outcome, "a group", guard))
}

/// A snapshot table's replacement as a load's figures, or the reason it was refused.
fn replaced(outcome: Replaced, what: &str, guard: Guard) -> Result<Applied, String> {
    let applied = |inserted, changed| Applied {
        inserted,
        changed,
        newest_poll: None,
    };
    match outcome {
        Replaced::Unchanged => Ok(applied(0, false)),
        Replaced::Rows(rows) => Ok(applied(rows, true)),
        Replaced::Refused { held, lost } => Err(format!(
            "refused: the file would leave {lost} of the {held} stores with {what} without any \
             (more than {:.0} %), as a truncated or half-copied file would; nothing changed. \
             Reload with force if the file is right",
            guard.max_loss.unwrap_or(1.0) * 100.0
        )),
    }
}
