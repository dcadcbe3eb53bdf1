//! GraphiQL in a real browser: headless Chromium (Debian's package) driven by
//! puppeteer-core, with every request to another host blocked, opens `/graphql`; the page
//! renders, its Docs pane shows the schema, and a query run from the editor shows its
//! result (`tests/js/graphiql.mjs`); on a server that needs a token, the page says so until
//! one is pasted into its token field, and then sends it. The screenshot lands in
//! `target/graphiql.png`; `docs/graphiql.png` is one of them.

mod common;

use std::path::Path;

use common::{TestApp, TestDb, example_dirs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_offline_shows_the_schema_and_runs_a_query() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: `apt-get install chromium` (.ci/run does), or set CHROMIUM"
    );
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/graphiql.png");
    let log = common::js::run(
        "graphiql.mjs",
        vec![server.address.clone(), screenshot.display().to_string()],
        vec![("CHROMIUM".into(), chromium)],
    )
    .await;
    assert!(log.contains("query answered"), "{log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_takes_a_pasted_token_on_a_server_that_needs_one() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "no Chromium at {chromium}");
    let db = TestDb::new().await;
    let token = common::create_token(&db, "viewer", "GraphiQL in a browser");
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.auth = Some(store_monitor::startup::AuthMode::Required);
    })
    .await;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/graphiql-token.png");
    let log = common::js::run(
        "graphiql.mjs",
        vec![server.address.clone(), screenshot.display().to_string(), token],
        vec![("CHROMIUM".into(), chromium)],
    )
    .await;
    assert!(log.contains("query answered"), "{log}");
    server.stop().await;
}
