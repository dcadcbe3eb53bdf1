//! Property tests of the engine on small random stores, against a model written from SPEC §2
//! alone.
//!
//! The model shares no code with the engine and makes no approximation:
//!
//! - Business hours: for every local date that can reach the week window (with days to
//!   spare), each row of that weekday opens at its start and closes at its end read as SPEC
//!   says (at or after 23:59: the next midnight; not after the start: the next day). Both
//!   ends are wall times turned into instants by chrono-tz's `from_local_datetime`; a
//!   repeated wall time takes the earlier instant and a skipped one the offset in force
//!   before the jump. The store is open wherever any of these intervals holds (so rows
//!   merge by themselves); a store without rows is always open.
//! - Status: a function of the instant, straight from the wording: the nearest poll (the
//!   later one on a tie), or the last poll at or before the instant (the first poll before
//!   any), over the polls at or before `now`, the first given of each instant.
//! - Uptime: the week window is cut at every point where "open" or "active" can change
//!   (interval ends, status switches, window starts). Both are constant on each piece, so
//!   their value at its start holds for all of it, and its length counts in full: exact
//!   half-microsecond ticks, compared with `assert_eq`.
//!
//! `now` is sampled around real offset changes (US, Europe, Chatham, and Lord Howe's
//! half-hour ones) so that the windows cross them, and hours rows lean towards Sundays and
//! the small hours, where those changes skip or repeat wall times.

use std::cmp::Reverse;

use chrono::{DateTime, Datelike, MappedLocalTime, NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};

use store_monitor::domain::status::normalize_polls;
use store_monitor::domain::time::{MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE, MICROS_PER_SECOND};
use store_monitor::domain::{
    Engine, HoursRow, Interpolation, LocalTime, Poll, Timestamp, Uptime, Weekday, Zone,
};

/// Zones with odd offsets, with and without daylight saving.
const ZONES: [&str; 8] = [
    "America/Chicago",
    "America/New_York",
    "America/Phoenix",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "Europe/London",
    "UTC",
];

/// The 2023 offset changes (UTC seconds) of the zones above that have them.
const TRANSITIONS: [(&str, i64); 10] = [
    ("America/New_York", 1_678_604_400), // 2023-03-12 07:00 UTC, 02:00 → 03:00
    ("America/Chicago", 1_678_608_000),  // 2023-03-12 08:00 UTC, 02:00 → 03:00
    ("Europe/London", 1_679_792_400),    // 2023-03-26 01:00 UTC, 01:00 → 02:00
    ("Pacific/Chatham", 1_680_357_600),  // 2023-04-01 14:00 UTC, 03:45 → 02:45
    ("Australia/Lord_Howe", 1_680_361_200), // 2023-04-01 15:00 UTC, 02:00 → 01:30
    ("Pacific/Chatham", 1_695_477_600),  // 2023-09-23 14:00 UTC, 02:45 → 03:45
    ("Australia/Lord_Howe", 1_696_087_800), // 2023-09-30 15:30 UTC, 02:00 → 02:30
    ("Europe/London", 1_698_541_200),    // 2023-10-29 01:00 UTC, 02:00 → 01:00
    ("America/New_York", 1_699_164_000), // 2023-11-05 06:00 UTC, 02:00 → 01:00
    ("America/Chicago", 1_699_167_600),  // 2023-11-05 07:00 UTC, 02:00 → 01:00
];

/// The report's windows `[now - h, now)`, in the order of [`splits`].
const WINDOW_HOURS: [i64; 3] = [1, 24, 168];

/// Microseconds as half-microsecond ticks, the unit in which `NEAREST`'s midpoints are exact.
fn tick(micros: i64) -> i64 {
    2 * micros
}

fn local(micros: i64) -> LocalTime {
    LocalTime::from_micros(micros).unwrap()
}

fn local_time() -> impl Strategy<Value = LocalTime> {
    prop_oneof![
        // Whole minutes, as most data has them.
        3 => (0..24 * 60_i64).prop_map(|m| local(m * MICROS_PER_MINUTE)),
        // Any microsecond of the day.
        2 => (0..MICROS_PER_DAY).prop_map(local),
        // 01:00-04:00, where every zone here skips or repeats wall times when it changes.
        4 => (60..4 * 60_i64).prop_map(|m| local(m * MICROS_PER_MINUTE)),
        2 => (MICROS_PER_HOUR..4 * MICROS_PER_HOUR).prop_map(local),
        // The spellings of midnight.
        1 => Just(local(MICROS_PER_DAY - MICROS_PER_SECOND)),
        1 => Just(local(MICROS_PER_DAY - MICROS_PER_MINUTE)),
        1 => Just(LocalTime::END_OF_DAY),
        1 => Just(LocalTime::MIDNIGHT),
    ]
}

fn hours_row() -> impl Strategy<Value = HoursRow> {
    // Every offset change sampled here happens on a local Sunday.
    let day = prop_oneof![0..7u8, Just(6u8)];
    (day, local_time(), local_time(), proptest::bool::weighted(0.2)).prop_map(|(day, start, end, same)| {
        let start = if start == LocalTime::END_OF_DAY {
            LocalTime::MIDNIGHT
        } else {
            start
        };
        HoursRow {
            day: Weekday::new(day).unwrap(),
            start,
            // Now and then a row that opens and closes at one time: 24 hours.
            end: if same { start } else { end },
        }
    })
}

#[derive(Clone, Debug)]
struct Store {
    now: Timestamp,
    zone: Zone,
    rows: Vec<HoursRow>,
    /// In no particular order, a few instants more than once with either status.
    polls: Vec<Poll>,
}

fn store() -> impl Strategy<Value = Store> {
    let now = (
        select(&TRANSITIONS[..]),
        // How long after the change `now` is: the week window holds it up to 168 h after,
        // the day and the hour windows only shortly after.
        prop_oneof![
            -2 * MICROS_PER_DAY..9 * MICROS_PER_DAY,
            -2 * MICROS_PER_HOUR..26 * MICROS_PER_HOUR,
            -30 * MICROS_PER_MINUTE..90 * MICROS_PER_MINUTE,
            // A window that starts or ends exactly at the change.
            select(WINDOW_HOURS.map(|h| h * MICROS_PER_HOUR).to_vec()),
            Just(0),
        ],
        // Mostly the zone that changes; else any, so the fixed-offset zones see these dates.
        proptest::bool::weighted(0.7),
        select(&ZONES[..]),
    )
        .prop_map(|((own_zone, change), after, own, other)| {
            let zone = if own { own_zone } else { other };
            (
                Timestamp(change * MICROS_PER_SECOND + after),
                zone.parse::<Zone>().unwrap(),
            )
        });
    let rows = proptest::collection::vec(hours_row(), 0..6);
    // Polls from 9 days before now to 1 day after it (those are ignored), now and then on
    // the edge of a window.
    let offset = prop_oneof![
        6 => -9 * MICROS_PER_DAY..MICROS_PER_DAY,
        1 => select(WINDOW_HOURS.map(|h| -h * MICROS_PER_HOUR).to_vec()),
        1 => Just(0),
    ];
    let polls = (
        proptest::collection::btree_set(offset, 1..25),
        proptest::collection::vec(any::<bool>(), 25),
        proptest::collection::vec((any::<Index>(), any::<bool>()), 0..3),
    )
        .prop_map(|(offsets, statuses, repeats)| {
            let mut offsets: Vec<i64> = offsets.into_iter().collect();
            // At least one poll at or before now, or the engine has nothing to report.
            if offsets[0] > 0 {
                offsets[0] = -MICROS_PER_HOUR;
            }
            let mut polls: Vec<(i64, bool)> = offsets.into_iter().zip(statuses).collect();
            for (i, active) in repeats {
                let at = polls[i.index(polls.len())].0;
                polls.push((at, active));
            }
            polls
        })
        .prop_shuffle();
    (now, rows, polls).prop_map(|((now, zone), rows, polls)| Store {
        now,
        zone,
        rows,
        polls: polls
            .into_iter()
            .map(|(offset, active)| Poll {
                at: now.offset(offset),
                active,
            })
            .collect(),
    })
}

fn interpolation() -> impl Strategy<Value = Interpolation> {
    prop_oneof![Just(Interpolation::Nearest), Just(Interpolation::ForwardFill)]
}

/// Up and down ticks of the hour, day and week.
fn splits(u: &Uptime) -> [[i64; 2]; 3] {
    [
        [u.last_hour.up.0, u.last_hour.down.0],
        [u.last_day.up.0, u.last_day.down.0],
        [u.last_week.up.0, u.last_week.down.0],
    ]
}

fn engine(store: &Store, polls: &[Poll], rows: &[HoursRow], interpolation: Interpolation) -> [[i64; 2]; 3] {
    let mut polls = polls.to_vec();
    normalize_polls(&mut polls);
    let u = Engine::new(store.now, interpolation)
        .store(&polls, rows, store.zone)
        .expect("the store has a poll at or before now");
    splits(&u)
}

/// The instant (UTC microseconds) of a wall time, as SPEC §2 reads it.
fn model_instant(tz: Tz, wall: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&wall) {
        MappedLocalTime::Single(at) => at.timestamp_micros(),
        // Clocks went back, so the offset before the change is the larger one: its reading
        // is the earlier instant, whichever order chrono-tz gives them in.
        MappedLocalTime::Ambiguous(a, b) => a.timestamp_micros().min(b.timestamp_micros()),
        // Clocks jumped over `wall`. Three hours earlier is before the jump: no zone here
        // jumps by more, nor changes offset twice within a few hours.
        MappedLocalTime::None => {
            let before = tz
                .offset_from_local_datetime(&(wall - TimeDelta::hours(3)))
                .single()
                .expect("a single offset before the jump")
                .fix()
                .local_minus_utc();
            (wall - TimeDelta::seconds(before.into()))
                .and_utc()
                .timestamp_micros()
        }
    }
}

/// The intervals (UTC microseconds, some maybe empty or overlapping) that the rows open on
/// every local date that can reach the week window; `None` for a store open 24×7.
fn model_hours(now: Timestamp, zone: Zone, rows: &[HoursRow]) -> Option<Vec<(i64, i64)>> {
    if rows.is_empty() {
        return None;
    }
    let utc_date = |micros| DateTime::from_timestamp_micros(micros).unwrap().date_naive();
    // Local dates are within a day of UTC ones, and a row closes at most two local dates
    // after the one it opens on.
    let first = utc_date(now.0 - 168 * MICROS_PER_HOUR) - TimeDelta::days(4);
    let last = utc_date(now.0) + TimeDelta::days(2);
    let mut open = Vec::new();
    for date in first.iter_days().take_while(|d| *d <= last) {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap();
        let weekday = date.weekday().num_days_from_monday() as u8;
        for row in rows.iter().filter(|r| r.day.number() == weekday) {
            let (start, end) = (row.start.micros(), row.end.micros());
            let close = if end >= 23 * MICROS_PER_HOUR + 59 * MICROS_PER_MINUTE {
                midnight + TimeDelta::days(1)
            } else if end <= start {
                midnight + TimeDelta::days(1) + TimeDelta::microseconds(end)
            } else {
                midnight + TimeDelta::microseconds(end)
            };
            open.push((
                model_instant(zone.0, midnight + TimeDelta::microseconds(start)),
                model_instant(zone.0, close),
            ));
        }
    }
    Some(open)
}

/// The polls that count: at or before now, sorted, the first given of each instant.
fn model_polls(polls: &[Poll], now: Timestamp) -> Vec<Poll> {
    let mut kept: Vec<Poll> = polls.iter().copied().filter(|p| p.at <= now).collect();
    // Stable, and `dedup` keeps the first of each run.
    kept.sort_by_key(|p| p.at);
    kept.dedup_by_key(|p| p.at);
    kept
}

/// Whether the step function says active at `t` (ticks).
fn model_active(polls: &[Poll], t: i64, interpolation: Interpolation) -> bool {
    match interpolation {
        // A tie goes to the later poll, as the engine switches at the midpoint. Its value at a
        // switch point is then the one that holds just after it, which the sweep relies on.
        Interpolation::Nearest => {
            polls
                .iter()
                .min_by_key(|p| ((tick(p.at.0) - t).abs(), Reverse(p.at)))
                .unwrap()
                .active
        }
        Interpolation::ForwardFill => {
            polls
                .iter()
                .rev()
                .find(|p| tick(p.at.0) <= t)
                .unwrap_or(&polls[0])
                .active
        }
    }
}

/// Up and down ticks of the hour, day and week, by sweeping the pieces of the week window.
fn model_uptime(
    store: &Store,
    polls: &[Poll],
    rows: &[HoursRow],
    interpolation: Interpolation,
) -> [[i64; 2]; 3] {
    let now = store.now.0;
    let window_start = |hours: i64| tick(now - hours * MICROS_PER_HOUR);
    let hours = model_hours(store.now, store.zone, rows);
    let polls = model_polls(polls, store.now);

    let mut cuts: Vec<i64> = WINDOW_HOURS.iter().map(|&h| window_start(h)).collect();
    cuts.push(tick(now));
    for &(open, close) in hours.iter().flatten() {
        cuts.extend([tick(open), tick(close)]);
    }
    match interpolation {
        // The midpoint of two polls, in ticks, is the sum of their microseconds.
        Interpolation::Nearest => cuts.extend(polls.windows(2).map(|w| w[0].at.0 + w[1].at.0)),
        Interpolation::ForwardFill => cuts.extend(polls.iter().map(|p| tick(p.at.0))),
    }
    cuts.retain(|&c| (window_start(168)..=tick(now)).contains(&c));
    cuts.sort_unstable();
    cuts.dedup();

    let open_at = |t: i64| {
        hours
            .as_ref()
            .is_none_or(|h| h.iter().any(|&(open, close)| tick(open) <= t && t < tick(close)))
    };
    let mut split = [[0; 2]; 3];
    for piece in cuts.windows(2) {
        let (from, to) = (piece[0], piece[1]);
        if !open_at(from) {
            continue;
        }
        let side = if model_active(&polls, from, interpolation) {
            0
        } else {
            1
        };
        for (hours_back, window) in WINDOW_HOURS.iter().zip(&mut split) {
            // Window starts are cuts: a piece is wholly inside a window or wholly before it.
            if window_start(*hours_back) <= from {
                window[side] += to - from;
            }
        }
    }
    split
}

/// Business ticks in `[now - hours_back, now)`, by merging the model's intervals rather than
/// by the sweep.
fn model_business(store: &Store, hours_back: i64) -> i64 {
    let (from, to) = (store.now.0 - hours_back * MICROS_PER_HOUR, store.now.0);
    let Some(open) = model_hours(store.now, store.zone, &store.rows) else {
        return tick(to - from);
    };
    let mut clipped: Vec<(i64, i64)> = open
        .into_iter()
        .map(|(open, close)| (open.max(from), close.min(to)))
        .filter(|(open, close)| open < close)
        .collect();
    clipped.sort_unstable();
    let (mut total, mut reached) = (0, i64::MIN);
    for (open, close) in clipped {
        total += (close - open.max(reached)).max(0);
        reached = reached.max(close);
    }
    tick(total)
}

/// A local wall time written `YYYY-MM-DD HH:MM`.
fn wall(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

fn utc(s: &str) -> i64 {
    wall(s).and_utc().timestamp_micros()
}

#[test]
fn the_sampled_offset_changes_happen_where_the_table_says() {
    for (name, at) in TRANSITIONS {
        let tz: Tz = name.parse().unwrap();
        let offset = |secs| {
            let utc = DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            tz.offset_from_utc_datetime(&utc).fix()
        };
        assert_ne!(offset(at - 1), offset(at), "{name} at {at}");
        assert_eq!(offset(at - 3600), offset(at - 1), "{name} at {at}");
        assert_eq!(offset(at + 3600), offset(at), "{name} at {at}");
    }
}

#[test]
fn the_model_reads_skipped_and_repeated_wall_times_with_the_offset_before_the_change() {
    let tz = |name: &str| name.parse::<Tz>().unwrap();
    for (zone, local, expected) in [
        // SPEC's examples: 02:30 on a spring-forward night is 03:30 EDT; 01:30 on a
        // fall-back night is the first one, EDT.
        ("America/New_York", "2023-03-12 02:30", "2023-03-12 07:30"),
        ("America/New_York", "2023-11-05 01:30", "2023-11-05 05:30"),
        ("America/New_York", "2023-11-05 02:00", "2023-11-05 07:00"),
        // Lord Howe: +10:30 → +11:00 skips 02:00-02:30, +11:00 → +10:30 repeats 01:30-02:00.
        ("Australia/Lord_Howe", "2023-10-01 02:15", "2023-09-30 15:45"),
        ("Australia/Lord_Howe", "2023-04-02 01:45", "2023-04-01 14:45"),
        // Chatham: +12:45 → +13:45 skips 02:45-03:45, and back repeats it.
        ("Pacific/Chatham", "2023-09-24 03:00", "2023-09-23 14:15"),
        ("Pacific/Chatham", "2023-04-02 03:00", "2023-04-01 13:15"),
        ("Europe/London", "2023-03-26 01:30", "2023-03-26 01:30"),
        ("Europe/London", "2023-10-29 01:30", "2023-10-29 00:30"),
        ("Asia/Kolkata", "2023-03-12 02:30", "2023-03-11 21:00"),
    ] {
        assert_eq!(
            model_instant(tz(zone), wall(local)),
            utc(expected),
            "{zone} {local}"
        );
    }
}

#[test]
fn the_model_gives_the_whole_fall_back_sunday_25_hours() {
    let store = Store {
        now: Timestamp(utc("2023-11-07 00:00")),
        zone: "America/Chicago".parse().unwrap(),
        rows: vec![HoursRow {
            day: Weekday::new(6).unwrap(),
            start: LocalTime::MIDNIGHT,
            end: LocalTime::END_OF_DAY,
        }],
        polls: vec![],
    };
    assert_eq!(model_business(&store, 168), tick(25 * MICROS_PER_HOUR));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_engine_agrees_exactly_with_the_model(store in store(), interpolation in interpolation()) {
        prop_assert_eq!(
            engine(&store, &store.polls, &store.rows, interpolation),
            model_uptime(&store, &store.polls, &store.rows, interpolation)
        );
    }

    #[test]
    fn uptime_plus_downtime_is_the_business_time_of_each_window(
        store in store(),
        interpolation in interpolation(),
    ) {
        let split = engine(&store, &store.polls, &store.rows, interpolation);
        for (hours, [up, down]) in WINDOW_HOURS.into_iter().zip(split) {
            prop_assert!(up >= 0 && down >= 0);
            prop_assert_eq!(up + down, model_business(&store, hours), "window of {} h", hours);
        }
    }

    #[test]
    fn a_store_without_hours_rows_totals_60_minutes_24_hours_and_168_hours(
        store in store(),
        interpolation in interpolation(),
    ) {
        let split = engine(&store, &store.polls, &[], interpolation);
        for (hours, [up, down]) in WINDOW_HOURS.into_iter().zip(split) {
            prop_assert_eq!(up + down, tick(hours * MICROS_PER_HOUR));
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_of_rows_and_polls_or_on_repeating_them(
        (store, rows, polls) in reordered(),
        interpolation in interpolation(),
    ) {
        prop_assert_eq!(
            engine(&store, &polls, &rows, interpolation),
            engine(&store, &store.polls, &store.rows, interpolation)
        );
    }
}

/// A store whose polls are one per instant (repeating an instant with another status would
/// rightly change the result with the order), with its rows and polls repeated in part and
/// shuffled.
fn reordered() -> impl Strategy<Value = (Store, Vec<HoursRow>, Vec<Poll>)> {
    store().prop_flat_map(|mut store| {
        store.polls.sort_by_key(|p| p.at);
        store.polls.dedup_by_key(|p| p.at);
        let (rows, polls) = (
            with_repeats(store.rows.clone()),
            with_repeats(store.polls.clone()),
        );
        (Just(store), rows, polls)
    })
}

/// `items`, then some of them again, all shuffled.
fn with_repeats<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    let len = items.len();
    subsequence(items.clone(), 0..=len)
        .prop_map(move |again| [items.clone(), again].concat())
        .prop_shuffle()
}
