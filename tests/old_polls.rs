//! Polls from long ago (issue 32): a scoped operator pushed one poll a week from 2000 to
//! now, which made a partition a week (1,406), and every report after it planned, locked
//! and walked them all: 0.65 s became 116 s, and PostgreSQL ran out of shared memory for
//! locks. Old weeks now share coarse partitions, and a store with no poll before a report's
//! window is not looked for in the partitions before it. How long reports take before and
//! after is measured by `benches/old_polls.sh` (docs/PERFORMANCE.md), not here.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestApp, TestDb};
use serde_json::json;

/// Computes the report as of `as_of` (a new instant each time: an equal report would be
/// reused, not computed): its status.
async fn report(app: &TestApp, as_of: &str) -> String {
    let triggered = app
        .graphql(
            "mutation($at: DateTime) { triggerReport(input: { asOf: $at }) { id } }",
            json!({ "at": as_of }),
        )
        .await;
    let id = triggered["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{triggered}"))
        .to_string();
    let (states, _) = app.follow(&id, "graphql-transport-ws").await;
    states.last().cloned().unwrap_or_default()
}

/// How many partitions `polls` has.
async fn partitions(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM store_monitor_poll_partitions()")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_a_week_since_2000_leaves_partitions_few_and_reports_complete() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, &data, 1).await;
    assert_eq!(report(&app, "2023-01-25T18:00:01Z").await, "COMPLETE");
    let before = partitions(&db).await;

    // One poll a week, every week from the first Monday of 2000 to now: 1,400 and more.
    let mut body = String::from("store_id,status,timestamp_utc\n");
    let mut at = chrono::DateTime::parse_from_rfc3339("2000-01-03T12:00:00Z")
        .unwrap()
        .to_utc();
    let mut polls = 0;
    while at < chrono::Utc::now() {
        body.push_str(&format!(
            "from-2000,inactive,{}\n",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
        at += chrono::TimeDelta::weeks(1);
        polls += 1;
    }
    assert!(polls > 1_400, "{polls}");
    let started = std::time::Instant::now();
    let pushed = reqwest::Client::new()
        .post(format!("{}/polls", app.address))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(pushed.status(), 200);
    let answer: serde_json::Value = pushed.json().await.unwrap();
    assert_eq!(answer["accepted"], polls, "{answer}");
    // 27.6 s before (a partition a week); seconds now, in a debug build.
    assert!(took <= Duration::from_secs(10), "the batch took {took:?}");

    // A 52-week block each since 2000 (27), the 53 weeks before the newest, and the gaps
    // beside the bundled data's own weeks: not a partition a week (1,400).
    let made = partitions(&db).await - before;
    assert!(made <= 27 + 54 + 4, "{made} partitions made for one batch");
    // A week in those years was covered by one partition each; its polls are all there.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM polls p JOIN stores s ON s.id = p.store WHERE s.store_id = 'from-2000'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, polls);
    for second in 2..5 {
        assert_eq!(
            report(&app, &format!("2023-01-25T18:00:{second:02}Z")).await,
            "COMPLETE",
            "never FAILED"
        );
    }
    // The store's own report reads its week from a coarse partition like any other.
    let old = app
        .graphql(
            "mutation { triggerReport(input: { asOf: \"2005-06-01T00:00:00Z\" }) { id } }",
            json!({}),
        )
        .await;
    let id = old["data"]["triggerReport"]["id"].as_str().unwrap().to_string();
    let (states, _) = app.follow(&id, "graphql-transport-ws").await;
    assert_eq!(states.last().map(String::as_str), Some("COMPLETE"));
    let row = app
        .graphql(
            "query($id: ID!) { report(id: $id) { rows(storeId: \"from-2000\") { nodes { downtimeLastWeek } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        row["data"]["report"]["rows"]["nodes"][0]["downtimeLastWeek"], 168.0,
        "inactive every week since 2000: {row}"
    );

    // Retention prunes the coarse partitions whole, oldest first, as it prunes weeks: a
    // year kept, every partition that ended before the cut went, the store's last poll
    // before it kept.
    app.stop().await;
    let pruned = store_monitor::jobs::prune_polls::prune(&db.pool, 365)
        .await
        .unwrap();
    assert!(pruned.weeks >= 27, "{pruned:?}");
    let kept_from = pruned.kept_from.unwrap();
    let older: i64 = sqlx::query_scalar("SELECT count(*) FROM store_monitor_poll_partitions() WHERE lo < $1")
        .bind(kept_from)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(older, 0);
    let (before_cut, after_cut): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE at < $1), count(*) FILTER (WHERE at >= $1)
         FROM polls p JOIN stores s ON s.id = p.store WHERE s.store_id = 'from-2000'",
    )
    .bind(kept_from)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(before_cut, 1, "its last poll before the kept weeks");
    assert!((50..=54).contains(&after_cut), "{after_cut}");
}
