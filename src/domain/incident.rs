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
use super::zone::{Zone, ZoneClock};

/// How many polls open and resolve an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Consecutive inactive polls within business hours that open an incident (at least 1).
    pub down_after: u32,
    /// Consecutive active polls within business hours that resolve it (at least 1).
    pub up_after: u32,
}

impl Default for Rules {
    /// Gatus's failure threshold and Uptime Kuma's retries: two polls down; one up.
    fn default() -> Self {
        Rules {
            down_after: 2,
            up_after: 1,
        }
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

/// The polls of `polls` (in time order) taken while a store with these weekly hours, in
/// `zone`, is open; no rows at all means open around the clock, as reports read them.
pub fn within_hours(polls: &[Poll], rows: &[HoursRow], zone: Zone) -> Vec<Poll> {
    let (Some(first), Some(last)) = (polls.first(), polls.last()) else {
        return Vec::new();
    };
    if rows.is_empty() {
        return polls.to_vec();
    }
    let window = Interval::new(first.at.micros(), last.at.micros() + 1);
    let clock = ZoneClock::new(zone, first.at, Timestamp(last.at.micros() + 1));
    let mut open = Vec::new();
    open_intervals(rows, &clock, window, &mut open);
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
/// (its polls within business hours before the change, in time order), given its incidents
/// evaluated so far: the index of the last active poll that no incident spans. From there on
/// [`incidents`] of the polls gives what it gives of them all, and the incidents before it
/// stay. `None`: no such poll among these; read further back, or from the first poll.
pub fn fresh_start(polls: &[Poll], known: &[Incident]) -> Option<usize> {
    polls.iter().rposition(|p| {
        p.active
            && !known
                .iter()
                .any(|i| i.opened_at <= p.at && i.resolved_at.is_none_or(|r| p.at < r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

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
            let start = fresh_start(&all[..cut], &known).unwrap_or(0);
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
        let inside = within_hours(&list, &rows, zone);
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
        let inside = within_hours(&list, &rows, zone);
        assert_eq!(inside, [list[1], list[2]]);
        assert!(incidents(&inside, Rules::default()).is_empty());
        assert_eq!(
            within_hours(&list, &[], zone),
            list,
            "no rows: open around the clock"
        );
    }
}
