//! Realistic, deterministic polls for the real 2023 stores (`store-monitor generate`).
//!
//! The original poll file of the 2023 data set is lost; this stands in for it with the
//! same shape: ~14k stores, ~1.8 M polls over ~8 days ending 2023-01-25 18:13:22.47922 UTC,
//! about hourly with jitter, 74 % of polls in minutes :00–:09, missing polls, outages that
//! last hours, and some stores that appear in neither the hours nor the time-zone file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::domain::Timestamp;
use crate::domain::time::{MICROS_PER_HOUR, MICROS_PER_MINUTE, MICROS_PER_SECOND};
use crate::input::csv_file::{Column, read_rows};

/// What to generate. [`Plan::full_size`] is the data set the benchmarks measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Folder to write store_status.csv (and copies of the hours and time-zone files) into.
    pub out: PathBuf,
    /// How many stores; the real stores are sampled, plus ~3.6 % that are in neither file.
    pub stores: usize,
    /// Days of polls, ending at `end`.
    pub days: u32,
    /// Seed of the pseudo-random generator: the same seed writes the same file.
    pub seed: u64,
    /// Average polls per store over the whole span (at most one an hour).
    pub polls_per_store: u32,
    /// The newest poll.
    pub end: Timestamp,
    /// The real business hours.
    pub hours: PathBuf,
    /// The real time zones.
    pub timezones: PathBuf,
    /// Write store_status.csv.gz instead of store_status.csv.
    pub gzip: bool,
    /// Rows grouped by store instead of shuffled like the original (compresses far better).
    pub by_store: bool,
    /// Also write a store_groups.csv of this many groups (0: none).
    pub groups: usize,
}

impl Plan {
    /// The newest poll of the 2023 data set.
    pub const END: Timestamp = Timestamp(1_674_670_402_479_220);

    /// The full-size data set (14,092 stores, ~1.8 M polls) into `out`.
    pub fn full_size(out: &Path) -> Plan {
        Plan {
            out: out.to_path_buf(),
            stores: 14_092,
            days: 8,
            seed: 2023,
            polls_per_store: 128,
            end: Plan::END,
            hours: PathBuf::from("data/menu_hours.csv"),
            timezones: PathBuf::from("data/timezones.csv"),
            gzip: false,
            by_store: false,
            groups: 0,
        }
    }
}

/// SplitMix64: tiny, fast, and the same on every platform and crate version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x005E_ED0F_570E_u64)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// What a generated file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: PathBuf,
    pub stores: usize,
    pub polls: usize,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// Writes the files `args` describes.
pub fn generate(args: &Plan) -> anyhow::Result<Generated> {
    let known = known_stores(&[&args.timezones, &args.hours])?;
    let mut rng = Rng::new(args.seed);
    let stores = pick_stores(&mut rng, known, args.stores);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    copy_beside(&args.hours, &args.out, "menu_hours.csv")?;
    copy_beside(&args.timezones, &args.out, "timezones.csv")?;

    let mut polls = simulate(&mut rng, stores.len(), args);
    if !args.by_store {
        rng.shuffle(&mut polls);
    }
    let name = if args.gzip {
        "store_status.csv.gz"
    } else {
        "store_status.csv"
    };
    let path = args.out.join(name);
    crate::output::write_atomically(&path, |w| {
        if args.gzip {
            let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::best());
            write_polls(&mut gz, &stores, &polls)?;
            gz.finish()?.flush()
        } else {
            write_polls(w, &stores, &polls)
        }
    })?;
    if args.groups > 0 {
        write_groups(&args.out.join("store_groups.csv"), &stores, args.groups)?;
    }
    Ok(Generated {
        path,
        stores: stores.len(),
        polls: polls.len(),
        first: polls.iter().map(|p| p.at).min().unwrap_or(args.end),
        last: polls.iter().map(|p| p.at).max().unwrap_or(args.end),
    })
}

/// A store-groups file of `groups` groups (`group-01`, …): the stores dealt out in turn,
/// so each group has its share, and every tenth store in the next group too (a store in
/// two groups, as a franchisee's store is in a brand's).
fn write_groups(path: &Path, stores: &[String], groups: usize) -> anyhow::Result<()> {
    let width = groups.to_string().len().max(2);
    crate::output::write_atomically(path, |w| {
        writeln!(w, "store_id,group")?;
        for (i, store) in stores.iter().enumerate() {
            writeln!(w, "{store},group-{:0width$}", i % groups + 1)?;
            if i % 10 == 0 && groups > 1 {
                writeln!(w, "{store},group-{:0width$}", (i + 1) % groups + 1)?;
            }
        }
        Ok(())
    })
}

/// Every store id in the given files, sorted and unique.
fn known_stores(files: &[&Path]) -> anyhow::Result<Vec<String>> {
    const STORE: [Column; 1] = [Column { names: &["store_id"] }];
    let mut ids = std::collections::BTreeSet::new();
    for path in files {
        let mut rejected = Vec::new();
        read_rows(path, &STORE, &mut rejected, |f| {
            ids.insert(String::from_utf8_lossy(f[0]).into_owned());
            Ok(())
        })
        .with_context(|| format!("reading the store ids of {}", path.display()))?;
    }
    Ok(ids.into_iter().collect())
}

/// `count` stores: a sample of the known ones, and ~3.6 % new ones (as in the original,
/// where some polled stores had neither hours nor a time zone), a few of them UUIDs.
fn pick_stores(rng: &mut Rng, mut known: Vec<String>, count: usize) -> Vec<String> {
    let unknown = (count as f64 * 0.036).round() as usize;
    rng.shuffle(&mut known);
    known.truncate(count - unknown.min(count));
    for i in 0..count - known.len() {
        let id = if i % 25 == 0 {
            let (a, b) = (rng.next_u64(), rng.next_u64());
            format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                0x8000 | (b >> 48) & 0x3fff,
                b & 0xffff_ffff_ffff
            )
        } else {
            format!(
                "{}",
                1_000_000_000_000_000_000 + rng.below(8_000_000_000_000_000_000)
            )
        };
        known.push(id);
    }
    known
}

/// One generated poll.
#[derive(Clone, Copy, Debug)]
struct GenPoll {
    store: u32,
    at: Timestamp,
    active: bool,
}

/// Hourly slots over the span; each store is an up/down Markov chain hour to hour, and each
/// slot is polled with the probability that gives the wanted polls per store.
fn simulate(rng: &mut Rng, stores: usize, args: &Plan) -> Vec<GenPoll> {
    let hours = i64::from(args.days) * 24;
    let end = args.end.micros();
    let first_hour = end.div_euclid(MICROS_PER_HOUR) * MICROS_PER_HOUR - (hours - 1) * MICROS_PER_HOUR;
    let keep = (f64::from(args.polls_per_store) / hours as f64).min(1.0);
    let mut polls = Vec::with_capacity((stores as f64 * hours as f64 * keep * 1.02) as usize);
    for store in 0..stores {
        // Most stores fail rarely; a few are flaky. Outages last hours (recovery per hour).
        let fail = if rng.unit() < 0.05 {
            0.08 + 0.1 * rng.unit()
        } else {
            0.002 + 0.02 * rng.unit()
        };
        let recover = 0.2 + 0.4 * rng.unit();
        let mut active = rng.unit() > fail * 3.0;
        for h in 0..hours {
            active = if active {
                rng.unit() >= fail
            } else {
                rng.unit() < recover
            };
            if rng.unit() >= keep {
                continue;
            }
            let minute = if rng.unit() < 0.74 {
                rng.below(10)
            } else {
                10 + rng.below(50)
            } as i64;
            let at = first_hour
                + h * MICROS_PER_HOUR
                + minute * MICROS_PER_MINUTE
                + rng.below(60) as i64 * MICROS_PER_SECOND
                + rng.below(1_000_000) as i64;
            if at <= end {
                polls.push(GenPoll {
                    store: store as u32,
                    at: Timestamp(at),
                    active,
                });
            }
        }
    }
    // The newest poll is exactly `end`, as in the original.
    if let Some(p) = polls.iter_mut().max_by_key(|p| p.at) {
        p.at = args.end;
    }
    polls
}

fn write_polls(w: &mut impl Write, stores: &[String], polls: &[GenPoll]) -> std::io::Result<()> {
    writeln!(w, "store_id,status,timestamp_utc")?;
    for p in polls {
        let status = if p.active { "active" } else { "inactive" };
        writeln!(w, "{},{status},{}", stores[p.store as usize], p.at)?;
    }
    Ok(())
}

fn copy_beside(from: &Path, dir: &Path, name: &str) -> anyhow::Result<()> {
    let to = dir.join(name);
    if to.exists() && same_file(from, &to) {
        return Ok(());
    }
    std::fs::copy(from, &to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
