//! Real clients written in JavaScript (`tests/js/`), run by Node.js with the npm packages
//! `tests/js/package-lock.json` pins (installed on first use).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `node tests/js/SCRIPT ARGS…` off the async runtime; panics with its output unless
/// it succeeds, else returns that output.
pub async fn run(script: &str, args: Vec<String>, env: Vec<(String, String)>) -> String {
    let dir = packages();
    let script = dir.join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .envs(env)
            .output()
            .expect("node runs (Node.js is needed for the client tests)")
    })
    .await
    .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    log
}

/// The folder of the scripts, with their npm packages installed.
fn packages() -> &'static Path {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js"));
    if !dir.join("node_modules").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .status()
            .expect("npm runs (Node.js is needed for the client tests)");
        assert!(installed.success(), "npm ci failed in {}", dir.display());
    }
    dir
}
