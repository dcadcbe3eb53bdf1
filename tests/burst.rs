//! A burst of triggers: 1,000 `triggerReport` calls from 50 clients at once. Each is
//! answered with a report, or a refusal a client can act on (`TOO_MANY_REQUESTS` past the
//! rate limit, with `Retry-After`; `SERVICE_UNAVAILABLE` were the database saturated),
//! none with an internal error, and every report accepted completes.
//! The bench (`cargo bench --bench figures -- --server`) measures the same burst's
//! throughput and latency on the full data set.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestApp, TestDb, example_dirs};
use serde_json::{Value, json};

const CLIENTS: usize = 50;
const EACH: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_triggers_from_fifty_clients_are_all_answered_and_every_accepted_report_completes() {
    let db = TestDb::new().await;
    // No rate limit: the queue and the pools take the whole burst.
    let server = TestApp::spawn(&db, &example_dirs()[0], 2).await;
    let (accepted, refused) = burst(&server.address).await;
    assert!(
        refused.keys().all(|code| code == "SERVICE_UNAVAILABLE"),
        "only a retryable refusal: {refused:?}"
    );
    assert!(!accepted.is_empty());
    all_complete(&db, &accepted).await;

    // The others share the results computed: one per interpolation, or two where both
    // workers started equal reports at the same moment, before either was finished.
    let computed: i64 = sqlx::query_scalar("SELECT count(*) FROM reports WHERE result_of = id")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!((2..=4).contains(&computed), "{computed} results computed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_rate_limit_the_burst_is_a_minutes_allowance_and_the_rest_told_when_to_retry() {
    let db = TestDb::new().await;
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 2, true, None, |s| {
        s.trigger_rate = 60;
    })
    .await;
    let (accepted, refused) = burst(&server.address).await;
    // The minute's 60 at once, and one a second after that while the burst lasts.
    assert!((60..=90).contains(&accepted.len()), "{} accepted", accepted.len());
    assert_eq!(refused.len(), 1, "only TOO_MANY_REQUESTS: {refused:?}");
    assert_eq!(refused["TOO_MANY_REQUESTS"], CLIENTS * EACH - accepted.len());
    all_complete(&db, &accepted).await;
    server.stop().await;
}

/// 1,000 triggers from 50 clients at once: the ids of the reports accepted, and how many
/// were refused with each code.
async fn burst(address: &str) -> (Vec<String>, HashMap<String, usize>) {
    let clients = (0..CLIENTS).map(|client| {
        let address = address.to_string();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut outcomes = Vec::new();
            for n in 0..EACH {
                // Both interpolations, so that two results are computed, not one.
                let interpolation = if (client + n) % 2 == 0 { "NEAREST" } else { "FORWARD_FILL" };
                let response = http
                    .post(format!("{address}/graphql"))
                    .json(&json!({
                        "query": "mutation($i: Interpolation!) { triggerReport(input: { interpolation: $i }) { id } }",
                        "variables": { "i": interpolation },
                    }))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                let answer: Value = response.json().await.unwrap();
                if answer["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS" {
                    assert!(retry_after.is_some(), "a refusal says when to retry: {answer}");
                }
                outcomes.push(answer);
            }
            outcomes
        })
    });
    let answers: Vec<Value> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert_eq!(answers.len(), CLIENTS * EACH);

    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut accepted = Vec::new();
    for answer in &answers {
        match answer["data"]["triggerReport"]["id"].as_str() {
            Some(id) => accepted.push(id.to_string()),
            None => {
                let code = answer["errors"][0]["extensions"]["code"]
                    .as_str()
                    .unwrap_or("none");
                *codes.entry(code.to_string()).or_default() += 1;
            }
        }
    }
    eprintln!("accepted {}, refused {codes:?}", accepted.len());
    (accepted, codes)
}

/// Waits until every report of `accepted` is COMPLETE (a safety net of two minutes, not a
/// timing).
async fn all_complete(db: &TestDb, accepted: &[String]) {
    let ids: Vec<uuid::Uuid> = accepted.iter().map(|id| id.parse().unwrap()).collect();
    let mut last = (0, Vec::new());
    for _ in 0..1200 {
        let statuses: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM reports WHERE id = ANY($1) GROUP BY status ORDER BY status",
        )
        .bind(&ids)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let complete = statuses
            .iter()
            .find(|(s, _)| s == "COMPLETE")
            .map_or(0, |(_, n)| *n);
        last = (complete, statuses);
        if complete as usize == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last.0 as usize,
        ids.len(),
        "every accepted report completes: {:?}",
        last.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_queue_limit_a_trigger_is_told_to_retry_later_and_nothing_is_queued() {
    let db = TestDb::new().await;
    // No workers: every report stays PENDING.
    let server = TestApp::spawn_adjusted(&db, &example_dirs()[0], 0, true, None, |s| {
        s.max_queued_reports = 3;
    })
    .await;
    let client = reqwest::Client::new();
    let trigger = || {
        client
            .post(format!("{}/graphql", server.address))
            .json(&json!({ "query": "mutation { triggerReport { id } }" }))
            .send()
    };
    for _ in 0..3 {
        let answer = trigger().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let refused = trigger().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "TOO_MANY_REQUESTS",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 5);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("3 reports are waiting"), "{message}");

    let legacy = server.post("/trigger_report").await;
    assert_eq!(legacy.status(), 429);
    assert!(legacy.headers().contains_key("retry-after"));
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(waiting, 3, "nothing of a refused trigger is kept");
    server.stop().await;
}
