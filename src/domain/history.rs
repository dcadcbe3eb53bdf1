//! How poll history is cut into weeks and which partitions retention lets go.
//!
//! Polls are stored a week to a partition (Monday 00:00 UTC to the next), so that history
//! is pruned by dropping whole weeks; weeks more than 53 weeks older than the newest share
//! coarse partitions of up to 52 weeks (`migrations/…_old_polls_in_coarse_partitions.sql`),
//! so that however old the polls that arrive, the partitions stay few. A partition goes once
//! all of it is older than the retention's cut, `--keep-polls-days` before the newest poll:
//! at least that many days are kept, and at most a week more (a coarse partition, all of
//! whose time is old already, more). Each store's last poll before the kept partitions
//! stays, so a report whose week starts at or after [`kept_from`] reads exactly what it read
//! before.

use super::time::{MICROS_PER_DAY, Timestamp};

/// A week in microseconds.
pub const WEEK_MICROS: i64 = 7 * MICROS_PER_DAY;

/// 1970-01-05 00:00 UTC, the first Monday of the Unix epoch (a Thursday).
const FIRST_MONDAY: i64 = 4 * MICROS_PER_DAY;

/// The fewest days `--keep-polls-days` may keep (other than 0, all): a report reads the week
/// before its *now*, which by default is the newest poll.
pub const MIN_KEEP_DAYS: u32 = 7;

/// The start of the week (Monday 00:00 UTC) that holds `at`.
pub fn week_of(at: Timestamp) -> Timestamp {
    Timestamp(at.0 - (at.0 - FIRST_MONDAY).rem_euclid(WEEK_MICROS))
}

/// The weeks `polls` fall in, each once, oldest first.
pub fn weeks_of(polls: impl IntoIterator<Item = Timestamp>) -> Vec<Timestamp> {
    let mut weeks: Vec<Timestamp> = polls.into_iter().map(week_of).collect();
    weeks.sort_unstable();
    weeks.dedup();
    weeks
}

/// A partition's time: from its first Monday to its end (a week later, or more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The partitions of `stored` (oldest first) that retention of `keep_days` lets go when the
/// newest poll is `newest`: those that end at or before the cut, `keep_days` before
/// `newest`. None when `keep_days` is 0 (keep everything).
pub fn partitions_to_prune(stored: &[Span], newest: Timestamp, keep_days: u32) -> Vec<Span> {
    if keep_days == 0 {
        return Vec::new();
    }
    let cut = newest.0.saturating_sub(i64::from(keep_days) * MICROS_PER_DAY);
    stored.iter().copied().filter(|span| span.end.0 <= cut).collect()
}

/// Where complete history begins once the partition `span` has been pruned: its end.
pub fn kept_from(span: Span) -> Timestamp {
    span.end
}

/// Whether `keep_days` is a retention this service takes: 0 (keep all) or at least a week.
pub fn check_keep_days(keep_days: u32) -> Result<u32, String> {
    if keep_days == 0 || keep_days >= MIN_KEEP_DAYS {
        Ok(keep_days)
    } else {
        Err(format!(
            "{keep_days} days is less than a report's week: keep at least {MIN_KEEP_DAYS} days of polls, or 0 to keep them all"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

    fn at(text: &str) -> Timestamp {
        Timestamp::from_datetime(text.parse::<DateTime<Utc>>().unwrap())
    }

    #[test]
    fn weeks_start_on_mondays_at_midnight_utc_before_and_after_the_epoch() {
        for text in [
            "2023-01-25T18:13:22.479220Z",
            "2023-01-23T00:00:00Z",
            "2023-01-22T23:59:59.999999Z",
            "1969-12-31T12:00:00Z",
            "2000-01-01T00:00:00Z",
        ] {
            let t = at(text);
            let week = week_of(t).to_datetime().unwrap();
            assert_eq!(week.weekday(), Weekday::Mon, "{text}");
            assert_eq!(
                (week.hour(), week.minute(), week.nanosecond()),
                (0, 0, 0),
                "{text}"
            );
            assert!(week_of(t) <= t && t.0 < week_of(t).0 + WEEK_MICROS, "{text}");
        }
        assert_eq!(week_of(at("2023-01-25T18:13:22Z")), at("2023-01-23T00:00:00Z"));
        assert_eq!(week_of(at("2023-01-22T23:59:59Z")), at("2023-01-16T00:00:00Z"));
    }

    #[test]
    fn a_partition_goes_only_once_all_of_it_is_older_than_the_cut() {
        let week = |start: &str| Span {
            start: at(start),
            end: Timestamp(at(start).0 + WEEK_MICROS),
        };
        // A coarse partition of old time, then three weeks.
        let coarse = Span {
            start: at("2021-12-27T00:00:00Z"),
            end: at("2022-06-27T00:00:00Z"),
        };
        let spans = [
            coarse,
            week("2023-01-02T00:00:00Z"),
            week("2023-01-09T00:00:00Z"),
            week("2023-01-16T00:00:00Z"),
        ];
        // Newest poll Jan 24 12:00, keep 14 days: the cut is Jan 10 12:00; the coarse
        // partition and the week of Jan 2 (to Jan 9) end before it.
        let newest = at("2023-01-24T12:00:00Z");
        assert_eq!(partitions_to_prune(&spans, newest, 14), spans[..2].to_vec());
        assert_eq!(partitions_to_prune(&spans, newest, 7), spans[..3].to_vec());
        assert!(partitions_to_prune(&spans, newest, 0).is_empty());
        assert_eq!(kept_from(spans[1]), at("2023-01-09T00:00:00Z"));
        // Keep a year: the coarse partition ends on Jun 27 2022, after the cut of Jan 24.
        assert!(partitions_to_prune(&spans, newest, 365).is_empty());
    }

    #[test]
    fn retention_is_all_or_at_least_a_week() {
        assert_eq!(check_keep_days(0), Ok(0));
        assert_eq!(check_keep_days(7), Ok(7));
        assert!(check_keep_days(6).unwrap_err().contains("at least 7 days"));
    }
}
