//! The argument groups several commands share.

use std::path::PathBuf;

use clap::Args;

use crate::domain::{Interpolation, Timestamp};
use crate::input::FileChoice;

/// Where the input files are.
#[derive(Debug, Clone, Args)]
pub(crate) struct DataArgs {
    /// Folder with the input CSVs (found by their headers, .csv or .csv.gz).
    #[arg(long, default_value = "data", env = "STORE_MONITOR_DATA")]
    pub data: PathBuf,
    /// Status file (store_id, status, timestamp_utc); default: found in --data.
    #[arg(long, value_name = "FILE")]
    pub status: Option<PathBuf>,
    /// Business-hours file (store_id, dayOfWeek or day, start_time_local, end_time_local).
    #[arg(long, value_name = "FILE")]
    pub hours: Option<PathBuf>,
    /// Time-zone file (store_id, timezone_str).
    #[arg(long, value_name = "FILE")]
    pub timezones: Option<PathBuf>,
    /// Store-groups file (store_id, group): what tokens scoped to groups see.
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,
}

impl DataArgs {
    pub(crate) fn choice(&self) -> FileChoice {
        FileChoice {
            status: self.status.clone(),
            hours: self.hours.clone(),
            timezones: self.timezones.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArgs {
    /// PostgreSQL URL; serve, worker and ingest create the database if it does not exist.
    #[arg(long, env = "DATABASE_URL", default_value = crate::db::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

/// What a load accepts: how much a new snapshot file (hours, zones, groups) may take away, and
/// how far in the future a poll may be.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct GuardArgs {
    /// Refuse a business-hours, time-zone or store-groups file that leaves more than this
    /// percentage of the stores the stored one covers without rows, or has no rows at all: a
    /// half-copied file, most likely. The load is recorded FAILED with the figures and the old data kept.
    #[arg(long, env = "STORE_MONITOR_MAX_SNAPSHOT_LOSS", default_value_t = 20.0, value_name = "PERCENT",
          value_parser = percent)]
    pub max_snapshot_loss: f64,
    /// Reject polls dated more than this after the server's clock ("1h", "30m", "90s"): one
    /// poll from the future would be every report's now. Polls before 2000 are rejected too.
    #[arg(long, env = "STORE_MONITOR_MAX_CLOCK_SKEW", default_value = "1h", value_name = "DURATION",
          value_parser = duration)]
    pub max_clock_skew: std::time::Duration,
    /// A store is down (an incident opens) once this many of its polls in a row within its
    /// business hours are inactive; polls outside business hours do not count.
    #[arg(long, env = "STORE_MONITOR_DOWN_AFTER", default_value_t = 2, value_name = "POLLS",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub down_after: u32,
    /// A store's incident resolves once this many of its polls in a row within business
    /// hours are active (at the first of them).
    #[arg(long, env = "STORE_MONITOR_UP_AFTER", default_value_t = 1, value_name = "POLLS",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub up_after: u32,
}

impl GuardArgs {
    pub(crate) fn guard(&self) -> crate::db::reload::Guard {
        crate::db::reload::Guard {
            max_loss: Some(self.max_snapshot_loss / 100.0),
            max_clock_skew: self.max_clock_skew,
            incident_rules: crate::domain::incident::Rules {
                down_after: self.down_after,
                up_after: self.up_after,
            },
        }
    }
}

/// A duration: a number and a unit, `s`, `m`, `h` or `d` (`90s`, `30m`, `1h`, `2d`).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 && n <= 365 * 86_400 => Ok(std::time::Duration::from_secs(n * seconds)),
        _ => Err(format!(
            "{text:?} is not a duration: a number and a unit, s, m, h or d (\"90s\", \"30m\", \"1h\")"
        )),
    }
}

/// How long polls are kept.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct RetentionArgs {
    /// Days of polls to keep before the newest poll; older ones are pruned a week at a time
    /// (each store's last poll before them stays, so no report of a later week changes).
    /// At least 7; 0: keep every poll.
    #[arg(long, env = "STORE_MONITOR_KEEP_POLLS_DAYS", default_value_t = 0, value_name = "DAYS",
          value_parser = keep_polls_days)]
    pub keep_polls_days: u32,
}

fn keep_polls_days(text: &str) -> Result<u32, String> {
    let days = text
        .parse::<u32>()
        .map_err(|_| format!("{text:?} is not a number of days"))?;
    crate::domain::history::check_keep_days(days)
}

fn percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

pub(crate) fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    crate::input::fields::timestamp(s.trim().as_bytes())
}

pub(crate) fn parse_interpolation(s: &str) -> Result<Interpolation, String> {
    s.parse()
}
