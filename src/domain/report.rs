//! The report's rows as written: minutes for the last hour, hours for the day and week,
//! rounded half away from zero to two decimals.

use std::fmt;

use super::time::{MICROS_PER_HOUR, MICROS_PER_MINUTE, format_hundredths};
use super::uptime::Uptime;

pub const HEADER: &str = "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,downtime_last_day,downtime_last_week";

/// One of a report row's six figures: time up, then down, within business hours over the
/// last hour (in minutes), day and week (in hours).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Figure {
    UptimeLastHour,
    UptimeLastDay,
    UptimeLastWeek,
    DowntimeLastHour,
    DowntimeLastDay,
    DowntimeLastWeek,
}

impl Figure {
    /// Every figure, in the CSV's order.
    pub const ALL: [Figure; 6] = [
        Figure::UptimeLastHour,
        Figure::UptimeLastDay,
        Figure::UptimeLastWeek,
        Figure::DowntimeLastHour,
        Figure::DowntimeLastDay,
        Figure::DowntimeLastWeek,
    ];

    /// Its column: in the CSV's header, and where it is stored.
    pub fn column(self) -> &'static str {
        match self {
            Figure::UptimeLastHour => "uptime_last_hour",
            Figure::UptimeLastDay => "uptime_last_day",
            Figure::UptimeLastWeek => "uptime_last_week",
            Figure::DowntimeLastHour => "downtime_last_hour",
            Figure::DowntimeLastDay => "downtime_last_day",
            Figure::DowntimeLastWeek => "downtime_last_week",
        }
    }

    /// Its place among [`Figure::ALL`] (and the CSV's figures).
    pub fn index(self) -> usize {
        self as usize
    }
}

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
    /// One figure, in hundredths.
    pub fn get(self, figure: Figure) -> i64 {
        self.0[figure.index()]
    }

    pub fn set(&mut self, figure: Figure, hundredths: i64) {
        self.0[figure.index()] = hundredths;
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_every_figure_in_order() {
        let columns: Vec<&str> = Figure::ALL.iter().map(|f| f.column()).collect();
        assert_eq!(HEADER, format!("store_id,{}", columns.join(",")));
        for (i, figure) in Figure::ALL.into_iter().enumerate() {
            assert_eq!(figure.index(), i);
        }
    }
}
