//! Crash points for tests of what survives a crash: `STORE_MONITOR_FAILPOINT=name` makes
//! the process abort (as a `kill -9` would: no destructors, no goodbye to the database)
//! when it reaches the point of that name; a stall point ([`stall`]) waits there for ever
//! instead, for the tests of what stops work that hangs. Unset, each point costs one
//! atomic load.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("STORE_MONITOR_FAILPOINT").ok())
        .as_deref()
}

/// Waits for ever here if `STORE_MONITOR_FAILPOINT` names this point.
pub(crate) async fn stall(name: &str) {
    if armed() == Some(name) {
        tracing::error!(failpoint = name, "failpoint reached: stalling");
        std::future::pending::<()>().await;
    }
}

/// Aborts the process here if `STORE_MONITOR_FAILPOINT` names this point.
pub(crate) fn hit(name: &str) {
    if armed() == Some(name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}
