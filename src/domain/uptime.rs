//! Uptime and downtime of a store over the last hour, day and week.

use std::collections::HashMap;

use super::hours::{HoursRow, open_intervals, window_ending};
use super::status::{Interpolation, Poll, StepFunction};
use super::time::{Interval, MICROS_PER_HOUR, TickInterval, Ticks, Timestamp};
use super::zone::{Zone, ZoneClock};

/// Active and inactive business time within one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub up: Ticks,
    pub down: Ticks,
}

/// A store's row of the report, exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uptime {
    pub last_hour: Split,
    pub last_day: Split,
    pub last_week: Split,
}

/// The report's windows, longest first: `[now - 168 h, now)`, `[now - 24 h, now)`, `[now - 1 h, now)`.
const WINDOW_HOURS: [i64; 3] = [168, 24, 1];

/// Computes [`Uptime`] for one store after another, at one `now` with one interpolation.
///
/// Keeps one [`ZoneClock`] per zone, so that a report over many stores in few zones reads
/// the time-zone database only a few times.
pub struct Engine {
    now: Timestamp,
    interpolation: Interpolation,
    clocks: HashMap<Zone, ZoneClock>,
    open: Vec<Interval>,
    ticks: Vec<TickInterval>,
}

impl Engine {
    pub fn new(now: Timestamp, interpolation: Interpolation) -> Self {
        Engine {
            now,
            interpolation,
            clocks: HashMap::new(),
            open: Vec::new(),
            ticks: Vec::new(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn interpolation(&self) -> Interpolation {
        self.interpolation
    }

    /// One store's uptime, from its polls (sorted by time, one per instant, as
    /// [`super::status::normalize_polls`] leaves them), its weekly hours (none: open
    /// 24×7) and its zone. Polls after `now` are ignored; `None` when no poll is left.
    pub fn store(&mut self, polls: &[Poll], hours: &[HoursRow], zone: Zone) -> Option<Uptime> {
        let polls = &polls[..polls.partition_point(|p| p.at <= self.now)];
        if polls.is_empty() {
            return None;
        }
        let week = window_ending(self.now, WINDOW_HOURS[0] * MICROS_PER_HOUR);
        let (now, longest) = (self.now, week);
        let clock = self
            .clocks
            .entry(zone)
            .or_insert_with(|| ZoneClock::new(zone, Timestamp(longest.start), now));
        open_intervals(hours, clock, week, &mut self.open);

        let step = StepFunction::new(polls, self.interpolation);
        let mut splits = [Split::default(); 3];
        for (split, hours_back) in splits.iter_mut().zip(WINDOW_HOURS) {
            let window = window_ending(self.now, hours_back * MICROS_PER_HOUR);
            self.ticks.clear();
            self.ticks.extend(
                self.open
                    .iter()
                    .map(|i| i.clip(window))
                    .filter(|i| !i.is_empty())
                    .map(Interval::to_ticks),
            );
            let (up, total) = step.active_within(&self.ticks);
            *split = Split { up, down: total - up };
        }
        let [last_week, last_day, last_hour] = splits;
        Some(Uptime {
            last_hour,
            last_day,
            last_week,
        })
    }
}
