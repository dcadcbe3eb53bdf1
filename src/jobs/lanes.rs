//! Fair shares of a process's delivery workers between webhooks.
//!
//! The workers take delivery jobs from one queue, oldest first. Alone, that let a receiver
//! taking 8 s a request, or timing out, hold every worker: the jobs behind its own, other
//! webhooks' included, waited for minutes. So each webhook is a lane with a share of the
//! workers, a quarter of them ([`Lanes::share`]): it always may have that many attempts in
//! flight. It may have more only while it is quick (its attempts have typically taken under
//! [`QUICK`], and none in flight has run longer) and a share of the workers stays free
//! besides: a burst to one quick receiver is not held to a quarter of the workers, yet a
//! slow one holds no more than its share, and another webhook's first delivery always finds
//! a worker. (A quick receiver that turns slow in the middle of a burst holds what it took
//! while quick, up to all but a share of the workers, until those attempts end; its next
//! ones are held to its share.)
//!
//! A job whose lane has no room is not waited for: waiting would hold a worker as surely as
//! a request does. It is handed back to the queue (`db::queue::hand_back`) to run when the
//! lane should have room, and the worker takes the next job. When that is, the lane
//! estimates from what it sees: its attempts hold a worker for about as long as its recent
//! ones did (a moving average, or as long as the oldest in flight has run, if longer), so
//! with `n` of them in flight a place frees every `typical / n`; the jobs handed back queue
//! up behind each other at that pace (`line_ends`). A lane whose line reaches past
//! [`HORIZON`] (a receiver that times out, with thousands of events behind) hands its
//! further jobs back for a random half to whole horizon: each comes back a few times an
//! hour rather than every few seconds, and the estimate is not trusted that far ahead, in
//! case the receiver recovers. An estimate that turns out short costs a job one more trip to
//! the queue, to the end of its lane's line; a job never waits on another lane. The order of
//! one webhook's deliveries may change on the way; receivers never relied on it (retries
//! reorder them anyway).
//!
//! Shares are per process: N processes give a receiver up to N shares, each of them a
//! quarter of that process's workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How far ahead a lane's line of jobs handed back is planned.
pub const HORIZON: Duration = Duration::from_secs(300);

/// A lane whose attempts take less than this may take more than its share of the workers.
pub const QUICK: Duration = Duration::from_millis(250);

/// The least wait of a job handed back, and the least an attempt is taken to last when
/// pacing the line.
const LEAST: Duration = Duration::from_millis(50);

/// The lanes of one process's delivery workers.
pub struct Lanes {
    workers: usize,
    share: usize,
    state: Mutex<State>,
    /// Told each time an attempt ends: quick lanes' jobs wait for it.
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Attempts in flight, every lane's.
    in_flight: usize,
    /// The lanes with attempts in flight or a line ahead; the others are forgotten.
    lanes: HashMap<Uuid, Lane>,
}

/// One webhook's attempts in flight here, and its line.
#[derive(Debug)]
struct Lane {
    /// When each attempt in flight started.
    started: Vec<Instant>,
    /// How long its attempts hold a worker: a moving average of the last few.
    typical: Option<Duration>,
    /// When the last job handed back is due: the next one queues behind it.
    line_ends: Instant,
}

impl Lanes {
    /// The lanes of `workers` delivery workers.
    pub fn new(workers: usize) -> Arc<Lanes> {
        Arc::new(Lanes {
            workers,
            share: (workers / 4).max(1),
            state: Mutex::default(),
            freed: tokio::sync::Notify::new(),
        })
    }

    /// How many attempts one webhook may always have in flight here.
    pub fn share(&self) -> usize {
        self.share
    }

    /// A place in `webhook`'s lane, held until dropped; or, the lane having no room, how
    /// long its job should wait in the queue (`unit`, in `[0, 1)`, spreads the jobs past the
    /// horizon). A quick lane's job waits here a moment first: its lane frees a place in
    /// less time than the trip to the queue and back takes.
    pub async fn enter(self: &Arc<Self>, webhook: Uuid, unit: f64) -> Result<Place, Duration> {
        let deadline = tokio::time::Instant::now() + QUICK;
        loop {
            // Listening before looking: a place freed in between is not missed.
            let freed = self.freed.notified();
            match self.try_enter(webhook) {
                Ok(place) => return Ok(place),
                Err(true) if tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, freed).await;
                }
                Err(_) => return Err(self.turn(webhook, unit)),
            }
        }
    }

    /// A place in `webhook`'s lane; or, the lane having no room, whether it is quick.
    fn try_enter(self: &Arc<Self>, webhook: Uuid) -> Result<Place, bool> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Taking one more beyond a share leaves a share free for the others.
        let spare = state.in_flight + 1 + self.share <= self.workers;
        let lane = state.lanes.entry(webhook).or_insert_with(|| Lane {
            started: Vec::new(),
            typical: None,
            line_ends: now,
        });
        let quick = lane.is_quick(now);
        if lane.started.len() < self.share || (spare && quick) {
            lane.started.push(now);
            state.in_flight += 1;
            return Ok(Place {
                lanes: self.clone(),
                webhook,
                since: now,
            });
        }
        Err(quick)
    }

    /// How long a job of `webhook`'s lane, which has no room, waits in the queue.
    fn turn(&self, webhook: Uuid, unit: f64) -> Duration {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.lanes.get_mut(&webhook) {
            Some(lane) => lane.wait(now, unit),
            // Its last attempt ended in between: it has room now, or at its next trip.
            None => LEAST,
        }
    }

    fn leave(&self, webhook: Uuid, since: Instant) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.in_flight = state.in_flight.saturating_sub(1);
        let Some(lane) = state.lanes.get_mut(&webhook) else {
            return;
        };
        lane.finished(since, now);
        if lane.started.is_empty() && lane.line_ends <= now {
            state.lanes.remove(&webhook);
        }
        drop(state);
        self.freed.notify_waiters();
    }
}

impl Lane {
    /// The attempt started `since` is over.
    fn finished(&mut self, since: Instant, now: Instant) {
        if let Some(at) = self.started.iter().position(|s| *s == since) {
            self.started.swap_remove(at);
        }
        let held = now - since;
        self.typical = Some(match self.typical {
            Some(typical) => typical.mul_f64(0.75) + held.mul_f64(0.25),
            None => held,
        });
    }

    /// Whether its attempts are known to be quick, those in flight included.
    fn is_quick(&self, now: Instant) -> bool {
        self.typical.is_some_and(|t| t < QUICK) && self.started.iter().all(|s| now - *s < QUICK)
    }

    /// How long a job of this lane, which has no room, waits: its turn behind the jobs
    /// handed back before it, or, past the horizon, a random half to whole horizon.
    fn wait(&mut self, now: Instant, unit: f64) -> Duration {
        let oldest = self.started.iter().map(|s| now - *s).max().unwrap_or_default();
        let typical = self.typical.unwrap_or_default().max(oldest).max(LEAST);
        let pace = typical / self.started.len().max(1) as u32;
        let turn = self.line_ends.max(now) + pace;
        if turn - now > HORIZON {
            return HORIZON.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0);
        }
        self.line_ends = turn;
        (turn - now).max(LEAST)
    }
}

/// A place in a webhook's lane: an attempt in flight.
pub struct Place {
    lanes: Arc<Lanes>,
    webhook: Uuid,
    since: Instant,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.lanes.leave(self.webhook, self.since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane with `n` attempts in flight, started at `at`, typically taking `typical`.
    fn lane(n: usize, at: Instant, typical: Option<Duration>) -> Lane {
        Lane {
            started: vec![at; n],
            typical,
            line_ends: at,
        }
    }

    #[test]
    fn a_webhook_has_a_quarter_of_the_workers_and_never_none() {
        assert_eq!(Lanes::new(32).share(), 8);
        assert_eq!(Lanes::new(8).share(), 2);
        assert_eq!(Lanes::new(3).share(), 1);
        assert_eq!(Lanes::new(1).share(), 1);
    }

    #[test]
    fn a_lane_not_known_to_be_quick_has_its_share_and_leaves_the_others_room() {
        let lanes = Lanes::new(8);
        let (slow, other) = (Uuid::new_v4(), Uuid::new_v4());
        let held: Vec<Place> = (0..2).map(|_| lanes.try_enter(slow).unwrap()).collect();
        assert!(lanes.try_enter(slow).is_err());
        let others: Vec<Place> = (0..2).map(|_| lanes.try_enter(other).unwrap()).collect();
        drop(held);
        assert!(lanes.try_enter(slow).is_ok());
        drop(others);
    }

    #[test]
    fn a_quick_lane_takes_more_than_its_share_but_never_the_last_share() {
        let lanes = Lanes::new(8);
        let (quick, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut taken = vec![lanes.try_enter(quick).unwrap()];
        drop(lanes.try_enter(quick).unwrap());
        taken.extend(std::iter::from_fn(|| lanes.try_enter(quick).ok()).take(8));
        assert_eq!(taken.len(), 6, "all but a share");
        let others: Vec<Place> = std::iter::from_fn(|| lanes.try_enter(other).ok())
            .take(8)
            .collect();
        assert_eq!(
            others.len(),
            2,
            "the other's share, no more: it is not known to be quick"
        );
    }

    #[tokio::test]
    async fn a_quick_lanes_job_waits_for_a_place_and_a_slow_ones_goes_back_at_once() {
        let lanes = Lanes::new(8);
        let (quick, slow) = (Uuid::new_v4(), Uuid::new_v4());
        let held = lanes.try_enter(quick).unwrap();
        drop(lanes.try_enter(quick).unwrap());
        let busy: Vec<Place> = std::iter::from_fn(|| lanes.try_enter(quick).ok())
            .take(8)
            .collect();
        assert_eq!(busy.len(), 5, "all but a share of 2");
        let waiting = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.enter(quick, 0.0).await.is_ok() }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiting.await.unwrap(), "in at the place freed");

        let _slow: Vec<Place> = (0..2).map(|_| lanes.try_enter(slow).unwrap()).collect();
        let asked = tokio::time::Instant::now();
        assert!(lanes.enter(slow, 0.0).await.is_err());
        assert!(asked.elapsed() < QUICK, "not waited for");
    }

    #[test]
    fn a_lane_is_quick_while_its_attempts_are() {
        let now = Instant::now();
        assert!(!lane(0, now, None).is_quick(now), "not known yet");
        assert!(lane(3, now, Some(Duration::from_millis(20))).is_quick(now));
        assert!(!lane(0, now, Some(Duration::from_millis(300))).is_quick(now));
        let long = now - Duration::from_secs(1);
        let mut turned_slow = lane(1, long, Some(Duration::from_millis(20)));
        turned_slow.started.push(now);
        assert!(!turned_slow.is_quick(now), "one in flight for a second");
    }

    #[test]
    fn jobs_turned_away_queue_at_the_lanes_pace() {
        let now = Instant::now();
        // Attempts of 4 s, two at once: a place frees every 2 s.
        let mut slow = lane(2, now, Some(Duration::from_secs(4)));
        let waits: Vec<Duration> = (0..3).map(|_| slow.wait(now, 0.0)).collect();
        assert_eq!(
            waits,
            [2, 4, 6].map(Duration::from_secs),
            "each behind the one before"
        );
        // Once the line has passed, a job waits one pace again.
        let later = now + Duration::from_secs(60);
        slow.started = vec![later; 2];
        assert_eq!(slow.wait(later, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn before_an_attempt_ends_the_oldest_in_flight_sets_the_pace() {
        let now = Instant::now();
        let mut new = lane(2, now - Duration::from_secs(3), None);
        assert_eq!(new.wait(now, 0.0), Duration::from_millis(1500));
        let mut just_started = lane(2, now, None);
        assert_eq!(just_started.wait(now, 0.0), LEAST);
    }

    #[test]
    fn a_line_past_the_horizon_spreads_its_jobs_over_it_without_growing() {
        let now = Instant::now();
        // A receiver that times out: 15 s an attempt, one at a time.
        let mut timing_out = lane(1, now, Some(Duration::from_secs(15)));
        for _ in 0..HORIZON.as_secs() / 15 {
            assert!(timing_out.wait(now, 0.0) <= HORIZON);
        }
        let ends = timing_out.line_ends;
        assert_eq!(timing_out.wait(now, 0.0), HORIZON / 2);
        assert_eq!(timing_out.wait(now, 0.999_999), HORIZON.mul_f64(0.999_999_5));
        assert_eq!(timing_out.line_ends, ends);
    }

    #[test]
    fn what_a_lane_learns_is_a_moving_average() {
        let now = Instant::now();
        let mut learning = lane(3, now, None);
        learning.finished(now, now + Duration::from_secs(4));
        assert_eq!(learning.typical, Some(Duration::from_secs(4)));
        learning.finished(now, now);
        assert_eq!(learning.typical, Some(Duration::from_secs(3)));
        assert_eq!(learning.started.len(), 1);
    }

    #[test]
    fn an_idle_lane_is_forgotten_once_its_line_has_passed() {
        let lanes = Lanes::new(4);
        let hook = Uuid::new_v4();
        let place = lanes.try_enter(hook).unwrap();
        assert!(
            matches!(lanes.try_enter(hook), Err(false)),
            "a share of 1, not known to be quick"
        );
        let wait = lanes.turn(hook, 0.0);
        drop(place);
        let state = lanes.state.lock().unwrap();
        assert!(state.lanes.contains_key(&hook), "its line is ahead");
        assert_eq!(state.in_flight, 0);
        drop(state);
        std::thread::sleep(wait);
        drop(lanes.try_enter(hook).unwrap());
        assert!(lanes.state.lock().unwrap().lanes.is_empty());
    }
}
