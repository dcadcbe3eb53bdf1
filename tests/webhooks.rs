//! Webhooks (issue 21) against the real server and a receiver of the tests' own, every
//! signature checked by the Standard Webhooks npm library: retries keep their `webhook-id`,
//! a 410 disables the endpoint, a rotated secret signs beside the new one for its overlap,
//! private addresses are refused, only admins manage webhooks and no secret reaches a log,
//! a SIGKILLed server delivers after its restart, and two processes deliver each event once.
//! Issue 32: a slow receiver delays no other webhook's deliveries, an idle server delivers
//! as the event commits, and the lag from an event to each attempt is a metric.

mod common;

use std::path::Path;
use std::time::Duration;

use common::child::{ChildServer, serve_args};
use common::receiver::{Received, Receiver, verify};
use common::{TestApp, TestDb, create_token};
use serde_json::{Value, json};

const HEADER: &str = "store_id,status,timestamp_utc";
/// A safety net for a broken server, not a timing any test relies on.
const LIMIT: Duration = Duration::from_secs(60);

/// A data folder whose stores have no business hours (open around the clock), no polls yet.
fn data_folder(dir: &Path) {
    std::fs::write(
        dir.join("menu_hours.csv"),
        "store_id,dayOfWeek,start_time_local,end_time_local\nelsewhere,0,09:00:00,17:00:00\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("timezones.csv"),
        "store_id,timezone_str\nelsewhere,UTC\n",
    )
    .unwrap();
    std::fs::write(dir.join("store_status.csv"), format!("{HEADER}\n")).unwrap();
}

/// The server, webhooks retried after a second each time, allowed to reach the receiver on
/// loopback (`allow_private`).
async fn server(db: &TestDb, data: &Path, allow_private: bool) -> TestApp {
    TestApp::spawn_adjusted(db, data, 0, true, None, |s| {
        s.webhooks.retry_schedule = "1s,1s,1s".parse().unwrap();
        s.webhooks.allow_private = allow_private;
    })
    .await
}

async fn push(address: &str, token: Option<&str>, rows: &[(&str, &str, bool)]) {
    let mut body = format!("{HEADER}\n");
    for (store, at, active) in rows {
        let status = if *active { "active" } else { "inactive" };
        body.push_str(&format!("{store},{status},{at} UTC\n"));
    }
    let mut request = reqwest::Client::new()
        .post(format!("{address}/polls"))
        .header("content-type", "text/csv")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Two inactive polls: the store is down.
async fn store_goes_down(app: &TestApp, store: &str) {
    push(
        &app.address,
        None,
        &[
            (store, "2023-03-01 10:00:00", false),
            (store, "2023-03-01 11:00:00", false),
        ],
    )
    .await;
}

async fn store_comes_back(app: &TestApp, store: &str) {
    push(&app.address, None, &[(store, "2023-03-01 12:00:00", true)]).await;
}

const CREATE: &str = "mutation($url: String!) {
    createWebhook(input: { url: $url, description: \"tests\" }) { secret webhook { id state events } }
}";

/// Creates a webhook to `url`: its id and secret.
async fn create(app: &TestApp, url: &str) -> (String, String) {
    let created = app.graphql(CREATE, json!({ "url": url })).await;
    assert!(created["errors"].is_null(), "{created}");
    let c = &created["data"]["createWebhook"];
    assert_eq!(
        c["webhook"]["events"],
        json!(["INCIDENT_OPENED", "INCIDENT_RESOLVED"])
    );
    (
        c["webhook"]["id"].as_str().unwrap().to_string(),
        c["secret"].as_str().unwrap().to_string(),
    )
}

const WEBHOOK: &str = "query($id: ID!) { webhook(id: $id) {
    state disabledReason
    lastDelivery { outcome }
    deliveries { nodes { eventId attempt httpStatus outcome error eventType nextAttemptAt } }
} }";

/// The webhook once `done` holds of it (the record of an attempt is written just after its
/// answer is read).
async fn webhook_once(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::within("the webhook's deliveries", LIMIT, async {
        loop {
            let answer = app.graphql(WEBHOOK, json!({ "id": id })).await;
            assert!(answer["errors"].is_null(), "{answer}");
            if done(&answer["data"]["webhook"]) {
                return answer["data"]["webhook"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_delivery_is_signed_and_retried_with_the_same_id_until_it_is_taken() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let app = server(&db, data.path(), true).await;
    let receiver = Receiver::start(&[500, 503]).await;
    let (id, secret) = create(&app, &receiver.url).await;

    store_goes_down(&app, "s").await;
    let got = receiver.wait_for(3, LIMIT).await;
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 503, 200]
    );
    assert!(got.iter().all(|r| r.id == got[0].id), "one webhook-id: {got:?}");
    assert_eq!(verify(&got, &secret).await, ["verified"; 3]);
    let body = got[2].json();
    assert_eq!(body["type"], "incident.opened");
    assert_eq!(body["data"]["incident"]["storeId"], "s");
    assert_eq!(body["data"]["incident"]["open"], true);
    assert_eq!(body["data"]["incident"]["inactivePolls"], 2);
    assert_eq!(
        body["data"]["incident"]["openedAt"],
        "2023-03-01T10:00:00.000000Z"
    );
    assert_eq!(body["data"]["store"]["storeId"], "s");
    // The same event: the body too is the same on every attempt.
    assert!(got.iter().all(|r| r.body == got[0].body));

    let hook = webhook_once(&app, &id, |w| w["lastDelivery"]["outcome"] == "DELIVERED").await;
    let attempts: Vec<(i64, i64, &str)> = hook["deliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["httpStatus"].as_i64().unwrap(),
                d["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [(3, 200, "DELIVERED"), (2, 503, "RETRYING"), (1, 500, "RETRYING")]
    );
    assert_eq!(hook["deliveries"]["nodes"][0]["eventId"], got[0].id.as_str());
    assert_eq!(hook["deliveries"]["nodes"][0]["eventType"], "incident.opened");

    // The resolution follows, as its own event.
    store_comes_back(&app, "s").await;
    let got = receiver.wait_for(4, LIMIT).await;
    assert_eq!(got[3].json()["type"], "incident.resolved");
    assert_eq!(
        got[3].json()["data"]["incident"]["resolvedAt"],
        "2023-03-01T12:00:00.000000Z"
    );
    assert_ne!(got[3].id, got[0].id);
    assert_eq!(verify(&got[3..], &secret).await, ["verified"]);

    // redeliver sends the event again, under its id.
    let again = app
        .graphql(
            "mutation($w: ID!, $e: ID!) { redeliver(webhookId: $w, eventId: $e) }",
            json!({ "w": id, "e": got[0].id }),
        )
        .await;
    assert_eq!(again["data"]["redeliver"], true, "{again}");
    let got = receiver.wait_for(5, LIMIT).await;
    assert_eq!(got[4].id, got[0].id);
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_answers_410_disables_its_webhook() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let app = server(&db, data.path(), true).await;
    let receiver = Receiver::start(&[410]).await;
    let (id, _) = create(&app, &receiver.url).await;
    store_goes_down(&app, "s").await;
    receiver.wait_for(1, LIMIT).await;
    let hook = webhook_once(&app, &id, |w| w["state"] == "DISABLED").await;
    assert_eq!(hook["deliveries"]["nodes"][0]["outcome"], "GONE");
    assert!(hook["disabledReason"].as_str().unwrap().contains("410"));

    // The next event queues no delivery to it: the push's own transaction says so.
    store_comes_back(&app, "s").await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM incident_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type LIKE '%webhook-delivery'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((events, queued), (2, 1));
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_until_its_overlap_ends() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let app = server(&db, data.path(), true).await;
    let receiver = Receiver::start(&[]).await;
    let (id, old) = create(&app, &receiver.url).await;
    let rotated = app
        .graphql(
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { previousSecretUntil } } }",
            json!({ "id": id }),
        )
        .await;
    let new = rotated["data"]["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);
    let until = rotated["data"]["rotateWebhookSecret"]["webhook"]["previousSecretUntil"]
        .as_str()
        .unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let overlap = until.signed_duration_since(chrono::Utc::now());
    assert!(overlap > chrono::TimeDelta::hours(23) && overlap <= chrono::TimeDelta::hours(24));

    store_goes_down(&app, "s").await;
    let got = receiver.wait_for(1, LIMIT).await;
    assert_eq!(verify(&got, &old).await, ["verified"]);
    assert_eq!(verify(&got, &new).await, ["verified"]);

    // A day later (the overlap ended): the old secret signs no more.
    sqlx::query("UPDATE webhooks SET previous_until = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    store_comes_back(&app, "s").await;
    let got = receiver.wait_for(2, LIMIT).await;
    assert_eq!(verify(&got[1..], &new).await, ["verified"]);
    assert!(verify(&got[1..], &old).await[0].starts_with("refused"));
    app.stop().await;
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_at_creation_and_at_delivery() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let app = server(&db, data.path(), false).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:172.16.0.1]/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let answer = app.graphql(CREATE, json!({ "url": url })).await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{url}: {answer}"
        );
        assert!(answer["data"].is_null() || answer["data"]["createWebhook"].is_null());
    }
    let refused = app.graphql(CREATE, json!({ "url": "http://localhost/x" })).await;
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("127.0.0.1") && message.contains("--webhook-allow-private"),
        "{message}"
    );

    // A webhook stored before its name came to resolve inside (as DNS rebinding would):
    // refused again where the connection is made.
    let receiver = Receiver::start(&[]).await;
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    for url in [format!("http://localhost:{port}/hook"), receiver.url.clone()] {
        sqlx::query(
            "INSERT INTO webhooks (id, url, events, secret, created_by)
             VALUES (gen_random_uuid(), $1, '{incident.opened}', $2, 'test')",
        )
        .bind(&url)
        .bind(format!("whsec_{}", "A".repeat(32)))
        .execute(&db.pool)
        .await
        .unwrap();
    }
    store_goes_down(&app, "s").await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM webhooks")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    for id in ids {
        let hook = webhook_once(&app, &id.to_string(), |w| !w["lastDelivery"].is_null()).await;
        let delivery = &hook["deliveries"]["nodes"][0];
        assert_eq!(delivery["outcome"], "REFUSED", "{hook}");
        assert!(delivery["error"].as_str().unwrap().contains("loopback"), "{hook}");
    }
    assert!(receiver.received().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn viewers_read_incidents_only_admins_manage_webhooks_and_no_secret_is_logged() {
    // A URL's credentials and query are secrets too: the log had `url=http://alice:S3cretPW@…?token=…`.
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let (viewer, operator, admin) = (
        create_token(&db, "viewer", "owner"),
        create_token(&db, "operator", "poller"),
        create_token(&db, "admin", "ops"),
    );
    let mut args = serve_args(&db.url, data.path(), reports.path());
    args.extend([
        "--auth".into(),
        "required".into(),
        "--webhook-allow-private".into(),
    ]);
    args.extend(["--webhook-retry-schedule".into(), "1s".into()]);
    let server = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let call = |token: &str, query: &str, variables: Value| {
        let (address, token, query) = (server.address.clone(), token.to_string(), query.to_string());
        async move {
            reqwest::Client::new()
                .post(format!("{address}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let receiver = Receiver::start(&[500]).await;
    for token in [&viewer, &operator] {
        let refused = call(token, CREATE, json!({ "url": receiver.url })).await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused}"
        );
        let listed = call(token, "{ webhooks { id } }", json!({})).await;
        assert_eq!(listed["errors"][0]["extensions"]["code"], "FORBIDDEN", "{listed}");
    }
    let with_secrets = receiver.url.replacen("http://", "http://alice:S3cretPW@", 1) + "?token=T0kenInQuery";
    let created = call(&admin, CREATE, json!({ "url": with_secrets })).await;
    let id = created["data"]["createWebhook"]["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = created["data"]["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let rotated = call(
        &admin,
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
        json!({ "id": id }),
    )
    .await;
    let second = rotated["data"]["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = call(&admin, "{ webhooks { id url state } }", json!({})).await;
    assert!(!listed.to_string().contains("whsec_"), "{listed}");

    push(
        &server.address,
        Some(&operator),
        &[
            ("s", "2023-03-01 10:00:00", false),
            ("s", "2023-03-01 11:00:00", false),
        ],
    )
    .await;
    let got = receiver.wait_for(2, LIMIT).await;
    assert_eq!(verify(&got, &second).await, ["verified"; 2]);
    let read = call(
        &viewer,
        "{ incidents(filter: { open: true }) { totalCount nodes { storeId inactivePolls } } }",
        json!({}),
    )
    .await;
    assert_eq!(read["data"]["incidents"]["totalCount"], 1, "{read}");
    server.logged("webhook delivery", LIMIT).await;

    let log = server.log.lock().unwrap().join("\n");
    for secret in [&first, &second] {
        let bytes = secret.trim_start_matches("whsec_");
        assert!(!log.contains(bytes), "a secret in the log");
    }
    assert!(
        !log.contains("S3cretPW") && !log.contains("T0kenInQuery") && !log.contains("alice"),
        "a URL's credentials in the log: {log}"
    );
    assert!(log.contains("webhook created"), "{log}");
    assert!(log.contains("audit"), "the audit is in the log");
}

#[tokio::test]
async fn a_server_killed_mid_delivery_delivers_after_its_restart() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let args = || {
        let mut args = serve_args(&db.url, data.path(), reports.path());
        args.push("--webhook-allow-private".into());
        args
    };
    // The first request hangs: the server is killed while it waits for the answer.
    let receiver = Receiver::start(&[0]).await;
    let first = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args());
    let created = reqwest::Client::new()
        .post(format!("{}/graphql", first.address))
        .json(&json!({ "query": CREATE, "variables": { "url": receiver.url } }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let secret = created["data"]["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    push(
        &first.address,
        None,
        &[
            ("s", "2023-03-01 10:00:00", false),
            ("s", "2023-03-01 11:00:00", false),
        ],
    )
    .await;
    receiver.wait_for(1, LIMIT).await;
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let _second = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args());
    // Handed back once the dead worker's heartbeats are missed.
    let got = receiver.wait_for(2, LIMIT * 2).await;
    assert_eq!(got[1].id, got[0].id);
    assert_eq!(verify(&got[1..], &secret).await, ["verified"]);
}

#[tokio::test]
async fn two_processes_deliver_each_event_once() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let one = server(&db, data.path(), true).await;
    let two = server(&db, data.path(), true).await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = create(&one, &receiver.url).await;
    let stores: Vec<String> = (0..300).map(|i| format!("store-{i}")).collect();
    let mut rows = Vec::new();
    for store in &stores {
        rows.push((store.as_str(), "2023-03-01 10:00:00", false));
        rows.push((store.as_str(), "2023-03-01 11:00:00", false));
    }
    push(&two.address, None, &rows).await;
    let got = receiver.wait_for(300, LIMIT).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let events: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM incident_events")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(events.len(), 300);
    assert_eq!(ids.len(), 300, "each event once");
    assert_eq!(got.len(), 300, "no event twice");
    let sample: Vec<_> = got.iter().step_by(50).cloned().collect();
    assert!(verify(&sample, &secret).await.iter().all(|v| v == "verified"));
    one.stop().await;
    two.stop().await;
}

/// The `p`-quantile of `samples` by nearest rank (`p` 0.99 of 20 samples: the largest).
fn quantile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The store a delivery is about.
fn store_of(received: &Received) -> String {
    received.json()["data"]["incident"]["storeId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_delays_no_other_webhook() {
    // Every delivery shared one pool of workers, first come first served: 200 events to a
    // receiver taking 4 s each held all of it, and another receiver's deliveries waited
    // behind them for minutes.
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let app = server(&db, data.path(), true).await;
    let slow = Receiver::slow(&[], Duration::from_secs(4)).await;
    let fast = Receiver::start(&[]).await;
    create(&app, &slow.url).await;
    create(&app, &fast.url).await;

    // In four pushes, so that each push's deliveries queue behind the slow receiver's of the
    // pushes before it, whatever order one push queues its own in.
    let mut pushed = Vec::new();
    for round in 0..4 {
        let stores: Vec<String> = (0..50).map(|i| format!("r{round}-{i}")).collect();
        let mut rows = Vec::new();
        for store in &stores {
            rows.push((store.as_str(), "2023-03-01 10:00:00", false));
            rows.push((store.as_str(), "2023-03-01 11:00:00", false));
        }
        pushed.push(std::time::Instant::now());
        push(&app.address, None, &rows).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wait = Duration::from_secs(20);
    let got = match fast.wait_until(wait, |got| got.len() >= 200).await {
        Ok(got) | Err(got) => got,
    };
    let mut lags: Vec<Duration> = got
        .iter()
        .map(|r| {
            let store = store_of(r);
            let round: usize = store[1..2].parse().unwrap();
            r.at.duration_since(pushed[round])
        })
        .collect();
    // Those that never came count as the longest wait.
    lags.resize(200, wait);
    let (p50, p99) = (quantile(&lags, 0.5), quantile(&lags, 0.99));
    println!("the other receiver's 200 deliveries after their push: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 <= Duration::from_secs(5),
        "the other receiver's deliveries after their push: {} of 200 within {wait:?}, p50 {p50:?}, p99 {p99:?}",
        got.len()
    );
    assert_eq!(got.len(), 200);
    // The slow receiver is served too, at its own pace.
    assert!(!slow.received().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_idle_server_delivers_as_the_event_commits() {
    // Deliveries from an idle server came on a 5 s grid (the queue was read on the worker's
    // heartbeat): a median of 2.2 s after the push, up to 4.7 s.
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let app = server(&db, data.path(), true).await;
    let receiver = Receiver::start(&[]).await;
    create(&app, &receiver.url).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut lags = Vec::new();
    for i in 0..20 {
        let store = format!("s{i}");
        let pushed = std::time::Instant::now();
        store_goes_down(&app, &store).await;
        // A lag past 2 s fails the test anyway: no need to wait for it longer.
        let wait = Duration::from_secs(2);
        let arrived = receiver
            .wait_until(wait, |got| got.iter().any(|r| store_of(r) == store))
            .await
            .ok()
            .and_then(|got| got.into_iter().find(|r| store_of(r) == store));
        lags.push(arrived.map_or(wait, |r| r.at.duration_since(pushed)));
        // Spaced unevenly, so that the pushes fall at every phase of any timer.
        tokio::time::sleep(Duration::from_millis(150 + (i * 137) % 500)).await;
    }
    let (p50, p99) = (quantile(&lags, 0.5), quantile(&lags, 0.99));
    println!("from each of 20 pushes to its delivery: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 <= Duration::from_secs(1),
        "from each push to its delivery: p50 {p50:?}, p99 {p99:?}: {lags:?}"
    );
    app.stop().await;
}

/// The value of the series of `/metrics` (`scrape`) whose name is `name` and whose labels
/// include `label`; `None` until there is one.
fn series(scrape: &str, name: &str, label: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn the_lag_from_an_event_to_each_attempt_is_a_metric() {
    let data = tempfile::tempdir().unwrap();
    data_folder(data.path());
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut args = serve_args(&db.url, data.path(), reports.path());
    args.extend([
        "--webhook-allow-private".into(),
        "--webhook-retry-schedule".into(),
        "1s".into(),
        "--metrics-bind".into(),
        "127.0.0.1:0".into(),
    ]);
    let server = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let receiver = Receiver::start(&[500]).await;
    let created = server
        .graphql(&format!(
            "mutation {{ createWebhook(input: {{ url: {:?} }}) {{ webhook {{ id }} }} }}",
            receiver.url
        ))
        .await;
    let webhook = created["data"]["createWebhook"]["webhook"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    push(
        &server.address,
        None,
        &[
            ("s", "2023-03-01 10:00:00", false),
            ("s", "2023-03-01 11:00:00", false),
        ],
    )
    .await;
    let got = receiver.wait_for(2, LIMIT).await;
    let again = server
        .graphql(&format!(
            "mutation {{ redeliver(webhookId: {webhook:?}, eventId: {:?}) }}",
            got[0].id
        ))
        .await;
    assert_eq!(again["data"]["redeliver"], true, "{again}");
    receiver.wait_for(3, LIMIT).await;

    // Each attempt is counted once its answer is recorded, just after the receiver has it.
    let name = "store_monitor_webhook_delivery_lag_seconds";
    let scrape = common::within("the three attempts' lags", LIMIT, async {
        loop {
            let scrape = server.scrape_metrics().await;
            let counted: Option<Vec<f64>> = ["first", "retry", "redelivery"]
                .iter()
                .map(|attempt| {
                    series(
                        &scrape,
                        &format!("{name}_count"),
                        &format!("attempt=\"{attempt}\""),
                    )
                })
                .collect();
            if counted.is_some_and(|counted| counted.iter().sum::<f64>() >= 3.0) {
                return scrape;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let lag = |attempt: &str| {
        let label = format!("attempt=\"{attempt}\"");
        let count = series(&scrape, &format!("{name}_count"), &label).unwrap();
        assert_eq!(count, 1.0, "{attempt}: {scrape}");
        series(&scrape, &format!("{name}_sum"), &label).unwrap()
    };
    // The first attempt as the event commits; the retry a second later, by the schedule.
    let (first, retry) = (lag("first"), lag("retry"));
    assert!(first < 1.0, "first attempt {first} s after its event");
    assert!((1.0..5.0).contains(&retry), "retry {retry} s after its event");
    assert!(lag("redelivery") >= retry);
    assert!(
        series(&scrape, &format!("{name}_bucket"), "le=\"0.25\"").is_some(),
        "{scrape}"
    );
    server.terminate();
}
