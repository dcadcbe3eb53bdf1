//! Uptime and downtime of a store over the last hour, day and week.

use std::collections::HashMap;

use super::hours::{HoursRow, open_intervals, window_ending};
use super::status::{Interpolation, Poll, Segment, StepFunction};
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

/// The start of the longest window a report at `now` reads (the week before it). Of a
/// store's polls before it, only the last one counts: the status it carries into the
/// window (forward fill) or holds until halfway to the next poll (nearest); earlier ones
/// change no figure.
pub fn reads_from(now: Timestamp) -> Timestamp {
    Timestamp(window_ending(now, WINDOW_HOURS[0] * MICROS_PER_HOUR).start)
}

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

    /// The pieces `span` is made of for one store (see [`StepFunction::segments`]): its
    /// polls up to `now`, read as the report reads them, and its hours in its zone. Summing
    /// the open, active pieces within a window gives exactly the report's uptime there.
    pub fn timeline(&self, polls: &[Poll], hours: &[HoursRow], zone: Zone, span: Interval) -> Vec<Segment> {
        let polls = &polls[..polls.partition_point(|p| p.at <= self.now)];
        if polls.is_empty() || span.is_empty() {
            return Vec::new();
        }
        let clock = ZoneClock::new(zone, Timestamp(span.start), Timestamp(span.end));
        let mut open = Vec::new();
        open_intervals(hours, &clock, span, &mut open);
        let open: Vec<TickInterval> = open.into_iter().map(Interval::to_ticks).collect();
        StepFunction::new(polls, self.interpolation).segments(span.to_ticks(), &open)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LocalTime, Weekday};

    /// The open ticks of `segments` inside `window` that are `active` (or not).
    fn up_within(segments: &[Segment], window: Interval, active: bool) -> i64 {
        let window = window.to_ticks();
        segments
            .iter()
            .filter(|s| s.open && s.active == active)
            .map(|s| (s.span.end.min(window.end) - s.span.start.max(window.start)).max(0))
            .sum()
    }

    #[test]
    fn a_timelines_open_active_pieces_add_up_to_the_uptime_exactly() {
        // A DST change inside the week (America/New_York, 2023-03-12), hours across
        // midnight and of a whole day, polls at odd microseconds.
        let now = Timestamp(1_678_900_000_123_457);
        let hours = [
            HoursRow {
                day: Weekday::new(3).unwrap(),
                start: LocalTime::from_micros(22 * 3_600_000_000).unwrap(),
                end: LocalTime::from_micros(2 * 3_600_000_000).unwrap(),
            },
            HoursRow {
                day: Weekday::new(6).unwrap(),
                start: LocalTime::from_micros(1_000_001).unwrap(),
                end: LocalTime::from_micros(1_000_001).unwrap(),
            },
            HoursRow {
                day: Weekday::new(1).unwrap(),
                start: LocalTime::from_micros(9 * 3_600_000_000).unwrap(),
                end: LocalTime::from_micros(17 * 3_600_000_000).unwrap(),
            },
        ];
        let zone: Zone = "America/New_York".parse().unwrap();
        let mut seed = 12_345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        let mut polls = Vec::new();
        let mut at = now.0 - 9 * 24 * 3_600_000_000;
        while at < now.0 + 3_600_000_000 {
            at += 1_800_000_000 + (next() % 5_400_000_000) as i64;
            polls.push(Poll {
                at: Timestamp(at),
                active: next() % 3 != 0,
            });
        }
        let week = window_ending(now, WINDOW_HOURS[0] * MICROS_PER_HOUR);
        for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
            let mut engine = Engine::new(now, interpolation);
            let uptime = engine.store(&polls, &hours, zone).unwrap();
            let segments = engine.timeline(&polls, &hours, zone, week);
            // In order, no gap, no overlap, covering the week.
            assert_eq!(segments.first().unwrap().span.start, week.to_ticks().start);
            assert_eq!(segments.last().unwrap().span.end, week.to_ticks().end);
            assert!(segments.windows(2).all(|w| w[0].span.end == w[1].span.start));
            assert!(
                segments
                    .windows(2)
                    .all(|w| (w[0].open, w[0].active) != (w[1].open, w[1].active))
            );
            for (split, hours_back) in [
                (uptime.last_week, 168),
                (uptime.last_day, 24),
                (uptime.last_hour, 1),
            ] {
                let window = window_ending(now, hours_back * MICROS_PER_HOUR);
                let context = format!("{interpolation:?} {hours_back} h");
                assert_eq!(up_within(&segments, window, true), split.up.0, "{context}");
                assert_eq!(up_within(&segments, window, false), split.down.0, "{context}");
            }
        }
    }
}
