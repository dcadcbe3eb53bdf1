//! Apollo's automatic persisted queries: a query registered under its SHA-256 is run again
//! from its hash alone. Only a caller allowed to run it registers one, and the store is
//! bounded in count and bytes (the oldest is forgotten first), so no client can fill the
//! server's memory with them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many persisted queries are remembered, and how many bytes of them at most.
const PERSISTED: usize = 1000;
const PERSISTED_BYTES: usize = 8 << 20;

/// Queries registered by Apollo's automatic persisted queries, by their SHA-256.
#[derive(Clone, Default)]
pub(crate) struct PersistedQueries(Arc<Mutex<Persisted>>);

#[derive(Default)]
struct Persisted {
    queries: HashMap<String, String>,
    /// Hashes, oldest first.
    order: VecDeque<String>,
    /// The queries' bytes, together.
    bytes: usize,
}

impl PersistedQueries {
    pub(super) fn get(&self, hash: &str) -> Option<String> {
        self.0.lock().ok()?.queries.get(hash).cloned()
    }

    pub(super) fn keep(&self, hash: String, query: String) {
        let Ok(mut persisted) = self.0.lock() else {
            return;
        };
        let size = query.len();
        match persisted.queries.insert(hash.clone(), query) {
            Some(old) => persisted.bytes -= old.len(),
            None => persisted.order.push_back(hash),
        }
        persisted.bytes += size;
        while persisted.order.len() > PERSISTED || persisted.bytes > PERSISTED_BYTES {
            let Some(oldest) = persisted.order.pop_front() else {
                break;
            };
            if let Some(gone) = persisted.queries.remove(&oldest) {
                persisted.bytes -= gone.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_queries_are_bounded_in_bytes_and_forget_the_oldest() {
        let persisted = PersistedQueries::default();
        let big = "x".repeat(1 << 20);
        for i in 0..20 {
            persisted.keep(i.to_string(), big.clone());
        }
        let kept = persisted.0.lock().unwrap();
        assert!(kept.bytes <= PERSISTED_BYTES, "{} bytes kept", kept.bytes);
        assert!(kept.queries.contains_key("19") && !kept.queries.contains_key("0"));
    }
}
