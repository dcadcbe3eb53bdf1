//! `store-monitor generate`: writes a data set and says what it holds.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::args::parse_timestamp;
use crate::domain::Timestamp;
use crate::generate::{Plan, generate};

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Folder to write store_status.csv (and copies of the hours and time-zone files) into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many stores; the real stores are sampled, plus ~3.6 % that are in neither file.
    #[arg(long, default_value_t = 14_092)]
    stores: usize,
    /// Days of polls, ending at --end.
    #[arg(long, default_value_t = 8)]
    days: u32,
    /// Seed of the pseudo-random generator: the same seed writes the same file.
    #[arg(long, default_value_t = 2023)]
    seed: u64,
    /// Average polls per store over the whole span (at most one an hour).
    #[arg(long, default_value_t = 128)]
    polls_per_store: u32,
    /// The newest poll.
    #[arg(long, default_value = "2023-01-25 18:13:22.47922 UTC", value_parser = parse_timestamp)]
    end: Timestamp,
    /// The real business hours.
    #[arg(long, default_value = "data/menu_hours.csv", value_name = "FILE")]
    hours: PathBuf,
    /// The real time zones.
    #[arg(long, default_value = "data/timezones.csv", value_name = "FILE")]
    timezones: PathBuf,
    /// Write store_status.csv.gz instead of store_status.csv.
    #[arg(long)]
    gzip: bool,
    /// Write rows grouped by store instead of shuffled like the original (compresses far better).
    #[arg(long)]
    by_store: bool,
    /// Also write store_groups.csv: the stores dealt out among this many groups
    /// (group-01, …), every tenth one in a second group too.
    #[arg(long, default_value_t = 0, value_name = "N")]
    groups: usize,
}

impl GenerateArgs {
    pub(crate) fn plan(self) -> Plan {
        Plan {
            out: self.out,
            stores: self.stores,
            days: self.days,
            seed: self.seed,
            polls_per_store: self.polls_per_store,
            end: self.end,
            hours: self.hours,
            timezones: self.timezones,
            gzip: self.gzip,
            by_store: self.by_store,
            groups: self.groups,
        }
    }
}

pub(crate) fn run(plan: &Plan) -> anyhow::Result<()> {
    let started = Instant::now();
    let generated = generate(plan)?;
    let size = std::fs::metadata(&generated.path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "generate: {} stores, {} polls from {} to {} into {} ({:.1} MB) in {:.1} s",
        generated.stores,
        generated.polls,
        generated.first,
        generated.last,
        generated.path.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
