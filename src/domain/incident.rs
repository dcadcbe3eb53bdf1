//! Incidents: when a store is down within its business hours, by its polls alone.
//!
//! A store is down once its last `down_after` polls taken within its business hours are all
//! inactive; the incident opens at the first of them. It resolves once `up_after`
//! consecutive polls within business hours are active, at the first of those. Polls outside
//! business hours neither open an incident nor count toward one (nor toward resolving it).
//! The incidents are a function of the store's polls in time order, never of the order the
//! polls arrived in: a late poll is evaluated where it belongs.

use super::hours::{HoursRow, open_intervals};
use super::status::Poll;
use super::time::{Interval, Timestamp};
use super::zone::ZoneClock;

/// How many polls open and resolve an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Consecutive inactive polls within business hours that open an incident (at least 1).
    pub down_after: u32,
    /// Consecutive active polls within business hours that resolve it (at least 1).
    pub up_after: u32,
}

impl Rules {
    /// Gatus's failure threshold and Uptime Kuma's retries: two polls down; one up.
    pub const DEFAULT: Rules = Rules {
        down_after: 2,
        up_after: 1,
    };
}

impl Default for Rules {
    fn default() -> Self {
        Rules::DEFAULT
    }
}

/// A period a store was down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incident {
    /// The first inactive poll of the run that opened it.
    pub opened_at: Timestamp,
    /// The first active poll of the run that resolved it; `None`: still open.
    pub resolved_at: Option<Timestamp>,
    /// The inactive polls within business hours from its opening to its resolution.
    pub inactive_polls: u32,
}

/// The polls of `polls` (in time order) taken while a store with these weekly hours is
/// open, its zone's `clock` covering them; no rows at all means open around the clock, as
/// reports read them.
pub fn within_hours(polls: &[Poll], rows: &[HoursRow], clock: &ZoneClock) -> Vec<Poll> {
    let (Some(first), Some(last)) = (polls.first(), polls.last()) else {
        return Vec::new();
    };
    if rows.is_empty() {
        return polls.to_vec();
    }
    let window = Interval::new(first.at.micros(), last.at.micros() + 1);
    let mut open = Vec::new();
    open_intervals(rows, clock, window, &mut open);
    polls
        .iter()
        .copied()
        .filter(|p| {
            let at = p.at.micros();
            // `open` is sorted and merged: the last interval starting at or before `at`.
            let i = open.partition_point(|o| o.start <= at);
            i > 0 && at < open[i - 1].end
        })
        .collect()
}

/// A run of equal statuses among a store's polls within business hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Its first poll.
    pub start: Timestamp,
    pub active: bool,
    /// How many polls it has had so far.
    pub length: u32,
}

/// Where a store stands after its polls within business hours so far: all the next poll
/// needs, so that polls arriving in time order continue from it without reading any older.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The run the last poll belongs to.
    pub run: Option<Run>,
    /// The incident open, if the store is down.
    pub open: Option<Incident>,
}

/// What a poll changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The store went down: this incident opened (its first inactive polls counted).
    Opened(Incident),
    /// The open incident resolved (`resolved_at` set).
    Resolved(Incident),
}

impl Health {
    /// Takes the next poll within business hours, later than every one before.
    pub fn step(&mut self, poll: Poll, rules: Rules) -> Option<Change> {
        let (down_after, up_after) = (rules.down_after.max(1), rules.up_after.max(1));
        let run = match self.run {
            Some(run) if run.active == poll.active => Run {
                length: run.length + 1,
                ..run
            },
            _ => Run {
                start: poll.at,
                active: poll.active,
                length: 1,
            },
        };
        self.run = Some(run);
        match self.open.as_mut() {
            None if !poll.active && run.length >= down_after => {
                let opened = Incident {
                    opened_at: run.start,
                    resolved_at: None,
                    inactive_polls: run.length,
                };
                self.open = Some(opened);
                Some(Change::Opened(opened))
            }
            None => None,
            Some(incident) if !poll.active => {
                incident.inactive_polls += 1;
                None
            }
            Some(incident) if run.length >= up_after => {
                incident.resolved_at = Some(run.start);
                let resolved = *incident;
                self.open = None;
                Some(Change::Resolved(resolved))
            }
            Some(_) => None,
        }
    }
}

/// The incidents of a store whose polls within business hours are `polls`, in time order.
pub fn incidents(polls: &[Poll], rules: Rules) -> Vec<Incident> {
    let mut health = Health::default();
    let mut found = Vec::new();
    for &poll in polls {
        if let Some(Change::Resolved(incident)) = health.step(poll, rules) {
            found.push(incident);
        }
    }
    found.extend(health.open);
    found
}

/// Where a store's incidents can be evaluated afresh once its polls change after `polls`
/// (its polls within business hours before the change, in time order; `whole`: from its
/// first), given its incidents evaluated so far: the index of the last poll after which the
/// store is surely up, whatever comes later. That is an active poll no incident spans, and
/// if an incident resolved at the start of its run of active polls, a run long enough by
/// then (`up_after`) for the resolution to hold. From there on [`incidents`] of the polls
/// gives what it gives of them all, and the incidents resolved by then stay. `None`: no such
/// poll among these; read further back, or from the first poll.
pub fn fresh_start(polls: &[Poll], whole: bool, known: &[Incident], rules: Rules) -> Option<usize> {
    let up_after = rules.up_after.max(1) as usize;
    let mut run_start = 0;
    let mut found = None;
    for (i, p) in polls.iter().enumerate() {
        if !p.active {
            run_start = i + 1;
            continue;
        }
        let spanned = known
            .iter()
            .any(|k| k.opened_at <= p.at && k.resolved_at.is_none_or(|r| p.at < r));
        // The run's first poll, if the read polls hold it: an incident may have resolved there.
        let begins = (run_start > 0 || whole).then(|| polls[run_start].at);
        let resolved_at_start = known
            .iter()
            .any(|k| k.resolved_at.is_some() && k.resolved_at == begins);
        let long_enough = i + 1 - run_start >= up_after;
        if !spanned && (long_enough || (begins.is_some() && !resolved_at_start)) {
            found = Some(i);
        }
    }
    found
}

/// A store's health and incidents after new polls within business hours that all follow
/// `health`'s (in time order): stepped on from it, no older poll read. `open` is the stored
/// open incident (`health.open`) with its key.
pub fn advance<K: Copy>(health: &mut Health, open: Option<K>, polls: &[Poll], rules: Rules) -> Vec<Edit<K>> {
    let stored: Vec<(K, Incident)> = open.zip(health.open).into_iter().collect();
    let mut fresh = Vec::new();
    for &poll in polls {
        if let Some(Change::Resolved(incident)) = health.step(poll, rules) {
            fresh.push(incident);
        }
    }
    fresh.extend(health.open);
    reconcile(&stored, &fresh)
}

/// A store's health and incidents evaluated afresh once polls at `cut` or later changed.
/// `polls` are its polls within business hours from some instant on, in time order, the
/// changed ones included; `stored` its stored incidents not resolved before the first of
/// them, in time order; `whole`: `polls` go back to its first poll. `None` when no fresh
/// start lies before `cut` and there are older polls: read further back.
pub fn reevaluate<K: Copy>(
    polls: &[Poll],
    cut: Timestamp,
    stored: &[(K, Incident)],
    whole: bool,
    rules: Rules,
) -> Option<(Health, Vec<Edit<K>>)> {
    let before = polls.partition_point(|p| p.at < cut);
    let known: Vec<Incident> = stored.iter().map(|s| s.1).collect();
    let (start, kept_until) = match fresh_start(&polls[..before], whole, &known, rules) {
        Some(i) => (i, Some(polls[i].at)),
        None if whole => (0, None),
        None => return None,
    };
    let mut health = Health::default();
    let mut fresh = Vec::new();
    for &poll in &polls[start..] {
        if let Some(Change::Resolved(incident)) = health.step(poll, rules) {
            fresh.push(incident);
        }
    }
    fresh.extend(health.open);
    // The incidents resolved by the fresh start stay as they are.
    let affected: Vec<(K, Incident)> = stored
        .iter()
        .copied()
        .filter(|(_, i)| kept_until.is_none_or(|t| i.resolved_at.is_none_or(|r| r > t)))
        .collect();
    Some((health, reconcile(&affected, &fresh)))
}

/// What an edit tells those who follow incidents. An incident is news while it is open or
/// if it resolved at `since` or later: a backfill of history, or a first load, records
/// the incidents of long ago without telling anyone. A change of an incident someone was
/// told about is always told: its resolution, its reopening, or its withdrawal.
pub fn notices<K>(edit: &Edit<K>, since: Timestamp) -> Vec<Notice> {
    match *edit {
        Edit::New(i) if i.resolved_at.is_none_or(|r| r >= since) => {
            let mut told = vec![Notice::Opened(i)];
            told.extend(i.resolved_at.map(|_| Notice::Resolved(i)));
            told
        }
        Edit::New(_) => Vec::new(),
        Edit::Changed { old, new, .. } => match (old.resolved_at, new.resolved_at) {
            (None, Some(_)) => vec![Notice::Resolved(new)],
            (Some(_), None) => vec![Notice::Opened(new)],
            _ => Vec::new(),
        },
        Edit::Withdrawn { old, .. } if old.resolved_at.is_none() => vec![Notice::Withdrawn(old)],
        Edit::Withdrawn { .. } => Vec::new(),
    }
}

/// What followers of incidents are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The store went down (or an incident resolved before opened again).
    Opened(Incident),
    /// The store came back up.
    Resolved(Incident),
    /// Polls that came late show that the store was not down after all.
    Withdrawn(Incident),
}

/// How polls `at` or later may change incidents, for one store: the fresh start's instant
/// (see [`fresh_start`]) and what was stored from it on.
///
/// An incident evaluated afresh takes the place of the stored one it overlaps first, keeping
/// its key (a late active poll that splits an incident keeps the first half's key; a late
/// inactive one that joins two keeps the earlier's); a stored incident that no new one
/// overlaps any more, or one whose place was taken, is withdrawn.
pub fn reconcile<K: Copy>(stored: &[(K, Incident)], fresh: &[Incident]) -> Vec<Edit<K>> {
    let mut taken: Vec<Option<K>> = vec![None; fresh.len()];
    let mut edits = Vec::new();
    let mut j = 0;
    for &(key, old) in stored {
        while j < fresh.len() && fresh[j].resolved_at.is_some_and(|r| r <= old.opened_at) {
            j += 1;
        }
        if j < fresh.len() && taken[j].is_none() && overlaps(&fresh[j], &old) {
            taken[j] = Some(key);
            if fresh[j] != old {
                edits.push(Edit::Changed {
                    key,
                    old,
                    new: fresh[j],
                });
            }
        } else {
            edits.push(Edit::Withdrawn { key, old });
        }
    }
    for (new, key) in fresh.iter().zip(taken) {
        if key.is_none() {
            edits.push(Edit::New(*new));
        }
    }
    edits
}

/// Whether two incidents share an instant (an open one lasts for ever).
fn overlaps(a: &Incident, b: &Incident) -> bool {
    let before = |x: &Incident, y: &Incident| x.resolved_at.is_some_and(|r| r <= y.opened_at);
    !before(a, b) && !before(b, a)
}

/// A change of a store's stored incidents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit<K> {
    /// An incident not stored before.
    New(Incident),
    /// A stored incident, changed (resolved, reopened, or counted anew).
    Changed { key: K, old: Incident, new: Incident },
    /// A stored incident the polls no longer show.
    Withdrawn { key: K, old: Incident },
}

#[cfg(test)]
mod tests {
    use super::super::zone::Zone;
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn within(list: &[Poll], rows: &[HoursRow], zone: Zone) -> Vec<Poll> {
        let last = list[list.len() - 1].at.micros();
        within_hours(list, rows, &ZoneClock::new(zone, list[0].at, Timestamp(last + 1)))
    }

    fn polls(statuses: &str) -> Vec<Poll> {
        statuses
            .chars()
            .enumerate()
            .map(|(i, c)| poll(at(i as i64), c == 'u'))
            .collect()
    }

    fn at(hour: i64) -> Timestamp {
        Timestamp(hour * HOUR)
    }

    fn poll(at: Timestamp, active: bool) -> Poll {
        Poll { at, active }
    }

    #[test]
    fn two_inactive_polls_open_at_the_first_and_an_active_one_resolves() {
        let found = incidents(&polls("uuddduu"), Rules::default());
        assert_eq!(
            found,
            [Incident {
                opened_at: at(2),
                resolved_at: Some(at(5)),
                inactive_polls: 3
            }]
        );
    }

    #[test]
    fn one_inactive_poll_alone_opens_nothing() {
        assert!(incidents(&polls("ududuudu"), Rules::default()).is_empty());
    }

    #[test]
    fn an_incident_still_down_stays_open() {
        let found = incidents(&polls("udd"), Rules::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].resolved_at, None);
        assert_eq!(found[0].inactive_polls, 2);
    }

    #[test]
    fn up_after_counts_consecutive_active_polls_and_resolves_at_the_first() {
        let rules = Rules {
            down_after: 1,
            up_after: 2,
        };
        let found = incidents(&polls("dudduud"), rules);
        assert_eq!(
            found,
            [
                Incident {
                    opened_at: at(0),
                    resolved_at: Some(at(4)),
                    inactive_polls: 3
                },
                Incident {
                    opened_at: at(6),
                    resolved_at: None,
                    inactive_polls: 1
                }
            ]
        );
    }

    proptest::proptest! {
        /// Evaluated from a fresh start, the incidents are those of every poll: what lets a
        /// push evaluate a store from a few polls back instead of its whole history.
        #[test]
        fn evaluating_from_a_fresh_start_gives_the_incidents_of_every_poll(
            statuses in proptest::collection::vec(proptest::bool::ANY, 0..60),
            cut in 0usize..60,
            down_after in 1u32..4,
            up_after in 1u32..4,
        ) {
            let rules = Rules { down_after, up_after };
            let all: Vec<Poll> = statuses
                .iter()
                .enumerate()
                .map(|(i, &active)| poll(at(i as i64), active))
                .collect();
            let whole = incidents(&all, rules);
            let cut = cut.min(all.len());
            let known = incidents(&all[..cut], rules);
            let start = fresh_start(&all[..cut], true, &known, rules).unwrap_or(0);
            let mut pieced: Vec<Incident> = known
                .iter()
                .copied()
                .filter(|i| i.resolved_at.is_some_and(|r| r <= all[start].at))
                .collect();
            pieced.extend(incidents(&all[start..], rules));
            if start == 0 {
                pieced = incidents(&all, rules);
            }
            proptest::prop_assert_eq!(&pieced, &whole);

            // Stepped poll by poll, each incident is told once opened and once resolved.
            let mut health = Health::default();
            let (mut opened, mut resolved) = (Vec::new(), Vec::new());
            for &poll in &all {
                match health.step(poll, rules) {
                    Some(Change::Opened(i)) => opened.push(i.opened_at),
                    Some(Change::Resolved(i)) => resolved.push(i),
                    None => {}
                }
            }
            let opened_whole: Vec<Timestamp> = whole.iter().map(|i| i.opened_at).collect();
            proptest::prop_assert_eq!(opened, opened_whole);
            let resolved_whole: Vec<Incident> = whole.iter().copied().filter(|i| i.resolved_at.is_some()).collect();
            proptest::prop_assert_eq!(resolved, resolved_whole);
        }
    }

    /// A store's incidents as a database keeps them, fed polls in batches.
    #[derive(Default)]
    struct Stored {
        polls: Vec<Poll>,
        incidents: Vec<(u32, Incident)>,
        health: Health,
        open_key: Option<u32>,
        last: Option<Timestamp>,
        keys: u32,
    }

    impl Stored {
        fn take(&mut self, mut batch: Vec<Poll>, rules: Rules, look_back: usize) {
            batch.sort_by_key(|p| p.at);
            batch.retain(|p| !self.polls.iter().any(|q| q.at == p.at));
            batch.dedup_by_key(|p| p.at);
            let Some(first) = batch.first().copied() else {
                return;
            };
            self.polls.extend(&batch);
            self.polls.sort_by_key(|p| p.at);
            let edits = if self.last.is_none_or(|l| first.at > l) {
                advance(&mut self.health, self.open_key, &batch, rules)
            } else {
                let cut = self.polls.partition_point(|p| p.at < first.at);
                let from = cut.saturating_sub(look_back);
                let read = |from: usize| {
                    let t = self.polls[from].at;
                    let stored: Vec<(u32, Incident)> = self
                        .incidents
                        .iter()
                        .copied()
                        .filter(|(_, i)| i.resolved_at.is_none_or(|r| r > t))
                        .collect();
                    reevaluate(&self.polls[from..], first.at, &stored, from == 0, rules)
                };
                let (health, edits) = read(from).or_else(|| read(0)).unwrap();
                self.health = health;
                edits
            };
            for edit in edits {
                match edit {
                    Edit::New(i) => {
                        self.keys += 1;
                        self.incidents.push((self.keys, i));
                    }
                    Edit::Changed { key, new, .. } => {
                        self.incidents.iter_mut().find(|(k, _)| *k == key).unwrap().1 = new;
                    }
                    Edit::Withdrawn { key, .. } => self.incidents.retain(|(k, _)| *k != key),
                }
            }
            self.incidents.sort_by_key(|(_, i)| i.opened_at);
            self.open_key = self
                .incidents
                .iter()
                .find(|(_, i)| i.resolved_at.is_none())
                .map(|(k, _)| *k);
            self.last = self.polls.last().map(|p| p.at);
        }
    }

    proptest::proptest! {
        /// Polls in batches of any order and size, repeated or not, give the incidents of
        /// all of them taken in time order: stepped on when a batch follows the polls
        /// before, evaluated afresh from a few polls back (or from the first) when not.
        #[test]
        fn polls_in_any_order_give_the_incidents_of_the_polls_in_time_order(
            statuses in proptest::collection::vec(proptest::bool::ANY, 1..50),
            order in proptest::collection::vec(0usize..1000, 1..50),
            sizes in proptest::collection::vec(1usize..8, 1..50),
            look_back in 0usize..6,
            down_after in 1u32..4,
            up_after in 1u32..4,
        ) {
            let rules = Rules { down_after, up_after };
            let all: Vec<Poll> = statuses
                .iter()
                .enumerate()
                .map(|(i, &active)| poll(at(i as i64), active))
                .collect();
            // An arrival order: mostly in time, some polls moved, some sent twice.
            let mut arrivals: Vec<Poll> = all.clone();
            for (i, &o) in order.iter().enumerate() {
                let (a, b) = (i % all.len(), o % all.len());
                if o % 3 == 0 { arrivals.swap(a, b) } else if o % 7 == 0 { arrivals.push(all[b]) }
            }
            let mut stored = Stored::default();
            let mut sizes = sizes.iter().cycle();
            let mut rest = &arrivals[..];
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                stored.take(rest[..n].to_vec(), rules, look_back);
                rest = &rest[n..];
            }
            let got: Vec<Incident> = stored.incidents.iter().map(|(_, i)| *i).collect();
            proptest::prop_assert_eq!(got, incidents(&all, rules));
            let open = stored.incidents.iter().filter(|(_, i)| i.resolved_at.is_none()).count();
            proptest::prop_assert!(open <= 1);
        }
    }

    fn utc(s: &str) -> Timestamp {
        Timestamp(
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
                .unwrap()
                .and_utc()
                .timestamp_micros(),
        )
    }

    #[test]
    fn business_hours_follow_the_stores_clock_across_a_dst_change() {
        // Open 09:00-17:00 every day in Chicago, which moved from UTC-6 to UTC-5 on Sunday
        // 2023-03-12.
        let rows: Vec<HoursRow> = (0..7)
            .map(|day| HoursRow {
                day: super::super::hours::Weekday::new(day).unwrap(),
                start: super::super::hours::LocalTime::from_micros(9 * HOUR).unwrap(),
                end: super::super::hours::LocalTime::from_micros(17 * HOUR).unwrap(),
            })
            .collect();
        let list = [
            poll(utc("2023-03-11 14:30"), false), // 08:30 CST: closed
            poll(utc("2023-03-11 15:30"), false), // 09:30 CST: open
            poll(utc("2023-03-13 13:30"), false), // 08:30 CDT: closed (07:30 on the old offset)
            poll(utc("2023-03-13 14:30"), false), // 09:30 CDT: open (08:30 on the old offset)
            poll(utc("2023-03-13 21:30"), true),  // 16:30 CDT: open
            poll(utc("2023-03-13 22:30"), false), // 17:30 CDT: closed (16:30 on the old offset)
        ];
        let zone: Zone = "America/Chicago".parse().unwrap();
        let inside = within(&list, &rows, zone);
        assert_eq!(inside, [list[1], list[3], list[4]]);
        assert_eq!(
            incidents(&inside, Rules::default()),
            [Incident {
                opened_at: list[1].at,
                resolved_at: Some(list[4].at),
                inactive_polls: 2
            }]
        );
    }

    #[test]
    fn polls_outside_business_hours_are_not_counted() {
        // Open Monday 09:00–17:00 UTC; 1970-01-05 was a Monday (epoch day 4).
        let rows = [HoursRow {
            day: super::super::hours::Weekday::new(0).unwrap(),
            start: super::super::hours::LocalTime::from_micros(9 * HOUR).unwrap(),
            end: super::super::hours::LocalTime::from_micros(17 * HOUR).unwrap(),
        }];
        let monday = 4 * 24;
        let list = [
            poll(at(monday + 8), false),
            poll(at(monday + 9), false),
            poll(at(monday + 16), true),
            poll(at(monday + 17), false),
            poll(at(monday + 18), false),
        ];
        let zone: Zone = "UTC".parse().unwrap();
        let inside = within(&list, &rows, zone);
        assert_eq!(inside, [list[1], list[2]]);
        assert!(incidents(&inside, Rules::default()).is_empty());
        assert_eq!(within(&list, &[], zone), list, "no rows: open around the clock");
    }

    #[test]
    fn reconciling_keeps_keys_of_overlapping_incidents_and_withdraws_the_rest() {
        let inc = |o: i64, r: Option<i64>, n: u32| Incident {
            opened_at: at(o),
            resolved_at: r.map(at),
            inactive_polls: n,
        };
        // Unchanged: nothing to do.
        assert!(reconcile(&[(1, inc(2, Some(5), 3))], &[inc(2, Some(5), 3)]).is_empty());
        // Resolved since: changed, same key.
        assert_eq!(
            reconcile(&[(1, inc(2, None, 3))], &[inc(2, Some(5), 3)]),
            [Edit::Changed {
                key: 1,
                old: inc(2, None, 3),
                new: inc(2, Some(5), 3)
            }]
        );
        // Split by a late active poll: the first half keeps the key, the second is new.
        assert_eq!(
            reconcile(&[(1, inc(2, None, 4))], &[inc(2, Some(4), 2), inc(5, None, 2)]),
            [
                Edit::Changed {
                    key: 1,
                    old: inc(2, None, 4),
                    new: inc(2, Some(4), 2)
                },
                Edit::New(inc(5, None, 2))
            ]
        );
        // Joined by a late inactive poll: the earlier keeps its key, the later is withdrawn.
        assert_eq!(
            reconcile(
                &[(1, inc(2, Some(4), 2)), (2, inc(5, None, 2))],
                &[inc(2, None, 5)]
            ),
            [
                Edit::Changed {
                    key: 1,
                    old: inc(2, Some(4), 2),
                    new: inc(2, None, 5)
                },
                Edit::Withdrawn {
                    key: 2,
                    old: inc(5, None, 2)
                }
            ]
        );
        // Gone altogether (a late active poll between its two inactive ones).
        assert_eq!(
            reconcile(&[(1, inc(2, None, 2))], &[]),
            [Edit::Withdrawn {
                key: 1,
                old: inc(2, None, 2)
            }]
        );
    }
}
