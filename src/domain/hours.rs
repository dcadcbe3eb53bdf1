//! Business hours: weekly rows of local wall times, and the real intervals they open.

use std::fmt;

use super::time::{Interval, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE, Timestamp};
use super::zone::ZoneClock;

/// A day of the week, 0 = Monday … 6 = Sunday.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weekday(u8);

impl Weekday {
    pub fn new(day: u8) -> Option<Self> {
        (day < 7).then_some(Weekday(day))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// The weekday of a day counted from 1970-01-01, which was a Thursday.
    pub fn of_epoch_day(day: i64) -> Self {
        Weekday((day + 3).rem_euclid(7) as u8)
    }
}

/// A wall-clock time of day: microseconds after local midnight, `0..=24:00`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime(i64);

impl LocalTime {
    pub const MIDNIGHT: LocalTime = LocalTime(0);
    /// `24:00`: the midnight that ends a day.
    pub const END_OF_DAY: LocalTime = LocalTime(MICROS_PER_DAY);
    /// Ends at or after this time mean the end of the day: the data writes midnight as
    /// `23:59:00` or `23:59:59`.
    const MEANS_END_OF_DAY: i64 = 23 * MICROS_PER_HOUR + 59 * MICROS_PER_MINUTE;

    pub fn from_micros(micros: i64) -> Option<Self> {
        (0..=MICROS_PER_DAY)
            .contains(&micros)
            .then_some(LocalTime(micros))
    }

    pub fn micros(self) -> i64 {
        self.0
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000;
        write!(f, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)?;
        match self.0 % 1_000_000 {
            0 => Ok(()),
            frac => write!(f, ".{frac:06}"),
        }
    }
}

/// One row of a store's weekly hours: open on `day` from `start` to `end`, local time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HoursRow {
    pub day: Weekday,
    pub start: LocalTime,
    pub end: LocalTime,
}

impl HoursRow {
    /// Opening and closing, in microseconds after the local midnight that starts `day`.
    ///
    /// An end at or after 23:59 is that day's closing midnight; an end at or before the
    /// start is on the next day (`22:00–02:00` crosses midnight, `07:15–07:15` is 24 hours).
    pub fn local_span(self) -> (i64, i64) {
        let (start, end) = (self.start.0, self.end.0);
        let end = if end >= LocalTime::MEANS_END_OF_DAY {
            MICROS_PER_DAY
        } else if end <= start {
            MICROS_PER_DAY + end
        } else {
            end
        };
        (start, end)
    }
}

/// Appends to `out` the real intervals (UTC microseconds) during which a store with these
/// weekly `rows` is open inside `window`, merged and sorted. No rows at all means open
/// around the clock.
pub fn open_intervals(rows: &[HoursRow], clock: &ZoneClock, window: Interval, out: &mut Vec<Interval>) {
    out.clear();
    if window.is_empty() {
        return;
    }
    if rows.is_empty() {
        out.push(window);
        return;
    }
    // A row opens on a local date and may close up to two local midnights later; local
    // dates are within 14 h of UTC ones. Three days either side cover every row that can
    // reach the window.
    let first_day = window.start.div_euclid(MICROS_PER_DAY) - 3;
    let last_day = (window.end - 1).div_euclid(MICROS_PER_DAY) + 1;
    for day in first_day..=last_day {
        let weekday = Weekday::of_epoch_day(day);
        let midnight = day * MICROS_PER_DAY;
        for row in rows.iter().filter(|r| r.day == weekday) {
            let (start, end) = row.local_span();
            let open = Interval::new(
                clock.to_utc(midnight + start).micros(),
                clock.to_utc(midnight + end).micros(),
            )
            .clip(window);
            if !open.is_empty() {
                out.push(open);
            }
        }
    }
    super::time::merge_intervals(out);
}

/// The window `[now - length, now)` as an interval of microseconds.
pub fn window_ending(now: Timestamp, length_micros: i64) -> Interval {
    Interval::new(now.0 - length_micros, now.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::zone::Zone;

    fn t(h: i64, m: i64) -> LocalTime {
        LocalTime::from_micros(h * MICROS_PER_HOUR + m * MICROS_PER_MINUTE).unwrap()
    }

    fn row(day: u8, start: LocalTime, end: LocalTime) -> HoursRow {
        HoursRow {
            day: Weekday::new(day).unwrap(),
            start,
            end,
        }
    }

    fn utc(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    fn open(rows: &[HoursRow], zone: &str, from: &str, to: &str) -> Vec<(i64, i64)> {
        let window = Interval::new(utc(from), utc(to));
        let clock = ZoneClock::new(
            zone.parse::<Zone>().unwrap(),
            Timestamp(window.start),
            Timestamp(window.end),
        );
        let mut out = Vec::new();
        open_intervals(rows, &clock, window, &mut out);
        out.into_iter().map(|i| (i.start, i.end)).collect()
    }

    #[test]
    fn epoch_days_have_the_right_weekday() {
        assert_eq!(Weekday::of_epoch_day(0).number(), 3); // 1970-01-01, Thursday
        assert_eq!(Weekday::of_epoch_day(-1).number(), 2);
        assert_eq!(Weekday::of_epoch_day(19_380).number(), 0); // 2023-01-23, Monday
    }

    #[test]
    fn ends_near_midnight_mean_midnight() {
        for end in [
            t(23, 59),
            LocalTime::from_micros(MICROS_PER_DAY - 1_000_000).unwrap(),
            LocalTime::END_OF_DAY,
        ] {
            assert_eq!(
                row(0, t(18, 0), end).local_span(),
                (18 * MICROS_PER_HOUR, MICROS_PER_DAY)
            );
        }
        assert_eq!(
            row(0, t(18, 0), t(23, 58)).local_span(),
            (
                18 * MICROS_PER_HOUR,
                23 * MICROS_PER_HOUR + 58 * MICROS_PER_MINUTE
            )
        );
    }

    #[test]
    fn ends_at_or_before_the_start_are_on_the_next_day() {
        assert_eq!(
            row(3, t(22, 0), t(2, 0)).local_span(),
            (22 * MICROS_PER_HOUR, 26 * MICROS_PER_HOUR)
        );
        let (s, e) = row(2, t(7, 15), t(7, 15)).local_span();
        assert_eq!(e - s, MICROS_PER_DAY);
        assert_eq!(
            row(2, LocalTime::MIDNIGHT, LocalTime::MIDNIGHT).local_span(),
            (0, MICROS_PER_DAY)
        );
    }

    #[test]
    fn a_store_without_rows_is_open_for_the_whole_window() {
        assert_eq!(
            open(&[], "America/Chicago", "2023-01-23 00:00", "2023-01-30 00:00"),
            vec![(utc("2023-01-23 00:00"), utc("2023-01-30 00:00"))]
        );
    }

    #[test]
    fn a_store_is_closed_on_weekdays_it_has_no_rows_for() {
        // Monday only, Chicago (-06:00 in January).
        let rows = [row(0, t(9, 0), t(12, 0))];
        assert_eq!(
            open(&rows, "America/Chicago", "2023-01-20 00:00", "2023-01-27 00:00"),
            vec![(utc("2023-01-23 15:00"), utc("2023-01-23 18:00"))]
        );
    }

    #[test]
    fn overnight_rows_split_at_midnight_join_into_one_interval() {
        // Friday 18:00-23:59:59 and Saturday 00:00-02:00 in New York.
        let rows = [
            row(
                4,
                t(18, 0),
                LocalTime::from_micros(MICROS_PER_DAY - 1_000_000).unwrap(),
            ),
            row(5, t(0, 0), t(2, 0)),
        ];
        assert_eq!(
            open(&rows, "America/New_York", "2023-01-26 00:00", "2023-01-29 00:00"),
            vec![(utc("2023-01-27 23:00"), utc("2023-01-28 07:00"))]
        );
    }

    #[test]
    fn a_row_that_crosses_midnight_reaches_into_the_window_from_the_day_before() {
        // Sunday 22:00 - 02:00, window starts Monday 00:00 local (UTC here).
        let rows = [row(6, t(22, 0), t(2, 0))];
        assert_eq!(
            open(&rows, "UTC", "2023-01-23 00:00", "2023-01-24 00:00"),
            vec![(utc("2023-01-23 00:00"), utc("2023-01-23 02:00"))]
        );
    }

    #[test]
    fn overlapping_rows_merge() {
        let rows = [
            row(1, t(9, 0), t(13, 0)),
            row(1, t(12, 0), t(15, 30)),
            row(1, t(9, 0), t(13, 0)),
        ];
        assert_eq!(
            open(&rows, "UTC", "2023-01-24 00:00", "2023-01-25 00:00"),
            vec![(utc("2023-01-24 09:00"), utc("2023-01-24 15:30"))]
        );
    }

    #[test]
    fn hours_across_a_spring_forward_are_shorter_in_real_time() {
        // Sunday 00:30-02:30 in New York on 2023-03-12: 02:30 reads as 03:30 EDT.
        let rows = [row(6, t(0, 30), t(2, 30))];
        assert_eq!(
            open(&rows, "America/New_York", "2023-03-11 00:00", "2023-03-13 00:00"),
            vec![(utc("2023-03-12 05:30"), utc("2023-03-12 07:30"))]
        );
    }

    #[test]
    fn hours_across_a_fall_back_take_the_first_of_the_repeated_times() {
        let rows = [row(6, t(0, 0), t(1, 30))];
        assert_eq!(
            open(&rows, "America/Chicago", "2023-11-04 00:00", "2023-11-06 00:00"),
            vec![(utc("2023-11-05 05:00"), utc("2023-11-05 06:30"))]
        );
    }

    #[test]
    fn a_whole_day_across_fall_back_lasts_25_real_hours() {
        let rows = [row(6, LocalTime::MIDNIGHT, LocalTime::END_OF_DAY)];
        let got = open(&rows, "America/Chicago", "2023-11-01 00:00", "2023-11-08 00:00");
        assert_eq!(got, vec![(utc("2023-11-05 05:00"), utc("2023-11-06 06:00"))]);
    }
}
