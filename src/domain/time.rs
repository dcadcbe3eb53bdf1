//! Instants and half-open intervals of integer time.
//!
//! Everything the engine adds up is an integer, so a report is exact until it is written.
//! Instants are microseconds (the finest unit the inputs keep); the engine measures in
//! half-microsecond [`Ticks`] because `NEAREST` switches status halfway between two polls,
//! and that midpoint is a whole number of half-microseconds, never of microseconds.

use std::fmt;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// An instant in UTC: microseconds since 1970-01-01 00:00:00 UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_micros(self.0)
    }

    pub fn from_datetime(at: chrono::DateTime<chrono::Utc>) -> Self {
        Timestamp(at.timestamp_micros())
    }

    /// This instant moved by `micros` (negative to go back).
    pub fn offset(self, micros: i64) -> Self {
        Timestamp(self.0 + micros)
    }
}

/// Whether `at` is an instant this service takes: the years RFC 3339 can write, 0000 to
/// 9999. Inside them no sum of the engine's (half-microsecond ticks) overflows, and
/// PostgreSQL stores every one.
pub fn supported(at: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike;
    (0..=9999).contains(&at.year())
}

/// A length of time in words: whole hours as `2 h`, whole minutes as `30 min`, else seconds.
pub fn span_words(micros: i64) -> String {
    match micros {
        m if m % MICROS_PER_HOUR == 0 => format!("{} h", m / MICROS_PER_HOUR),
        m if m % MICROS_PER_MINUTE == 0 => format!("{} min", m / MICROS_PER_MINUTE),
        m => format!("{} s", m as f64 / MICROS_PER_SECOND as f64),
    }
}

/// Written as the inputs write it: `2023-01-25 18:13:22.47922 UTC`, trailing zeros of the
/// fraction dropped and no fraction at all on a whole second.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(at) = self.to_datetime() else {
            return write!(f, "{}us", self.0);
        };
        write!(f, "{}", at.format("%Y-%m-%d %H:%M:%S"))?;
        let mut fraction = self.0.rem_euclid(MICROS_PER_SECOND);
        if fraction != 0 {
            let mut digits = 6;
            while fraction % 10 == 0 {
                fraction /= 10;
                digits -= 1;
            }
            write!(f, ".{fraction:0digits$}")?;
        }
        f.write_str(" UTC")
    }
}

/// A length of time in half-microseconds: the unit in which `NEAREST`'s midpoints are exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticks(pub i64);

impl Ticks {
    pub const PER_MICRO: i64 = 2;

    pub fn from_micros(micros: i64) -> Self {
        Ticks(micros * Self::PER_MICRO)
    }

    /// The instant this many ticks after the epoch, exact to the half-microsecond: a
    /// timeline's piece may start halfway between two microseconds.
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        let micros = self.0.div_euclid(Self::PER_MICRO);
        let half = self.0.rem_euclid(Self::PER_MICRO);
        let whole = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
        whole + chrono::TimeDelta::nanoseconds(half * 500)
    }

    /// This length in `unit_micros` units, in hundredths, rounded half away from zero.
    pub fn hundredths_of(self, unit_micros: i64) -> i64 {
        let unit = unit_micros * Self::PER_MICRO;
        let scaled = self.0 as i128 * 100;
        let half = unit as i128 / 2;
        // Rounding an exact rational, so no float can put a value on the wrong side of .005.
        let rounded = if scaled >= 0 {
            (scaled + half) / unit as i128
        } else {
            (scaled - half) / unit as i128
        };
        // For a unit of 2 × unit_micros an odd `unit` cannot occur, so `half` is exact.
        rounded as i64
    }
}

impl std::ops::Add for Ticks {
    type Output = Ticks;
    fn add(self, other: Ticks) -> Ticks {
        Ticks(self.0 + other.0)
    }
}

impl std::ops::Sub for Ticks {
    type Output = Ticks;
    fn sub(self, other: Ticks) -> Ticks {
        Ticks(self.0 - other.0)
    }
}

/// Hundredths written with exactly two decimals: `1250` → `12.50`, `0` → `0.00`.
pub fn format_hundredths(hundredths: i64) -> String {
    let sign = if hundredths < 0 { "-" } else { "" };
    let abs = hundredths.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The half-open interval `[start, end)` of instants, in microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

impl Interval {
    pub fn new(start: i64, end: i64) -> Self {
        Interval { start, end }
    }

    pub fn len(self) -> i64 {
        (self.end - self.start).max(0)
    }

    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// The part of `self` inside `other` (possibly empty).
    pub fn clip(self, other: Interval) -> Interval {
        Interval::new(self.start.max(other.start), self.end.min(other.end))
    }

    pub fn to_ticks(self) -> TickInterval {
        TickInterval {
            start: Ticks::from_micros(self.start).0,
            end: Ticks::from_micros(self.end).0,
        }
    }
}

/// The half-open interval `[start, end)` of instants, in [`Ticks`] since the epoch: the
/// unit the engine adds up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TickInterval {
    pub start: i64,
    pub end: i64,
}

impl TickInterval {
    pub fn len(self) -> Ticks {
        Ticks((self.end - self.start).max(0))
    }

    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }
}

/// Sorts `intervals` and merges those that overlap or touch, dropping empty ones.
pub fn merge_intervals(intervals: &mut Vec<Interval>) {
    intervals.retain(|i| !i.is_empty());
    intervals.sort_unstable();
    let mut merged = 0;
    for i in 0..intervals.len() {
        let next = intervals[i];
        if merged > 0 && next.start <= intervals[merged - 1].end {
            let last = &mut intervals[merged - 1];
            last.end = last.end.max(next.end);
        } else {
            intervals[merged] = next;
            merged += 1;
        }
    }
    intervals.truncate(merged);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_like_the_original_data() {
        let at = Timestamp(1_674_670_402_479_220);
        assert_eq!(at.to_string(), "2023-01-25 18:13:22.47922 UTC");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(Timestamp(1).to_string(), "1970-01-01 00:00:00.000001 UTC");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31 23:59:59.999999 UTC");
    }

    #[test]
    fn rounding_is_half_away_from_zero_on_exact_values() {
        // 0.005 h = 18 s exactly rounds up to 0.01.
        assert_eq!(
            Ticks::from_micros(18 * MICROS_PER_SECOND).hundredths_of(MICROS_PER_HOUR),
            1
        );
        // One half-microsecond less stays at 0.00.
        let just_below = Ticks(Ticks::from_micros(18 * MICROS_PER_SECOND).0 - 1);
        assert_eq!(just_below.hundredths_of(MICROS_PER_HOUR), 0);
        assert_eq!(
            Ticks(-Ticks::from_micros(18 * MICROS_PER_SECOND).0).hundredths_of(MICROS_PER_HOUR),
            -1
        );
        assert_eq!(
            Ticks::from_micros(168 * MICROS_PER_HOUR).hundredths_of(MICROS_PER_HOUR),
            16_800
        );
        assert_eq!(
            Ticks::from_micros(45 * MICROS_PER_MINUTE).hundredths_of(MICROS_PER_MINUTE),
            4_500
        );
    }

    #[test]
    fn hundredths_are_written_with_two_decimals() {
        assert_eq!(format_hundredths(1250), "12.50");
        assert_eq!(format_hundredths(0), "0.00");
        assert_eq!(format_hundredths(7), "0.07");
        assert_eq!(format_hundredths(-7), "-0.07");
        assert_eq!(format_hundredths(16_800), "168.00");
    }

    #[test]
    fn overlapping_and_touching_intervals_merge_and_empty_ones_vanish() {
        let mut v = vec![
            Interval::new(10, 20),
            Interval::new(0, 5),
            Interval::new(5, 7),
            Interval::new(15, 30),
            Interval::new(40, 40),
            Interval::new(50, 45),
            Interval::new(31, 32),
        ];
        merge_intervals(&mut v);
        assert_eq!(
            v,
            vec![Interval::new(0, 7), Interval::new(10, 30), Interval::new(31, 32)]
        );
    }

    #[test]
    fn clipping_keeps_only_the_common_part() {
        let w = Interval::new(10, 20);
        assert_eq!(Interval::new(0, 15).clip(w), Interval::new(10, 15));
        assert!(Interval::new(0, 5).clip(w).is_empty());
        assert_eq!(Interval::new(0, 5).clip(w).len(), 0);
    }
}
