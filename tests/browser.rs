//! GraphiQL in a real browser: headless Chromium (Debian's package) driven by
//! puppeteer-core, with every request to another host blocked, opens `/graphql`; the page
//! renders, its Docs pane shows the schema, and a query run from the editor shows its
//! result (`tests/browser/graphiql.mjs`). The screenshot lands in
//! `target/graphiql.png`; `docs/graphiql.png` is one of them.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TestApp, TestDb, example_dirs};

/// The test's npm packages (`tests/browser/package-lock.json`), installed if missing.
fn npm_packages() -> &'static Path {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"));
    if !dir.join("node_modules").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .status()
            .expect("npm runs (Node.js is needed for the browser tests)");
        assert!(installed.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_offline_shows_the_schema_and_runs_a_query() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: `apt-get install chromium` (.ci/run does), or set CHROMIUM"
    );
    let dir = npm_packages();
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/graphiql.png");
    let address = server.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("graphiql.mjs"))
            .arg(&address)
            .arg(&screenshot)
            .env("CHROMIUM", &chromium)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    assert!(log.contains("query answered"), "{log}");
    server.stop().await;
}
