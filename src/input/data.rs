//! A whole data set held in memory, and the report over it: what `store-monitor report`
//! computes without a database, and what a reload stores.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::InputError;
use super::csv_file::{self, FileCounts, Part, PartCounts, Rejected, read_part, read_rows};
use super::fields;
use super::files::{DataFiles, FileKind, PerKind};
use super::store_ids::StoreIds;
use crate::domain::status::normalize_in_place;
use crate::domain::{Engine, HoursRow, Interpolation, Poll, Report, StoreReport, Timestamp, Zone};

/// Which instants a poll may have. Before 2000 is a clock that was never set; after the
/// server's clock (by more than the skew allowed) a poll from the future, which would be
/// every report's *now* until removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollTimes {
    /// The server's clock; `None`: no upper bound (a report from files alone).
    pub clock: Option<Timestamp>,
    /// How far past `clock` a poll may be (`--max-clock-skew`), in microseconds.
    pub max_skew_micros: i64,
}

impl PollTimes {
    /// 2000-01-01 00:00 UTC: the oldest poll taken.
    pub const EARLIEST: Timestamp = Timestamp(946_684_800_000_000);

    /// The clock read now, with `max_skew` allowed.
    pub fn now(max_skew: std::time::Duration) -> PollTimes {
        PollTimes {
            clock: Some(Timestamp::from_datetime(chrono::Utc::now())),
            max_skew_micros: i64::try_from(max_skew.as_micros()).unwrap_or(i64::MAX),
        }
    }

    fn check(&self, at: Timestamp) -> Result<(), String> {
        if at < Self::EARLIEST {
            return Err(format!(
                "timestamp_utc {at} is before {}: no poll is that old (a clock that was never set?)",
                Self::EARLIEST
            ));
        }
        match self.clock {
            Some(clock) if at.0 > clock.0.saturating_add(self.max_skew_micros) => Err(format!(
                "timestamp_utc {at} is more than {} after the server's clock ({clock}): a poll from the \
                 future would be every report's now (--max-clock-skew)",
                crate::domain::time::span_words(self.max_skew_micros)
            )),
            _ => Ok(()),
        }
    }
}

/// The input files, parsed.
#[derive(Clone, Debug, Default)]
pub struct InputData {
    /// Which instants a poll may have.
    pub poll_times: PollTimes,
    stores: StoreIds,
    /// In file order.
    polls: Vec<RawPoll>,
    hours: Vec<(u32, HoursRow)>,
    /// First valid row of a store wins.
    zones: HashMap<u32, Zone>,
    /// Each (store, group) once, in file order.
    groups: Vec<(u32, String)>,
    /// The stores whose polls may be added (a push by a token scoped to store groups);
    /// another's are rejected rows. `None`: any store's.
    pub scope: Option<Arc<HashSet<String>>>,
    /// Rows and rejections per file kind.
    pub counts: PerKind<FileCounts>,
    pub rejected: Vec<Rejected>,
}

/// A poll as read, before it is grouped by store: 16 bytes.
#[derive(Clone, Copy, Debug)]
struct RawPoll {
    at: Timestamp,
    store: u32,
    active: bool,
}

/// What one thread read of a part of the status file, its stores numbered on its own.
struct StatusPart {
    stores: StoreIds,
    polls: Vec<RawPoll>,
    rejected: Vec<Rejected>,
    counts: PartCounts,
}

impl InputData {
    /// Reads the files; bad rows land in [`InputData::rejected`], a bad file is an error.
    pub fn load(files: &DataFiles) -> Result<InputData, InputError> {
        let mut data = InputData::default();
        data.load_status(&files.status)?;
        if let Some(path) = &files.hours {
            data.load_hours(path)?;
        }
        if let Some(path) = &files.timezones {
            data.load_timezones(path)?;
        }
        Ok(data)
    }

    /// The status file is most of the input, so it is read by a thread per core, each on
    /// its own part of the file.
    pub fn load_status(&mut self, path: &Path) -> Result<(), InputError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let mut parts = read_status_parts(path, &csv_file::split(path, threads)?, self.poll_times)?;
        if parts.len() > 1 && parts.iter().any(|p| p.counts.quotes) {
            // A quoted field may hold a newline, and a cut may have fallen inside one.
            parts = read_status_parts(path, &[Part::WHOLE], self.poll_times)?;
        }
        self.add_status_parts(parts, 0);
        Ok(())
    }

    /// Adds the rows of a status file from byte `start` on, which must follow a newline
    /// outside any quoted field (the end of an earlier, complete version of the file).
    /// `lines_before` newlines precede it, so rejected rows keep their lines in the file.
    pub fn load_status_tail(&mut self, path: &Path, start: u64, lines_before: u64) -> Result<(), InputError> {
        let parts = read_status_parts(path, &[Part::from(start)], self.poll_times)?;
        self.add_status_parts(parts, lines_before);
        Ok(())
    }

    fn add_status_parts(&mut self, parts: Vec<StatusPart>, mut lines_before: u64) {
        for part in parts {
            // Renumbering each part's stores in the order that part first saw them gives
            // the numbering of a single reader of the whole file.
            let renumber: Vec<u32> = (0..part.stores.len() as u32)
                .map(|n| self.stores.intern(part.stores.id(n)))
                .collect();
            if self.polls.is_empty() && renumber.iter().enumerate().all(|(i, &n)| i as u32 == n) {
                self.polls = part.polls;
            } else {
                let renumbered = part.polls.iter().map(|p| RawPoll {
                    store: renumber[p.store as usize],
                    ..*p
                });
                self.polls.extend(renumbered);
            }
            self.rejected.extend(part.rejected.into_iter().map(|r| Rejected {
                line: r.line + lines_before,
                ..r
            }));
            lines_before += part.counts.lines;
            self.counts.status.rows += part.counts.counts.rows;
            self.counts.status.rejected += part.counts.counts.rejected;
        }
    }

    /// Adds the rows of a pushed CSV batch (the status file's header and columns), up to the
    /// row past `max_rows`; `name` names it in rejected rows.
    pub fn load_status_from(
        &mut self,
        input: impl std::io::Read,
        name: &str,
        max_rows: u64,
    ) -> Result<(), InputError> {
        let (stores, polls, times) = (&mut self.stores, &mut self.polls, self.poll_times);
        let scope = self.scope.as_deref();
        let columns = FileKind::Status.columns();
        let counts = csv_file::read_bytes(input, name, columns, max_rows, &mut self.rejected, |f| {
            in_scope(scope, f[0])?;
            add_poll(stores, polls, times, [f[0], f[1], f[2]])
        })?;
        self.counts.status.rows += counts.rows;
        self.counts.status.rejected += counts.rejected;
        Ok(())
    }

    /// Adds one pushed poll given field by field (a line of NDJSON, a GraphQL input):
    /// `fields` are its store id, status and timestamp, or why it has none. Checked as a
    /// row of the status file is; a bad one is rejected as line `line` of `name`, shown as
    /// `raw`.
    pub fn push_row(&mut self, name: &str, line: u64, raw: &str, fields: Result<[&[u8]; 3], String>) {
        self.counts.status.rows += 1;
        let added = fields.and_then(|f| {
            in_scope(self.scope.as_deref(), f[0])?;
            add_poll(&mut self.stores, &mut self.polls, self.poll_times, f)
        });
        if let Err(reason) = added {
            self.counts.status.rejected += 1;
            self.rejected.push(Rejected {
                file: name.to_string(),
                line,
                reason,
                raw: csv_file::clip(raw).to_string(),
            });
        }
    }

    /// Adds the rows of a business-hours file.
    pub fn load_hours(&mut self, path: &Path) -> Result<(), InputError> {
        let (stores, hours) = (&mut self.stores, &mut self.hours);
        self.counts.hours = read_rows(path, FileKind::Hours.columns(), &mut self.rejected, |f| {
            let id = fields::store_id(f[0])?;
            let day = fields::weekday(f[1])?;
            let start = fields::local_time(f[2])?;
            let end = fields::local_time(f[3])?;
            if start == crate::domain::LocalTime::END_OF_DAY {
                return Err("start_time_local 24:00 opens after the day has ended".into());
            }
            hours.push((stores.intern(id), HoursRow { day, start, end }));
            Ok(())
        })?;
        Ok(())
    }

    /// Adds a store-groups file; a store may be in several groups, a row repeated counts once.
    pub fn load_groups(&mut self, path: &Path) -> Result<(), InputError> {
        let (stores, groups) = (&mut self.stores, &mut self.groups);
        let mut seen = std::collections::HashSet::new();
        self.counts.groups = read_rows(path, FileKind::Groups.columns(), &mut self.rejected, |f| {
            let id = fields::store_id(f[0])?;
            let group = fields::group(f[1])?;
            let store = stores.intern(id);
            if seen.insert((store, group.to_string())) {
                groups.push((store, group.to_string()));
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Adds a time-zone file; a store keeps the first valid zone it is given.
    pub fn load_timezones(&mut self, path: &Path) -> Result<(), InputError> {
        let (stores, zones) = (&mut self.stores, &mut self.zones);
        self.counts.timezones = read_rows(path, FileKind::Timezones.columns(), &mut self.rejected, |f| {
            let id = fields::store_id(f[0])?;
            let zone = fields::zone(f[1])?;
            zones.entry(stores.intern(id)).or_insert(zone);
            Ok(())
        })?;
        Ok(())
    }

    pub fn poll_count(&self) -> usize {
        self.polls.len()
    }

    /// Every business-hours row read, with its store's id, in file order.
    pub fn hours_rows(&self) -> impl Iterator<Item = (&str, HoursRow)> {
        self.hours.iter().map(|&(s, row)| (self.stores.id(s), row))
    }

    /// Every (store, group) read, once each, in file order.
    pub fn group_rows(&self) -> impl Iterator<Item = (&str, &str)> {
        self.groups.iter().map(|(s, g)| (self.stores.id(*s), g.as_str()))
    }

    /// Every store's zone (the first valid one read), in no particular order.
    pub fn zones(&self) -> impl Iterator<Item = (&str, Zone)> {
        self.zones.iter().map(|(&s, &zone)| (self.stores.id(s), zone))
    }

    /// Arranges the data for the engine, moving the polls and hours out of `self` (the
    /// counts and rejected rows stay).
    pub fn prepare(&mut self) -> Prepared {
        let polls = std::mem::take(&mut self.polls);
        let hours = std::mem::take(&mut self.hours);
        // Polled stores in byte order of their ids; the others are left out (NONE).
        let mut polled = vec![false; self.stores.len()];
        for p in &polls {
            polled[p.store as usize] = true;
        }
        let mut order: Vec<u32> = (0..self.stores.len() as u32)
            .filter(|&s| polled[s as usize])
            .collect();
        order.sort_unstable_by(|&a, &b| self.stores.id(a).as_bytes().cmp(self.stores.id(b).as_bytes()));
        let mut rank = vec![NONE; self.stores.len()];
        for (r, &s) in order.iter().enumerate() {
            rank[s as usize] = r as u32;
        }

        let mut grouped = Grouped::new(
            order.len(),
            &polls,
            |p| rank[p.store as usize],
            |p| Poll {
                at: p.at,
                active: p.active,
            },
        );
        drop(polls);
        grouped.sort_and_dedup_polls();
        Prepared {
            ids: order.iter().map(|&s| self.stores.id(s).into()).collect(),
            polls: grouped,
            hours: Grouped::new(order.len(), &hours, |h| rank[h.0 as usize], |h| h.1),
            zones: order
                .iter()
                .map(|s| self.zones.get(s).copied().unwrap_or_default())
                .collect(),
        }
    }
}

/// A store number that is in no group.
const NONE: u32 = u32::MAX;

/// One polled store, ready for the engine.
#[derive(Clone, Copy, Debug)]
pub struct StoreData<'a> {
    pub id: &'a str,
    /// Sorted by time, one per instant (the first row given for it).
    pub polls: &'a [Poll],
    pub hours: &'a [HoursRow],
    pub zone: Zone,
}

/// The polled stores, in byte order of their ids.
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    ids: Vec<Box<str>>,
    polls: Grouped<Poll>,
    hours: Grouped<HoursRow>,
    zones: Vec<Zone>,
}

impl Prepared {
    pub fn store_count(&self) -> usize {
        self.ids.len()
    }

    pub fn stores(&self) -> impl Iterator<Item = StoreData<'_>> {
        (0..self.ids.len()).map(|i| StoreData {
            id: &self.ids[i],
            polls: self.polls.of(i),
            hours: self.hours.of(i),
            zone: self.zones[i],
        })
    }

    pub fn newest_poll(&self) -> Option<Timestamp> {
        self.stores().filter_map(|s| s.polls.last()).map(|p| p.at).max()
    }

    pub fn poll_count(&self) -> usize {
        self.polls.items.len()
    }

    /// The report at `as_of` (default: the newest poll): the engine alone.
    pub fn report(&self, as_of: Option<Timestamp>, interpolation: Interpolation) -> Report {
        let Some(now) = as_of.or_else(|| self.newest_poll()) else {
            return Report {
                now: None,
                rows: Vec::new(),
            };
        };
        let mut engine = Engine::new(now, interpolation);
        let rows = self
            .stores()
            .filter_map(|s| {
                let uptime = engine.store(s.polls, s.hours, s.zone)?;
                Some(StoreReport {
                    store_id: s.id.to_string(),
                    uptime,
                })
            })
            .collect();
        Report { now: Some(now), rows }
    }
}

fn read_status_parts(path: &Path, parts: &[Part], times: PollTimes) -> Result<Vec<StatusPart>, InputError> {
    std::thread::scope(|scope| {
        let readers: Vec<_> = parts
            .iter()
            .map(|&part| scope.spawn(move || read_status_part(path, part, times)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("a status reader panicked"))
            .collect()
    })
}

fn read_status_part(path: &Path, part: Part, times: PollTimes) -> Result<StatusPart, InputError> {
    let (mut stores, mut polls, mut rejected) = (StoreIds::default(), Vec::new(), Vec::new());
    let counts = read_part(path, part, FileKind::Status.columns(), &mut rejected, |f| {
        add_poll(&mut stores, &mut polls, times, [f[0], f[1], f[2]])
    })?;
    Ok(StatusPart {
        stores,
        polls,
        rejected,
        counts,
    })
}

/// Checks a poll's store id, status and timestamp (`row`, as a status file has them) and
/// adds it, or says why not.
/// Whether a pushed poll's store is one the pusher may add polls of. The reason is the same
/// for a store of another group and one that does not exist.
fn in_scope(scope: Option<&HashSet<String>>, id: &[u8]) -> Result<(), String> {
    match scope {
        Some(scope) => {
            let id = fields::store_id(id)?;
            if scope.contains(id) {
                Ok(())
            } else {
                Err(format!("{id:?} is not a store of this token's store groups"))
            }
        }
        None => Ok(()),
    }
}

fn add_poll(
    stores: &mut StoreIds,
    polls: &mut Vec<RawPoll>,
    times: PollTimes,
    row: [&[u8]; 3],
) -> Result<(), String> {
    let [id, status, at] = row;
    let id = fields::store_id(id)?;
    let active = fields::status(status)?;
    let at = fields::timestamp(at)?;
    times.check(at)?;
    polls.push(RawPoll {
        at,
        store: stores.intern(id),
        active,
    });
    Ok(())
}

/// Items grouped: group `g`'s items are `items[starts[g]..starts[g + 1]]`.
#[derive(Clone, Debug, Default)]
struct Grouped<T> {
    items: Vec<T>,
    starts: Vec<usize>,
}

impl<T: Copy + Default> Grouped<T> {
    /// A counting sort into `groups` groups by `group` (items in group [`NONE`] are
    /// dropped): two passes, no comparisons, original order kept within a group.
    fn new<I>(groups: usize, items: &[I], group: impl Fn(&I) -> u32, value: impl Fn(&I) -> T) -> Self {
        let mut starts = vec![0usize; groups + 1];
        for item in items {
            let g = group(item);
            if g != NONE {
                starts[g as usize + 1] += 1;
            }
        }
        for i in 1..=groups {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut grouped = vec![T::default(); starts[groups]];
        for item in items {
            let g = group(item);
            if g != NONE {
                grouped[next[g as usize]] = value(item);
                next[g as usize] += 1;
            }
        }
        Grouped {
            items: grouped,
            starts,
        }
    }

    fn of(&self, group: usize) -> &[T] {
        &self.items[self.starts[group]..self.starts[group + 1]]
    }
}

impl Grouped<Poll> {
    /// Sorts each store's polls by time and keeps the first of those at one instant
    /// (with [`normalize_in_place`]), compacting the groups.
    fn sort_and_dedup_polls(&mut self) {
        let mut kept = 0;
        for g in 0..self.starts.len() - 1 {
            let (start, end) = (self.starts[g], self.starts[g + 1]);
            let unique = normalize_in_place(&mut self.items[start..end]);
            self.items.copy_within(start..start + unique, kept);
            self.starts[g] = kept;
            kept += unique;
        }
        *self.starts.last_mut().expect("starts has groups + 1 entries") = kept;
        self.items.truncate(kept);
    }
}
