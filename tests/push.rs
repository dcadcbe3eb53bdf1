//! Live polls (issue 20): `POST /polls` against the real server. Half a data set loaded
//! from its file and half pushed (CSV and NDJSON, some batches twice, some with bad rows)
//! gives the reports of the whole file; each batch answers what it accepted, what it had
//! already and what it rejected, with lines; the doors refuse what they should.

mod common;

use std::path::Path;

use common::{TestApp, TestDb, create_token};
use store_monitor::db::snapshot::Snapshot;
use store_monitor::domain::{Interpolation, StoreReport};
use store_monitor::generate::{Plan, generate};
use store_monitor::input::{DataFiles, FileChoice, InputData};

const HEADER: &str = "store_id,status,timestamp_utc";

async fn from_db(db: &TestDb, interpolation: Interpolation) -> Vec<StoreReport> {
    let snapshot = Snapshot::open(&db.pool, None).await.unwrap();
    snapshot.report(interpolation, Default::default()).await.unwrap()
}

fn from_files(dir: &Path, interpolation: Interpolation) -> Vec<StoreReport> {
    let files = DataFiles::find(dir, &FileChoice::default()).unwrap();
    InputData::load(&files)
        .unwrap()
        .prepare()
        .report(None, interpolation)
        .rows
}

/// 120 stores' polls over 8 days, generated into `whole`; the status file's rows, in the
/// order of the columns `store_id, status, timestamp_utc`.
fn whole_data_set(whole: &Path) -> Vec<[String; 3]> {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    generate(&Plan {
        stores: 120,
        hours: bundled.join("menu_hours.csv"),
        timezones: bundled.join("timezones.csv"),
        ..Plan::full_size(whole)
    })
    .unwrap();
    let mut reader = csv::Reader::from_path(whole.join("store_status.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id, status, at) = (column("store_id"), column("status"), column("timestamp_utc"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            [r[id].to_string(), r[status].to_string(), r[at].to_string()]
        })
        .collect()
}

fn csv_body(rows: &[[String; 3]]) -> String {
    let mut body = format!("{HEADER}\n");
    for [id, status, at] in rows {
        body.push_str(&format!("{id},{status},{at}\n"));
    }
    body
}

fn ndjson_body(rows: &[[String; 3]]) -> String {
    rows.iter()
        .map(|[id, status, at]| {
            serde_json::json!({ "store_id": id, "status": status, "timestamp_utc": at }).to_string() + "\n"
        })
        .collect()
}

/// The server on `data`, no report workers, every call needing a token.
async fn serving_with_tokens(db: &TestDb, data: &Path) -> TestApp {
    TestApp::spawn_adjusted(db, data, 0, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await
}

async fn push(app: &TestApp, token: Option<&str>, content_type: &str, body: String) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/polls", app.address))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn pushed(app: &TestApp, token: &str, content_type: &str, body: String) -> serde_json::Value {
    let response = push(app, Some(token), content_type, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn half_loaded_from_the_file_half_pushed_gives_the_reports_of_the_whole_file() {
    let (whole, half) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rows = whole_data_set(whole.path());
    for file in ["menu_hours.csv", "timezones.csv"] {
        std::fs::copy(whole.path().join(file), half.path().join(file)).unwrap();
    }
    let (filed, to_push): (Vec<_>, Vec<_>) = rows.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let filed: Vec<[String; 3]> = filed.into_iter().map(|(_, r)| r).collect();
    let to_push: Vec<[String; 3]> = to_push.into_iter().map(|(_, r)| r).collect();
    std::fs::write(half.path().join("store_status.csv"), csv_body(&filed)).unwrap();

    let db = TestDb::new().await;
    let operator = create_token(&db, "operator", "poller");
    let app = serving_with_tokens(&db, half.path()).await;
    // The load lock held shared, as a push holds it, keeps `tidy_edges` away (it gives up
    // after 5 s): the first reports below read the pushed polls unmarked, by their spans.
    let mut tidy_away = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(0x0057_01e0_10ad_i64) // db::loads::LOAD_LOCK
        .execute(&mut *tidy_away)
        .await
        .unwrap();

    let batches: Vec<&[[String; 3]]> = to_push.chunks(to_push.len() / 5 + 1).collect();
    let mut accepted = 0;
    for (i, batch) in batches.iter().enumerate() {
        let answer = if i == 2 {
            // Compressed with the zstd library, as `curl --compressed`-style clients send it.
            let body = zstd::encode_all(csv_body(batch).as_bytes(), 3).unwrap();
            let response = reqwest::Client::new()
                .post(format!("{}/polls", app.address))
                .bearer_auth(&operator)
                .header("content-type", "text/csv")
                .header("content-encoding", "zstd")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json().await.unwrap()
        } else if i % 2 == 0 {
            pushed(&app, &operator, "text/csv", csv_body(batch)).await
        } else {
            pushed(&app, &operator, "application/x-ndjson", ndjson_body(batch)).await
        };
        assert_eq!(answer["accepted"], batch.len(), "{answer}");
        assert_eq!(answer["duplicates"], 0, "{answer}");
        accepted += batch.len();
        if i == 1 {
            // The same batch again, as the other format: all duplicates, nothing changes.
            let again = pushed(&app, &operator, "text/csv", csv_body(batch)).await;
            assert_eq!(again["accepted"], 0, "{again}");
            assert_eq!(again["duplicates"], batch.len(), "{again}");
            assert_eq!(
                again["dataVersion"], answer["dataVersion"],
                "a batch of duplicates changes no data"
            );
        }
    }
    assert_eq!(accepted, to_push.len());

    // Bad rows are rejected with their lines; the good ones of the batch still go in.
    let mut bad = csv_body(&filed[..2]);
    bad.push_str("42,sleeping,2023-01-25 10:00:00 UTC\n");
    bad.push_str("42,active,yesterday\n");
    bad.push_str("43,active,2999-01-01 00:00:00 UTC\n");
    let answer = pushed(&app, &operator, "text/csv; charset=utf-8", bad).await;
    assert_eq!(answer["received"], 5, "{answer}");
    assert_eq!(
        answer["duplicates"], 2,
        "rows of the file are stored already: {answer}"
    );
    assert_eq!(answer["accepted"], 0, "{answer}");
    let lines: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5, 6], "{answer}");
    assert!(
        answer["rejected"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("clock"),
        "{answer}"
    );
    assert_eq!(
        answer["newestPoll"].as_str().unwrap()[..10],
        rows.iter().map(|r| r[2].clone()).max().unwrap()[..10],
        "a rejected poll from the future is not the newest"
    );

    let (unmarked, pending) = unmarked_edges(&db).await;
    assert!(unmarked > 0, "pushed polls go in unmarked");
    assert_eq!(
        pending, unmarked,
        "every unmarked edge is in a noted span or beside one"
    );
    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
        assert_eq!(
            from_db(&db, interpolation).await,
            from_files(whole.path(), interpolation),
            "{interpolation:?}, spans not tidied"
        );
    }

    tidy_away.rollback().await.unwrap();
    store_monitor::jobs::tidy_edges::tidy(&db.pool).await.unwrap();
    assert_eq!(unmarked_edges(&db).await, (0, 0), "tidied, every edge is marked");
    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
        assert_eq!(
            from_db(&db, interpolation).await,
            from_files(whole.path(), interpolation),
            "{interpolation:?}, tidied"
        );
    }
    app.stop().await;
}

/// Polls that begin or end a run of equal statuses but are not marked as edges, and how
/// many of those are in a span a push noted or the poll on either side of one.
async fn unmarked_edges(db: &TestDb) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM edge_work w WHERE w.store = x.store
                       AND (x.at BETWEEN w.lo AND w.hi OR (x.at < w.lo AND x.next >= w.lo)
                            OR (x.at > w.hi AND x.previous <= w.hi))))
         FROM (SELECT store, at, edge, lag(at) OVER w AS previous, lead(at) OVER w AS next,
                      active IS DISTINCT FROM lag(active) OVER w
                      OR active IS DISTINCT FROM lead(active) OVER w AS exact
               FROM polls WINDOW w AS (PARTITION BY store ORDER BY at)) x
         WHERE exact AND NOT edge",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_door_refuses_strangers_viewers_other_media_and_oversized_batches() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let db = TestDb::new().await;
    let viewer = create_token(&db, "viewer", "reader");
    let operator = create_token(&db, "operator", "poller");
    let app = serving_with_tokens(&db, &data).await;
    let one = format!("{HEADER}\n1,active,2023-01-25 10:00:00 UTC\n");
    assert_eq!(push(&app, None, "text/csv", one.clone()).await.status(), 401);
    assert_eq!(
        push(&app, Some(&viewer), "text/csv", one.clone()).await.status(),
        403
    );
    let json = push(&app, Some(&operator), "application/json", one.clone()).await;
    assert_eq!(json.status(), 415);
    assert!(json.text().await.unwrap().contains("text/csv"));
    let headless = push(
        &app,
        Some(&operator),
        "text/csv",
        "1,active,2023-01-25 10:00:00 UTC\n".into(),
    )
    .await;
    assert_eq!(
        headless.status(),
        400,
        "a CSV without the header is refused whole"
    );

    let mut big = format!("{HEADER}\n");
    for i in 0..=100_000 {
        big.push_str(&format!("{i},active,2023-01-25 10:00:00 UTC\n"));
    }
    let refused = push(&app, Some(&operator), "text/csv", big).await;
    assert_eq!(refused.status(), 413);
    let told: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(told["code"], "PAYLOAD_TOO_LARGE");
    assert!(told["error"].as_str().unwrap().contains("100000"), "{told}");

    // A body past 16 MiB is refused before it is read whole; the server answers on.
    let huge = push(&app, Some(&operator), "text/csv", "x".repeat((16 << 20) + 1)).await;
    assert_eq!(huge.status(), 413);
    let told: serde_json::Value = huge.json().await.unwrap();
    assert_eq!(told["code"], "PAYLOAD_TOO_LARGE", "{told}");
    assert_eq!(push(&app, Some(&operator), "text/csv", one).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_batches_of_the_same_stores_each_poll_stored_once() {
    let (whole, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rows = whole_data_set(whole.path());
    for file in ["menu_hours.csv", "timezones.csv"] {
        std::fs::copy(whole.path().join(file), empty.path().join(file)).unwrap();
    }
    std::fs::write(empty.path().join("store_status.csv"), format!("{HEADER}\n")).unwrap();
    let db = TestDb::new().await;
    let operator = create_token(&db, "operator", "poller");
    let app = serving_with_tokens(&db, empty.path()).await;

    // Four clients, each pushing every batch (in its own order): each poll is sent four
    // times, at once, and must be stored once.
    let batches: Vec<String> = rows.chunks(rows.len() / 8 + 1).map(csv_body).collect();
    let clients = (0..4).map(|client| {
        let (batches, app, operator) = (&batches, &app, &operator);
        async move {
            let mut accepted = 0;
            for i in 0..batches.len() {
                let batch = &batches[(i + 2 * client) % batches.len()];
                loop {
                    let response = push(app, Some(operator), "text/csv", batch.clone()).await;
                    if response.status() == 503 {
                        // Lost to a concurrent batch of the same polls: retry, as told.
                        assert!(response.headers().contains_key("retry-after"));
                        continue;
                    }
                    assert_eq!(response.status(), 200);
                    let answer: serde_json::Value = response.json().await.unwrap();
                    accepted += answer["accepted"].as_u64().unwrap();
                    break;
                }
            }
            accepted
        }
    });
    let accepted: u64 = futures::future::join_all(clients).await.into_iter().sum();
    assert_eq!(
        accepted,
        rows.len() as u64,
        "each poll accepted once, by one of the clients"
    );
    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
        assert_eq!(
            from_db(&db, interpolation).await,
            from_files(whole.path(), interpolation),
            "{interpolation:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn record_polls_stores_a_small_batch_and_answers_as_the_rest_door_does() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let db = TestDb::new().await;
    let viewer = create_token(&db, "viewer", "reader");
    let operator = create_token(&db, "operator", "poller");
    let app = serving_with_tokens(&db, &data).await;
    let record = "mutation($p: [PollInput!]!) { recordPolls(polls: $p) {
        received accepted duplicates rejected { line reason } dataVersion newestPoll load { file rowsInserted } } }";
    let polls = serde_json::json!([
        { "storeId": "pushed-1", "status": "ACTIVE", "timestampUtc": "2023-01-25T18:20:00Z" },
        { "storeId": "pushed-1", "status": "INACTIVE", "timestampUtc": "2023-01-25T18:30:00.5Z" },
        { "storeId": "pushed-2", "status": "ACTIVE", "timestampUtc": "2999-01-01T00:00:00Z" },
    ]);
    let refused = app
        .graphql_as(&viewer, record, serde_json::json!({ "p": polls }))
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    let answer = app
        .graphql_as(&operator, record, serde_json::json!({ "p": polls }))
        .await;
    let recorded = &answer["data"]["recordPolls"];
    assert_eq!(recorded["received"], 3, "{answer}");
    assert_eq!(recorded["accepted"], 2, "{answer}");
    assert_eq!(recorded["rejected"][0]["line"], 3, "{answer}");
    assert_eq!(
        recorded["newestPoll"], "2023-01-25T18:30:00.500+00:00",
        "{answer}"
    );
    let file = recorded["load"]["file"].as_str().unwrap();
    assert!(file.starts_with("push by token \"poller\""), "{answer}");
    let again = app
        .graphql_as(&operator, record, serde_json::json!({ "p": polls }))
        .await;
    assert_eq!(again["data"]["recordPolls"]["duplicates"], 2, "{again}");
    assert_eq!(
        again["data"]["recordPolls"]["dataVersion"], recorded["dataVersion"],
        "{again}"
    );

    let polls =
        serde_json::json!({ "storeId": "x", "status": "ACTIVE", "timestampUtc": "2023-01-25T18:20:00Z" });
    let too_many: Vec<_> = (0..10_001).map(|_| polls.clone()).collect();
    let refused = app
        .graphql_as(&operator, record, serde_json::json!({ "p": too_many }))
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE",
        "{refused}"
    );
    app.stop().await;
}

async fn push_with_key(app: &TestApp, token: &str, key: &str, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/polls", app.address))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .header("idempotency-key", format!("\"{key}\""))
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_gets_the_first_answer_back_and_refuses_another_batch() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let db = TestDb::new().await;
    let operator = create_token(&db, "operator", "poller");
    let other = create_token(&db, "operator", "another poller");
    let app = serving_with_tokens(&db, &data).await;
    let batch =
        format!("{HEADER}\nkeyed,active,2023-01-25 18:20:00 UTC\nkeyed,sleeping,2023-01-25 18:30:00 UTC\n");
    let first = push_with_key(&app, &operator, "batch-1", batch.clone()).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first["accepted"], 1, "{first}");

    // Its answer lost, the client sends it again: the same answer, not "1 duplicate".
    let again = push_with_key(&app, &operator, "batch-1", batch.clone()).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first answer, rejected rows included");

    // The same key with another body is refused; another caller's keys are its own.
    let other_batch = format!("{HEADER}\nkeyed,active,2023-01-25 18:40:00 UTC\n");
    let reused = push_with_key(&app, &operator, "batch-1", other_batch.clone()).await;
    assert_eq!(reused.status(), 422);
    let told: serde_json::Value = reused.json().await.unwrap();
    assert_eq!(told["code"], "IDEMPOTENCY_KEY_REUSED", "{told}");
    assert_eq!(
        push_with_key(&app, &other, "batch-1", other_batch).await.status(),
        200
    );

    // Retries racing each other: one stores, the others read its answer.
    let racing = format!("{HEADER}\nkeyed,inactive,2023-01-25 18:50:00 UTC\n");
    let answers =
        futures::future::join_all((0..4).map(|_| push_with_key(&app, &operator, "batch-2", racing.clone())))
            .await;
    let mut accepted = 0;
    for answer in answers {
        assert_eq!(answer.status(), 200);
        let answer: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(
            answer["duplicates"], 0,
            "no retry is counted as duplicates: {answer}"
        );
        accepted += answer["accepted"].as_u64().unwrap();
    }
    assert_eq!(accepted, 4, "each answer is the first's: 1 accepted");

    let bad = reqwest::Client::new()
        .post(format!("{}/polls", app.address))
        .bearer_auth(&operator)
        .header("content-type", "text/csv")
        .header("idempotency-key", "\"\"")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // A day later the key is forgotten, and may come with a new batch.
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'batch-1'")
        .execute(&db.pool)
        .await
        .unwrap();
    let forgotten = store_monitor::jobs::forget_idempotency_keys::forget(&db.pool)
        .await
        .unwrap();
    assert_eq!(forgotten, 2, "batch-1 of both callers");
    let new_batch = format!("{HEADER}\nkeyed,active,2023-01-25 19:00:00 UTC\n");
    assert_eq!(
        push_with_key(&app, &operator, "batch-1", new_batch)
            .await
            .status(),
        200
    );
    app.stop().await;
}

/// Polls stored and loads recorded.
async fn stored(db: &TestDb) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM polls), (SELECT count(*) FROM data_loads)")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_cut_short_by_a_dropped_connection_or_a_killed_server_leaves_nothing() {
    use common::child::{ChildServer, serve_args};
    use tokio::io::AsyncWriteExt;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let reports = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    let mut batch = format!("{HEADER}\n");
    for i in 0..20_000 {
        let (h, m, s) = (i / 3600, i / 60 % 60, i % 60);
        batch.push_str(&format!(
            "cut-{},active,2023-01-25 {h:02}:{m:02}:{s:02} UTC\n",
            i % 500
        ));
    }
    let mut args = serve_args(&db.url, &data, reports.path());
    args.extend(["--auth".into(), "off".into()]);

    // The client drops the connection halfway through the body.
    let server = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args.clone());
    let before = stored(&db).await;
    let address = server.address.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /polls HTTP/1.1\r\nhost: {address}\r\ncontent-type: text/csv\r\ncontent-length: {}\r\n\r\n",
        batch.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all(&batch.as_bytes()[..batch.len() / 2])
        .await
        .unwrap();
    drop(socket);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(stored(&db).await, before, "nothing of half a batch");
    let whole = reqwest::Client::new()
        .post(format!("{}/polls", server.address))
        .header("content-type", "text/csv")
        .body(batch.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200, "the server goes on");
    let after_one = stored(&db).await;
    assert_eq!(after_one.0, before.0 + 20_000);
    server.terminate();

    // The server's process dies (SIGABRT, as a kill -9 would) just before the batch commits.
    let mut doomed = ChildServer::start_with_env(
        env!("CARGO_BIN_EXE_store-monitor"),
        args,
        [("STORE_MONITOR_FAILPOINT", "push-before-commit")],
    );
    let other: String = batch.replace("cut-", "killed-");
    let cut = reqwest::Client::new()
        .post(format!("{}/polls", doomed.address))
        .header("content-type", "text/csv")
        .body(other)
        .send()
        .await;
    assert!(cut.is_err(), "no answer from a dead server: {cut:?}");
    let status = doomed.child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        stored(&db).await,
        after_one,
        "nothing of the batch it was storing"
    );
}

/// The server as a process on the bundled data, without tokens, `failpoint` armed; and its
/// reports folder, to keep while it runs.
fn stalling_server(db: &TestDb, failpoint: &str) -> (common::child::ChildServer, tempfile::TempDir) {
    use common::child::{ChildServer, serve_args};
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let reports = tempfile::tempdir().unwrap();
    let mut args = serve_args(&db.url, &data, reports.path());
    args.extend(["--auth".into(), "off".into()]);
    let server = ChildServer::start_with_env(
        env!("CARGO_BIN_EXE_store-monitor"),
        args,
        [("STORE_MONITOR_FAILPOINT", failpoint)],
    );
    (server, reports)
}

#[tokio::test]
async fn pushes_over_capacity_are_told_to_retry_at_once_and_the_api_goes_on() {
    let db = TestDb::new().await;
    // Every batch stalls once it holds its place: six fill the server.
    let (mut server, _reports) = stalling_server(&db, "push-stall");
    let client = reqwest::Client::new();
    let one = |i: usize| {
        client
            .post(format!("{}/polls", server.address))
            .header("content-type", "text/csv")
            .body(format!("{HEADER}\nfull-{i},active,2023-01-25 10:00:00 UTC\n"))
            .send()
    };
    let stalled: Vec<_> = (0..6).map(|i| tokio::spawn(one(i))).collect();
    server
        .logged("failpoint reached: stalling", std::time::Duration::from_secs(10))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let refused = one(6).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "answered at once"
    );
    let status = client
        .get(format!("{}/readyz", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200, "the API's own connections are untouched");
    for s in stalled {
        s.abort();
    }
    // Its stalled batches would hold a graceful stop for its whole grace period.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn large_batches_take_a_core_each_and_one_poll_pushes_still_go_in() {
    let db = TestDb::new().await;
    // Every large batch stalls once it holds a core.
    let (mut server, _reports) = stalling_server(&db, "large-push-stall");
    let client = reqwest::Client::new();
    let send = |body: String| {
        client
            .post(format!("{}/polls", server.address))
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let large = |i: usize| {
        let mut body = format!("{HEADER}\n");
        for minute in 0..1000 {
            body.push_str(&format!(
                "large-{i},active,2023-01-25 10:{:02}:{:02} UTC\n",
                minute / 60,
                minute % 60
            ));
        }
        send(body)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stalled: Vec<_> = (0..cores).map(|i| tokio::spawn(large(i))).collect();
    server
        .logged("failpoint reached: stalling", std::time::Duration::from_secs(10))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let one = send(format!("{HEADER}\nsmall,active,2023-01-25 10:00:00 UTC\n"))
        .await
        .unwrap();
    assert_eq!(one.status(), 200, "a one-poll push does not wait for a core");
    let started = std::time::Instant::now();
    let refused = large(cores).await.unwrap();
    assert_eq!(
        refused.status(),
        429,
        "a large batch waits a few seconds for a core, then comes back"
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "it waited first"
    );
    for s in stalled {
        s.abort();
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

async fn push_command(app: &TestApp, token: &str, file: &Path) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(["push", "--url", &app.address, "--batch", "1000", "--clients", "3"])
        .arg(file)
        .env("STORE_MONITOR_TOKEN", token)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    said
}

#[tokio::test]
async fn the_push_command_sends_a_file_in_batches_and_again_stores_nothing_twice() {
    let (whole, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rows = whole_data_set(whole.path());
    for file in ["menu_hours.csv", "timezones.csv"] {
        std::fs::copy(whole.path().join(file), empty.path().join(file)).unwrap();
    }
    std::fs::write(empty.path().join("store_status.csv"), format!("{HEADER}\n")).unwrap();
    let db = TestDb::new().await;
    let operator = create_token(&db, "operator", "poller");
    let app = serving_with_tokens(&db, empty.path()).await;
    let status = whole.path().join("store_status.csv");
    let said = push_command(&app, &operator, &status).await;
    let unique = stored(&db).await.0;
    assert!(
        said.contains(&format!("{} polls sent", rows.len())) && said.contains(&format!("{unique} new")),
        "{said}"
    );
    let again = push_command(&app, &operator, &status).await;
    // Sent again, each batch is replayed (its key is its bytes): nothing new, every poll
    // stored already (a replay used to count its first answer's polls as new).
    assert!(
        again.contains(" 0 new") && again.contains(&format!("{} stored already", rows.len())),
        "{again}"
    );
    assert_eq!(stored(&db).await.0, unique, "nothing stored twice");
    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
        assert_eq!(
            from_db(&db, interpolation).await,
            from_files(whole.path(), interpolation),
            "{interpolation:?}"
        );
    }
    app.stop().await;
}

/// Triggers a report as of `as_of` and waits until it is COMPLETE; its id.
async fn complete_report(app: &TestApp, as_of: &str) -> uuid::Uuid {
    let trigger = "mutation($a: DateTime) { triggerReport(input: { asOf: $a }) { id } }";
    let answer = app.graphql(trigger, serde_json::json!({ "a": as_of })).await;
    let id = answer["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..600 {
        let status = app
            .graphql(
                "query($id: ID!) { report(id: $id) { status } }",
                serde_json::json!({ "id": id }),
            )
            .await;
        if status["data"]["report"]["status"] == "COMPLETE" {
            return id.parse().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("report {id} did not complete");
}

/// The data version a report was computed on, and the report whose result it has.
async fn computed_from(db: &TestDb, id: uuid::Uuid) -> (i64, uuid::Uuid) {
    sqlx::query_as("SELECT data_version, result_of FROM reports WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pushed_batch_is_announced_and_no_report_is_reused_across_it() {
    use common::socket::Socket;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, &data, 1).await;
    let as_of = "2023-01-25T18:13:22Z";
    let before = complete_report(&app, as_of).await;
    let again = complete_report(&app, as_of).await;
    assert_eq!(
        computed_from(&db, again).await.1,
        before,
        "equal data: the result is reused"
    );

    let mut socket = Socket::open(&app.address, serde_json::json!({})).await;
    socket.expect_ack().await;
    socket
        .subscribe(
            "1",
            "subscription { dataset { dataVersion } }",
            serde_json::json!({}),
        )
        .await;
    socket
        .subscribe("ready", "{ __typename }", serde_json::json!({}))
        .await;
    while socket.next().await.unwrap()["id"] != "ready" {}
    assert_eq!(socket.next().await.unwrap()["type"], "complete");

    let batch = format!("{HEADER}\n1481966498820158979,inactive,2023-01-25 18:00:00 UTC\n");
    let answer = pushed_anonymously(&app, batch).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let heard = socket.next().await.unwrap();
    assert_eq!(
        heard["payload"]["data"]["dataset"]["dataVersion"], answer["dataVersion"],
        "{heard}"
    );

    let after = complete_report(&app, as_of).await;
    let (version, result) = computed_from(&db, after).await;
    assert_eq!(
        result, after,
        "computed anew, not the result from before the push"
    );
    assert_eq!(serde_json::json!(version), answer["dataVersion"]);
    app.stop().await;
}

async fn pushed_anonymously(app: &TestApp, body: String) -> serde_json::Value {
    let response = push(app, None, "text/csv", body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A store id PostgreSQL cannot index (6,000 characters: its btree takes about 2.7 KB) was
/// a 500 that lost the batch's good rows, and in the status file it failed every reload.
/// Now any id over 255 bytes is one rejected row, at every door and in every file.
#[tokio::test]
async fn a_store_id_too_long_to_index_is_one_rejected_row_at_every_door_and_in_every_file() {
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    for name in ["store_status.csv", "menu_hours.csv", "timezones.csv"] {
        std::fs::copy(common::example_dirs()[0].join(name), data.path().join(name)).unwrap();
    }
    let app = TestApp::spawn_adjusted(&db, data.path(), 0, true, None, |_| {}).await;
    let long = "7".repeat(6_000);
    let longest = "8".repeat(255);
    let rows = |ids: &[&str]| -> Vec<[String; 3]> {
        ids.iter()
            .map(|id| [id.to_string(), "active".into(), "2023-01-25 18:00:00 UTC".into()])
            .collect()
    };
    let batch = rows(&["good-1", &long, &longest]);
    for (media, body) in [
        ("text/csv", csv_body(&batch)),
        ("application/x-ndjson", ndjson_body(&batch)),
    ] {
        let response = push(&app, None, media, body).await;
        assert_eq!(response.status(), 200, "{media}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["received"], 3, "{media}: {answer}");
        assert_eq!(
            answer["rejected"].as_array().unwrap().len(),
            1,
            "{media}: {answer}"
        );
        let rejected = &answer["rejected"][0];
        assert_eq!(
            rejected["line"],
            if media == "text/csv" { 3 } else { 2 },
            "{answer}"
        );
        let reason = rejected["reason"].as_str().unwrap();
        assert!(
            reason.contains("6000 bytes") && reason.contains("at most 255"),
            "{reason}"
        );
        assert!(
            reason.len() < 200 && rejected["raw"].as_str().unwrap().len() <= 500,
            "{answer}"
        );
    }
    let record = "mutation($p: [PollInput!]!) { recordPolls(polls: $p) { received accepted duplicates rejected { line reason } } }";
    let polls = serde_json::json!([
        { "storeId": "good-2", "status": "ACTIVE", "timestampUtc": "2023-01-25T18:20:00Z" },
        { "storeId": long, "status": "ACTIVE", "timestampUtc": "2023-01-25T18:20:00Z" },
    ]);
    let answer = app.graphql(record, serde_json::json!({ "p": polls })).await;
    let recorded = &answer["data"]["recordPolls"];
    assert_eq!(
        (&recorded["received"], &recorded["accepted"]),
        (&2.into(), &1.into()),
        "{answer}"
    );
    assert_eq!(recorded["rejected"][0]["line"], 2, "{answer}");
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT store_id FROM stores WHERE store_id LIKE 'good-%' OR length(store_id) = 255 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, [&longest, "good-1", "good-2"], "the good rows went in");

    // The same line in each file a reload reads: the reload goes on, the row rejected.
    let append = |name: &str, line: String| {
        let path = data.path().join(name);
        let mut text = std::fs::read_to_string(&path).unwrap();
        let header: Vec<String> = text
            .lines()
            .next()
            .unwrap()
            .split(',')
            .map(|h| h.trim().to_string())
            .collect();
        let fields: Vec<String> = line.split(',').map(str::to_string).collect();
        // Each file's own order of columns, from its header.
        let row: Vec<String> = header
            .iter()
            .map(|h| {
                let at = [
                    "store_id",
                    "status",
                    "timestamp_utc",
                    "dayOfWeek",
                    "day",
                    "start_time_local",
                    "end_time_local",
                    "timezone_str",
                ]
                .iter()
                .position(|c| c == h)
                .unwrap();
                fields[at].clone()
            })
            .collect();
        text.push_str(&format!("{}\n", row.join(",")));
        std::fs::write(&path, text).unwrap();
    };
    let line = |status: &str, day: &str, zone: &str| {
        format!("{long},{status},2023-01-25 19:00:00 UTC,{day},{day},09:00,17:00,{zone}")
    };
    append("store_status.csv", line("active", "0", "UTC"));
    append("menu_hours.csv", line("active", "0", "UTC"));
    append("timezones.csv", line("active", "0", "America/Chicago"));
    let reload = "mutation { reloadData { changed files { kind outcome rowsRejected error } } }";
    let answer = app.graphql(reload, serde_json::json!({})).await;
    let files = answer["data"]["reloadData"]["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(files.len(), 3, "{answer}");
    for file in files {
        assert_ne!(file["outcome"], "FAILED", "{answer}");
        assert_eq!(file["rowsRejected"], 1, "{answer}");
    }
    let rejected = app
        .graphql(
            "{ dataset { loads(first: 3) { rejectedRows { reason } } } }",
            serde_json::json!({}),
        )
        .await;
    assert!(rejected.to_string().contains("at most 255"), "{rejected}");
    app.stop().await;
}
