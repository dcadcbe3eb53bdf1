//! Store time zones, and the reading of local wall times as real instants.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

use super::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND, Timestamp};

/// A store's IANA time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Zone(pub Tz);

impl Zone {
    /// Where a store without a (known) time zone is taken to be.
    pub const DEFAULT: Zone = Zone(Tz::America__Chicago);

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// UTC offset in microseconds in force at `at`.
    pub fn offset_at(self, at: Timestamp) -> i64 {
        let utc = chrono::DateTime::from_timestamp_micros(at.0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        self.0.offset_from_utc_datetime(&utc).fix().local_minus_utc() as i64 * MICROS_PER_SECOND
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone::DEFAULT
    }
}

impl FromStr for Zone {
    type Err = String;

    /// Exactly as the IANA database spells it (case-sensitive, links such as `US/Eastern`
    /// included).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Tz::from_str(name)
            .map(Zone)
            .map_err(|_| format!("unknown time zone {name:?}"))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One change of a zone's UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transition {
    /// The first instant (UTC microseconds) with the new offset.
    at: i64,
    before: i64,
    after: i64,
}

/// A zone's offsets over a bounded span of time, precomputed so that reading a local wall
/// time is integer arithmetic (the engine does it a few hundred thousand times a report).
#[derive(Clone, Debug)]
pub struct ZoneClock {
    first_offset: i64,
    transitions: Vec<Transition>,
}

impl ZoneClock {
    /// Offsets that hold over `[from, to)`, plus four days either side for local dates
    /// that straddle the ends. Offset changes are found by sampling hourly, so a zone
    /// would have to change its offset twice within one hour to be misread.
    pub fn new(zone: Zone, from: Timestamp, to: Timestamp) -> Self {
        let start = from.0 - 4 * MICROS_PER_DAY;
        let end = to.0 + 4 * MICROS_PER_DAY;
        let first_offset = zone.offset_at(Timestamp(start));
        let mut transitions = Vec::new();
        let (mut t, mut offset) = (start, first_offset);
        while t < end {
            let next = t + MICROS_PER_HOUR;
            let next_offset = zone.offset_at(Timestamp(next));
            if next_offset != offset {
                // Offsets change on whole seconds: search [t, next] for the first second
                // with the new offset.
                let (mut lo, mut hi) = (t / MICROS_PER_SECOND, next / MICROS_PER_SECOND);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if zone.offset_at(Timestamp(mid * MICROS_PER_SECOND)) == offset {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                transitions.push(Transition {
                    at: hi * MICROS_PER_SECOND,
                    before: offset,
                    after: next_offset,
                });
            }
            (t, offset) = (next, next_offset);
        }
        ZoneClock {
            first_offset,
            transitions,
        }
    }

    /// The instant of a local wall time (microseconds since the local 1970-01-01 00:00).
    ///
    /// A wall time that does not exist (clocks jumped over it) or that occurs twice (clocks
    /// went back over it) is read with the offset in force just before the transition, as
    /// `java.time.ZonedDateTime.of` and Python's `zoneinfo` with `fold=0` read it.
    pub fn to_utc(&self, local: i64) -> Timestamp {
        let mut offset = self.first_offset;
        for t in &self.transitions {
            // Local times before `at + max(before, after)` are either before the transition,
            // inside the skipped gap, or the first of a repeated pair: all read with `before`.
            if local >= t.at + t.before.max(t.after) {
                offset = t.after;
            } else {
                break;
            }
        }
        Timestamp(local - offset)
    }
}

/// The clocks of every zone over one span, each made the first time it is asked for:
/// stores share a few dozen zones, and making a clock samples its zone hourly.
pub struct Clocks {
    from: Timestamp,
    to: Timestamp,
    made: HashMap<Zone, ZoneClock>,
}

impl Clocks {
    /// Clocks for instants within `[from, to)`.
    pub fn new(from: Timestamp, to: Timestamp) -> Self {
        Clocks {
            from,
            to,
            made: HashMap::new(),
        }
    }

    pub fn of(&mut self, zone: Zone) -> &ZoneClock {
        let (from, to) = (self.from, self.to);
        self.made
            .entry(zone)
            .or_insert_with(|| ZoneClock::new(zone, from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        let at = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        Timestamp(at.and_utc().timestamp_micros())
    }

    /// Local wall time as microseconds since the local epoch.
    fn local(s: &str) -> i64 {
        utc(s).0
    }

    fn clock(zone: &str, around: &str) -> ZoneClock {
        let at = utc(around);
        ZoneClock::new(
            zone.parse().unwrap(),
            at.offset(-MICROS_PER_DAY),
            at.offset(MICROS_PER_DAY),
        )
    }

    #[test]
    fn new_york_spring_forward_gap_reads_with_the_offset_before() {
        let c = clock("America/New_York", "2023-03-12 12:00:00");
        assert_eq!(c.to_utc(local("2023-03-12 01:59:59")), utc("2023-03-12 06:59:59"));
        // 02:30 does not exist: read at -05:00, it is 03:30 EDT.
        assert_eq!(c.to_utc(local("2023-03-12 02:00:00")), utc("2023-03-12 07:00:00"));
        assert_eq!(c.to_utc(local("2023-03-12 02:30:00")), utc("2023-03-12 07:30:00"));
        assert_eq!(c.to_utc(local("2023-03-12 03:00:00")), utc("2023-03-12 07:00:00"));
        assert_eq!(c.to_utc(local("2023-03-12 03:30:00")), utc("2023-03-12 07:30:00"));
        assert_eq!(c.to_utc(local("2023-03-12 12:00:00")), utc("2023-03-12 16:00:00"));
    }

    #[test]
    fn new_york_fall_back_fold_reads_the_first_occurrence() {
        let c = clock("America/New_York", "2023-11-05 12:00:00");
        assert_eq!(c.to_utc(local("2023-11-05 00:59:59")), utc("2023-11-05 04:59:59"));
        // 01:00-02:00 happens twice; the first (EDT, -04:00) is meant.
        assert_eq!(c.to_utc(local("2023-11-05 01:00:00")), utc("2023-11-05 05:00:00"));
        assert_eq!(c.to_utc(local("2023-11-05 01:30:00")), utc("2023-11-05 05:30:00"));
        assert_eq!(c.to_utc(local("2023-11-05 01:59:59")), utc("2023-11-05 05:59:59"));
        assert_eq!(c.to_utc(local("2023-11-05 02:00:00")), utc("2023-11-05 07:00:00"));
    }

    #[test]
    fn lord_howe_half_hour_changes_follow_the_same_rule() {
        // +10:30 → +11:00 at 02:00 local on 2023-10-01: 02:00-02:30 does not exist.
        let c = clock("Australia/Lord_Howe", "2023-10-01 00:00:00");
        assert_eq!(c.to_utc(local("2023-10-01 01:59:00")), utc("2023-09-30 15:29:00"));
        assert_eq!(c.to_utc(local("2023-10-01 02:15:00")), utc("2023-09-30 15:45:00"));
        assert_eq!(c.to_utc(local("2023-10-01 02:30:00")), utc("2023-09-30 15:30:00"));
        // +11:00 → +10:30 at 02:00 local on 2023-04-02: 01:30-02:00 happens twice.
        let c = clock("Australia/Lord_Howe", "2023-04-02 00:00:00");
        assert_eq!(c.to_utc(local("2023-04-02 01:29:00")), utc("2023-04-01 14:29:00"));
        assert_eq!(c.to_utc(local("2023-04-02 01:45:00")), utc("2023-04-01 14:45:00"));
        assert_eq!(c.to_utc(local("2023-04-02 02:00:00")), utc("2023-04-01 15:30:00"));
    }

    #[test]
    fn zones_without_daylight_saving_are_a_fixed_offset() {
        for (zone, offset_minutes) in [("America/Phoenix", -7 * 60), ("Asia/Kolkata", 5 * 60 + 30)] {
            for day in ["2023-01-15", "2023-03-12", "2023-07-01", "2023-11-05"] {
                let c = clock(zone, &format!("{day} 12:00:00"));
                assert!(c.transitions.is_empty(), "{zone} changed offset near {day}");
                for hm in ["00:00:00", "02:30:00", "13:45:00"] {
                    let wall = format!("{day} {hm}");
                    let expect = utc(&wall).offset(-offset_minutes * 60 * MICROS_PER_SECOND);
                    assert_eq!(c.to_utc(local(&wall)), expect, "{zone} {wall}");
                }
            }
        }
    }

    #[test]
    fn chatham_odd_offsets_and_its_transitions() {
        // +12:45 standard, +13:45 daylight; spring forward 2023-09-24 02:45 → 03:45.
        let c = clock("Pacific/Chatham", "2023-09-24 00:00:00");
        assert_eq!(c.to_utc(local("2023-09-24 02:44:00")), utc("2023-09-23 13:59:00"));
        assert_eq!(c.to_utc(local("2023-09-24 03:00:00")), utc("2023-09-23 14:15:00"));
        assert_eq!(c.to_utc(local("2023-09-24 03:45:00")), utc("2023-09-23 14:00:00"));
        // Fall back 2023-04-02 03:45 → 02:45: 02:45-03:45 happens twice.
        let c = clock("Pacific/Chatham", "2023-04-02 00:00:00");
        assert_eq!(c.to_utc(local("2023-04-02 03:00:00")), utc("2023-04-01 13:15:00"));
        assert_eq!(c.to_utc(local("2023-04-02 03:45:00")), utc("2023-04-01 15:00:00"));
        assert_eq!(c.to_utc(local("2023-07-01 12:00:00")), utc("2023-06-30 23:15:00"));
    }

    #[test]
    fn zone_names_are_case_sensitive_and_links_count() {
        assert!("America/New_York".parse::<Zone>().is_ok());
        assert!("US/Eastern".parse::<Zone>().is_ok());
        assert!("america/new_york".parse::<Zone>().is_err());
        assert!("Mars/Phobos".parse::<Zone>().is_err());
        assert_eq!(Zone::default().name(), "America/Chicago");
    }
}
