//! The polls within business hours an incident evaluator knows already, by store: those it
//! read to evaluate a store afresh, and every one stored after them. A backfill sent out of
//! time order evaluates most stores afresh every batch, and read the same history again
//! each time (a batch's cost grew with every batch before it); with these, it reads a
//! store once.
//!
//! What is known of a store is complete from an instant on: every stored poll within its
//! hours at or after it is here. Whoever keeps these must forget them whenever polls or
//! hours may have changed otherwise (another process's evaluation, a removal, a pruning, a
//! load of hours, a rolled-back evaluation).

use std::collections::{HashMap, HashSet};

use super::time::MICROS_PER_HOUR as HOUR;
use super::{Poll, Timestamp};

/// How far back from its newest poll a store's polls are kept: the evaluator's longest
/// look back (eight days) and a day.
const SPAN_MICROS: i64 = 9 * 24 * HOUR;

/// How many polls are kept in all (16 bytes each: 64 MB): a week of hourly polls of
/// 14,000 stores is 2.4 M. Past it, stores are forgotten until a quarter is free.
pub const MOST: usize = 4_000_000;

#[derive(Debug, Default)]
pub struct KnownPolls {
    stores: HashMap<i32, Known>,
    /// Polls kept, of every store.
    count: usize,
}

#[derive(Debug)]
struct Known {
    /// Every stored poll at or after it is in `polls`.
    from: Timestamp,
    /// `polls` go back to the store's first poll.
    whole: bool,
    /// In time order, one an instant.
    polls: Vec<Poll>,
}

impl KnownPolls {
    /// How many polls are kept.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The store's polls from `from` on, if every one of them is known.
    pub fn from(&self, store: i32, from: Timestamp) -> Option<&[Poll]> {
        let known = self.stores.get(&store)?;
        if !known.whole && known.from > from {
            return None;
        }
        Some(&known.polls[known.polls.partition_point(|p| p.at < from)..])
    }

    /// Every poll of the store, if all are known.
    pub fn all(&self, store: i32) -> Option<&[Poll]> {
        self.stores
            .get(&store)
            .filter(|k| k.whole)
            .map(|k| k.polls.as_slice())
    }

    /// Polls just stored for `store` (in time order, one an instant): those at an instant
    /// already known are not stored (the first poll at an instant stays), the others join
    /// what is known. Nothing is learnt of a store not known.
    pub fn stored(&mut self, store: i32, polls: &[Poll]) {
        let Some(known) = self.stores.get_mut(&store) else {
            return;
        };
        let before = known.polls.len();
        // What lies before `from` is not known to be complete.
        let from = if known.whole {
            Timestamp(i64::MIN)
        } else {
            known.from
        };
        // A few polls among many, mostly at the end: each goes in where it belongs.
        for &poll in polls.iter().filter(|p| p.at >= from) {
            match known.polls.last() {
                Some(last) if last.at < poll.at => known.polls.push(poll),
                None => known.polls.push(poll),
                Some(_) => {
                    let at = known.polls.partition_point(|p| p.at < poll.at);
                    if known.polls.get(at).is_none_or(|p| p.at != poll.at) {
                        known.polls.insert(at, poll);
                    }
                }
            }
        }
        self.count = self.count - before + known.polls.len();
        self.trim(store);
    }

    /// Every poll of `store` from `from` on (`whole`: from its first poll on).
    pub fn learn(&mut self, store: i32, from: Timestamp, whole: bool, polls: Vec<Poll>) {
        self.count += polls.len();
        if let Some(old) = self.stores.insert(store, Known { from, whole, polls }) {
            self.count -= old.polls.len();
        }
        self.trim(store);
    }

    pub fn forget(&mut self, store: i32) {
        if let Some(old) = self.stores.remove(&store) {
            self.count -= old.polls.len();
        }
    }

    /// Keeps within [`MOST`], forgetting stores other than `keep` first.
    pub fn bound(&mut self, keep: &[i32]) {
        if self.count <= MOST {
            return;
        }
        let target = MOST / 4 * 3;
        let keep: HashSet<i32> = keep.iter().copied().collect();
        let others: Vec<i32> = self
            .stores
            .keys()
            .copied()
            .filter(|s| !keep.contains(s))
            .collect();
        for store in others.into_iter().chain(keep.iter().copied()) {
            if self.count <= target {
                break;
            }
            self.forget(store);
        }
    }

    /// Keeps the store's polls within [`SPAN_MICROS`] of its newest.
    fn trim(&mut self, store: i32) {
        let Some(known) = self.stores.get_mut(&store) else {
            return;
        };
        let Some(newest) = known.polls.last() else {
            return;
        };
        let from = Timestamp(newest.at.0.saturating_sub(SPAN_MICROS));
        if known.polls[0].at >= from {
            return;
        }
        let cut = known.polls.partition_point(|p| p.at < from);
        known.polls.drain(..cut);
        known.from = known.from.max(from);
        known.whole = false;
        self.count -= cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polls(spec: &[(i64, bool)]) -> Vec<Poll> {
        spec.iter()
            .map(|&(h, active)| Poll {
                at: Timestamp(h * HOUR),
                active,
            })
            .collect()
    }

    #[test]
    fn a_store_is_known_from_where_it_was_read() {
        let mut known = KnownPolls::default();
        assert_eq!(known.from(1, Timestamp(0)), None);
        known.learn(1, Timestamp(10 * HOUR), false, polls(&[(10, true), (12, false)]));
        assert_eq!(known.from(1, Timestamp(9 * HOUR)), None, "before what was read");
        assert_eq!(
            known.from(1, Timestamp(11 * HOUR)),
            Some(&polls(&[(12, false)])[..])
        );
        known.learn(2, Timestamp(10 * HOUR), true, polls(&[(10, true)]));
        assert_eq!(
            known.from(2, Timestamp(0)),
            Some(&polls(&[(10, true)])[..]),
            "all of it"
        );
        assert_eq!(known.len(), 3);
    }

    #[test]
    fn stored_polls_join_in_time_order_and_the_first_at_an_instant_stays() {
        let mut known = KnownPolls::default();
        known.learn(
            1,
            Timestamp(10 * HOUR),
            false,
            polls(&[(10, true), (12, false), (14, true)]),
        );
        known.stored(1, &polls(&[(9, false), (11, false), (12, true), (15, false)]));
        assert_eq!(
            known.from(1, Timestamp(10 * HOUR)),
            Some(&polls(&[(10, true), (11, false), (12, false), (14, true), (15, false)])[..]),
            "what lies before 10 h is not known complete, and is left out"
        );
        assert_eq!(known.len(), 5);
        known.stored(2, &polls(&[(1, true)]));
        assert_eq!(known.from(2, Timestamp(0)), None, "a store not known stays so");
    }

    #[test]
    fn a_store_keeps_nine_days_back_from_its_newest_poll() {
        let mut known = KnownPolls::default();
        known.learn(1, Timestamp(0), true, polls(&[(0, true), (100, true)]));
        known.stored(1, &polls(&[(300, false)]));
        assert_eq!(known.from(1, Timestamp(0)), None, "no longer all of it");
        assert_eq!(
            known.from(1, Timestamp((300 - 216) * HOUR)),
            Some(&polls(&[(100, true), (300, false)])[..])
        );
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn past_the_most_other_stores_are_forgotten_first() {
        let mut known = KnownPolls::default();
        let many: Vec<Poll> = (0..(MOST / 2) as i64)
            .map(|i| Poll {
                at: Timestamp(i),
                active: true,
            })
            .collect();
        known.learn(1, Timestamp(0), true, many.clone());
        known.learn(2, Timestamp(0), true, many.clone());
        known.learn(3, Timestamp(0), true, polls(&[(1, true)]));
        known.bound(&[2, 3]);
        assert!(known.len() <= MOST);
        assert_eq!(known.from(1, Timestamp(0)), None);
        assert!(known.from(2, Timestamp(0)).is_some());
        known.forget(2);
        assert_eq!(known.len(), 1);
    }
}
