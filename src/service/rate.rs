//! Rate limits on the calls that make work (`triggerReport`, `reloadData`): so many a
//! minute per token, or per client address for calls without one. Each process counts its
//! own calls (behind a load balancer the limit is per process).
//!
//! The generic cell rate algorithm: a key may spend its whole minute's allowance at once,
//! then one call per `60 s / rate`; a refused call learns when the next one would pass.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Error;
use super::auth::Caller;
use super::error::whole_seconds;

/// Whom a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Token(Uuid),
    Address(IpAddr),
    Unknown,
}

impl Key {
    fn of(caller: &Caller) -> Key {
        match (&caller.token, caller.address) {
            (Some(token), _) => Key::Token(token.id),
            (None, Some(address)) => Key::Address(address),
            (None, None) => Key::Unknown,
        }
    }
}

/// One limit: `per_minute` calls a minute per key (0: no limit).
#[derive(Clone)]
pub struct RateLimit {
    what: &'static str,
    per_minute: u32,
    /// Each key's theoretical arrival time: when its allowance is whole again.
    keys: Arc<Mutex<HashMap<Key, Instant>>>,
}

/// A call over its limit.
#[derive(Debug)]
struct RateLimited {
    what: &'static str,
    per_minute: u32,
    retry_after: Duration,
}

impl From<RateLimited> for Error {
    fn from(limited: RateLimited) -> Self {
        Error::RateLimited {
            message: format!(
                "{} is limited to {} a minute per token (or client address without one): retry in {} s",
                limited.what,
                limited.per_minute,
                whole_seconds(limited.retry_after)
            ),
            retry_after: limited.retry_after,
        }
    }
}

impl RateLimit {
    pub fn new(what: &'static str, per_minute: u32) -> RateLimit {
        RateLimit {
            what,
            per_minute,
            keys: Default::default(),
        }
    }

    /// Counts a call of `caller`, or refuses it.
    pub fn check(&self, caller: &Caller) -> Result<(), Error> {
        Ok(self.check_at(Key::of(caller), Instant::now())?)
    }

    fn check_at(&self, key: Key, now: Instant) -> Result<(), RateLimited> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let interval = Duration::from_secs(60) / self.per_minute;
        let tolerance = interval * (self.per_minute - 1);
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > 10_000 {
            keys.retain(|_, at| *at > now);
        }
        let at = keys.get(&key).copied().filter(|at| *at > now).unwrap_or(now);
        let ahead = at - now;
        if ahead > tolerance {
            return Err(RateLimited {
                what: self.what,
                per_minute: self.per_minute,
                retry_after: ahead - tolerance,
            });
        }
        keys.insert(key, at + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minutes_allowance_at_once_then_one_per_interval() {
        let limit = RateLimit::new("x", 6);
        let key = Key::Address(IpAddr::from([10, 0, 0, 1]));
        let start = Instant::now();
        for _ in 0..6 {
            limit.check_at(key, start).unwrap();
        }
        let refused = limit.check_at(key, start).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        // Another key has its own allowance.
        limit.check_at(Key::Unknown, start).unwrap();
        limit.check_at(key, start + Duration::from_secs(10)).unwrap();
        assert!(limit.check_at(key, start + Duration::from_secs(10)).is_err());
        // A minute's rest restores the whole allowance.
        let later = start + Duration::from_secs(120);
        for _ in 0..6 {
            limit.check_at(key, later).unwrap();
        }
        assert!(limit.check_at(key, later).is_err());
    }

    #[test]
    fn zero_is_no_limit() {
        let limit = RateLimit::new("x", 0);
        for _ in 0..1000 {
            limit.check_at(Key::Unknown, Instant::now()).unwrap();
        }
    }
}
