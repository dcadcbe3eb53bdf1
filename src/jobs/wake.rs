//! When a worker reads its queue: on a notice, and on a timer that catches what no notice
//! announces.
//!
//! apalis reads a queue whenever its worker is polled and finds no job buffered, and parks
//! the worker when the read comes back empty; a poll strategy is what wakes it again. Its
//! `IntervalStrategy` (`poll_with_interval`) loses its wake-up: once its timer fires, it arms
//! a new one without polling it, so no waker is registered until the worker is polled for
//! another reason. Mostly the read the wake-up started is that reason (it returns
//! `Pending`, and its answer wakes the worker, which polls the new timer). But a read whose
//! answer is already there when it is first polled (PostgreSQL on the same machine, idle)
//! completes in that very poll, and then nothing wakes the worker until apalis's heartbeat:
//! an idle server's deliveries started on a 5 s grid, 2.2 s after their event at the median,
//! while `poll_with_interval` said 100 ms. [`Wakeups`] polls each source until it is
//! pending, so that a waker is registered on both after every poll, whatever the read does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Interval, MissedTickBehavior};

/// Wakes a worker each time `notice` is notified, and every `period`.
pub struct Wakeups {
    notice: Arc<Notify>,
    notified: Pin<Box<OwnedNotified>>,
    period: Duration,
    /// Made on the first poll, in the runtime that runs the worker.
    timer: Option<Interval>,
}

impl Wakeups {
    pub fn new(notice: Arc<Notify>, period: Duration) -> Wakeups {
        Wakeups {
            notified: Box::pin(notice.clone().notified_owned()),
            notice,
            period,
            timer: None,
        }
    }
}

impl PollStrategy for Wakeups {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut woken = false;
        while self.notified.as_mut().poll(cx).is_ready() {
            woken = true;
            self.notified = Box::pin(self.notice.clone().notified_owned());
        }
        let period = self.period;
        let timer = self.timer.get_or_insert_with(|| {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer
        });
        while timer.poll_tick(cx).is_ready() {
            woken = true;
        }
        if woken {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Polls `wakeups` once, as apalis does at each poll of its worker.
    fn drive(wakeups: &mut Wakeups, cx: &mut Context<'_>) -> bool {
        wakeups.poll_drive(cx, &PollSnapshot::default()).is_ready()
    }

    /// A waker that notes it was woken.
    fn flagged() -> (Arc<AtomicBool>, std::task::Waker) {
        let woken = Arc::new(AtomicBool::new(false));
        (woken.clone(), futures::task::waker(Arc::new(Flag(woken))))
    }

    #[tokio::test]
    async fn the_timer_wakes_the_worker_after_every_poll_that_saw_it_fire() {
        let notice = Arc::new(Notify::new());
        let period = Duration::from_millis(20);
        let mut wakeups = Wakeups::new(notice, period);
        let (woken, waker) = flagged();
        let mut cx = Context::from_waker(&waker);
        assert!(!drive(&mut wakeups, &mut cx));
        for _ in 0..3 {
            // Not polled in between: as if the worker read its queue at once and parked.
            tokio::time::sleep(period * 2).await;
            assert!(woken.swap(false, Ordering::SeqCst), "woken by the timer");
            assert!(drive(&mut wakeups, &mut cx));
        }
    }

    #[tokio::test]
    async fn a_notice_wakes_a_parked_worker_once_for_all_that_came() {
        let notice = Arc::new(Notify::new());
        let mut wakeups = Wakeups::new(notice.clone(), Duration::from_secs(3600));
        let (woken, waker) = flagged();
        let mut cx = Context::from_waker(&waker);
        assert!(!drive(&mut wakeups, &mut cx));
        notice.notify_one();
        assert!(woken.swap(false, Ordering::SeqCst));
        // More came while the worker was busy: one wake-up, then it waits again.
        notice.notify_one();
        assert!(drive(&mut wakeups, &mut cx));
        assert!(!drive(&mut wakeups, &mut cx));
        notice.notify_one();
        assert!(woken.load(Ordering::SeqCst), "still listening");
    }

    struct Flag(Arc<AtomicBool>);

    impl futures::task::ArcWake for Flag {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.store(true, Ordering::SeqCst);
        }
    }
}
