//! The report's rows as written: minutes for the last hour, hours for the day and week,
//! rounded half away from zero to two decimals.

use std::fmt;

use super::time::{MICROS_PER_HOUR, MICROS_PER_MINUTE, format_hundredths};
use super::uptime::Uptime;

pub const HEADER: &str = "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,downtime_last_day,downtime_last_week";

/// A report row's six figures in hundredths of their unit (minutes for the hour, hours for
/// the day and the week), in the order of the CSV columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rounded(pub [i64; 6]);

impl From<&Uptime> for Rounded {
    fn from(u: &Uptime) -> Self {
        let minutes = |t: super::time::Ticks| t.hundredths_of(MICROS_PER_MINUTE);
        let hours = |t: super::time::Ticks| t.hundredths_of(MICROS_PER_HOUR);
        Rounded([
            minutes(u.last_hour.up),
            hours(u.last_day.up),
            hours(u.last_week.up),
            minutes(u.last_hour.down),
            hours(u.last_day.down),
            hours(u.last_week.down),
        ])
    }
}

impl Rounded {
    /// The figures as numbers, for APIs that return them as such.
    pub fn values(self) -> [f64; 6] {
        self.0.map(|h| h as f64 / 100.0)
    }
}

/// One report line: `store_id,` then the six figures, each with two decimals.
pub struct ReportLine<'a> {
    pub store_id: &'a str,
    pub figures: Rounded,
}

impl fmt::Display for ReportLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.store_id)?;
        for figure in self.figures.0 {
            write!(f, ",{}", format_hundredths(figure))?;
        }
        Ok(())
    }
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
    pub now: Option<super::Timestamp>,
    pub rows: Vec<StoreReport>,
}
