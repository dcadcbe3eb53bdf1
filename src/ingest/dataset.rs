//! A whole data set held in memory, and the report over it: what `store-monitor report`
//! computes without a database.

use std::collections::HashMap;

use super::IngestError;
use super::csv_file::{FileCounts, Rejected, read_rows};
use super::fields;
use super::files::{DataFiles, FileKind};
use crate::domain::status::normalize_polls;
use crate::domain::{Engine, HoursRow, Interpolation, Poll, Timestamp, Uptime, Zone};

/// Dense numbers for store ids, so that polls are 16 bytes each.
#[derive(Debug, Default)]
struct StoreIds {
    ids: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
}

impl StoreIds {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.index.get(id) {
            return n;
        }
        let n = self.ids.len() as u32;
        self.ids.push(id.into());
        self.index.insert(id.into(), n);
        n
    }
}

/// The three input files, parsed.
#[derive(Debug, Default)]
pub struct Dataset {
    stores: StoreIds,
    /// (store, poll) in file order.
    polls: Vec<(u32, Poll)>,
    hours: Vec<(u32, HoursRow)>,
    /// First valid row of a store wins.
    zones: HashMap<u32, Zone>,
    /// Rows and rejections per file kind, in [`FileKind::ALL`] order.
    pub counts: [FileCounts; 3],
    pub rejected: Vec<Rejected>,
}

/// One store's line of a report, exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreReport {
    pub store_id: String,
    pub uptime: Uptime,
}

/// A computed report: the instant it was computed at and a row per store, by store id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `None` only when there are no polls at all.
    pub now: Option<Timestamp>,
    pub rows: Vec<StoreReport>,
}

impl Dataset {
    /// Reads the files; bad rows land in [`Dataset::rejected`], a bad file is an error.
    pub fn load(files: &DataFiles) -> Result<Dataset, IngestError> {
        let mut data = Dataset::default();
        data.load_status(&files.status)?;
        if let Some(path) = &files.hours {
            data.load_hours(path)?;
        }
        if let Some(path) = &files.timezones {
            data.load_timezones(path)?;
        }
        Ok(data)
    }

    fn load_status(&mut self, path: &std::path::Path) -> Result<(), IngestError> {
        let (stores, polls) = (&mut self.stores, &mut self.polls);
        self.counts[0] = read_rows(path, FileKind::Status.columns(), &mut self.rejected, |f| {
            let id = fields::store_id(f[0])?;
            let active = fields::status(f[1])?;
            let at = fields::timestamp(f[2])?;
            polls.push((stores.intern(id), Poll { at, active }));
            Ok(())
        })?;
        Ok(())
    }

    fn load_hours(&mut self, path: &std::path::Path) -> Result<(), IngestError> {
        let (stores, hours) = (&mut self.stores, &mut self.hours);
        self.counts[1] = read_rows(path, FileKind::Hours.columns(), &mut self.rejected, |f| {
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

    fn load_timezones(&mut self, path: &std::path::Path) -> Result<(), IngestError> {
        let (stores, zones) = (&mut self.stores, &mut self.zones);
        self.counts[2] = read_rows(path, FileKind::Timezones.columns(), &mut self.rejected, |f| {
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

    pub fn newest_poll(&self) -> Option<Timestamp> {
        self.polls.iter().map(|(_, p)| p.at).max()
    }

    /// The report at `as_of` (default: the newest poll).
    pub fn report(&self, as_of: Option<Timestamp>, interpolation: Interpolation) -> Report {
        let Some(now) = as_of.or_else(|| self.newest_poll()) else {
            return Report {
                now: None,
                rows: Vec::new(),
            };
        };
        let n = self.stores.ids.len();
        let polls = Grouped::new(n, &self.polls);
        let hours = Grouped::new(n, &self.hours);
        let mut order: Vec<u32> = (0..n as u32).filter(|&s| !polls.of(s).is_empty()).collect();
        order.sort_unstable_by(|&a, &b| {
            self.stores.ids[a as usize]
                .as_bytes()
                .cmp(self.stores.ids[b as usize].as_bytes())
        });

        let mut engine = Engine::new(now, interpolation);
        let mut store_polls = Vec::new();
        let rows = order
            .into_iter()
            .filter_map(|s| {
                store_polls.clear();
                store_polls.extend_from_slice(polls.of(s));
                normalize_polls(&mut store_polls);
                let zone = self.zones.get(&s).copied().unwrap_or_default();
                let uptime = engine.store(&store_polls, hours.of(s), zone)?;
                Some(StoreReport {
                    store_id: self.stores.ids[s as usize].to_string(),
                    uptime,
                })
            })
            .collect();
        Report { now: Some(now), rows }
    }
}

/// Items grouped by store: store `s`'s items, in their original order, are
/// `items[starts[s]..starts[s + 1]]`.
struct Grouped<T> {
    items: Vec<T>,
    starts: Vec<usize>,
}

impl<T: Copy> Grouped<T> {
    /// A counting sort: two passes, no comparisons, original order kept within a store.
    fn new(stores: usize, items: &[(u32, T)]) -> Self {
        let mut starts = vec![0usize; stores + 1];
        for (s, _) in items {
            starts[*s as usize + 1] += 1;
        }
        for i in 1..=stores {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; items.len()];
        for (i, (s, _)) in items.iter().enumerate() {
            order[next[*s as usize]] = i as u32;
            next[*s as usize] += 1;
        }
        let items = order.into_iter().map(|i| items[i as usize].1).collect();
        Grouped { items, starts }
    }

    fn of(&self, store: u32) -> &[T] {
        &self.items[self.starts[store as usize]..self.starts[store as usize + 1]]
    }
}
