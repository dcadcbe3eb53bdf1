//! Crash points for tests of what survives a crash: `STORE_MONITOR_FAILPOINT=name` makes
//! the process abort (as a `kill -9` would: no destructors, no goodbye to the database)
//! when it reaches the point of that name. Unset, each point costs one atomic load.

use std::sync::OnceLock;

/// Aborts the process here if `STORE_MONITOR_FAILPOINT` names this point.
pub(crate) fn hit(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("STORE_MONITOR_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}
