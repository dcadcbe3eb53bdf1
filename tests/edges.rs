//! What issue 18 found trying the API as an attacker and as a new user would, each at its
//! edge: instants out of range, a NUL in a store id, made-up and borrowed cursors, the
//! answer's key order, errors' locations, persisted queries sent without a token, the
//! command line's token commands, and a service error of each kind through REST.

mod common;

use common::{TestApp, TestDb, example_dirs};
use serde_json::{Value, json};

fn odd_hours() -> std::path::PathBuf {
    example_dirs()
        .into_iter()
        .find(|d| d.ends_with("odd-hours"))
        .unwrap()
}

fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {answer}"))
}

const TIMELINE: &str = "query($from: DateTime, $to: DateTime, $asOf: DateTime) {
  store(id: \"k\") { timeline(from: $from, to: $to, asOf: $asOf) { start end } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_have_one_range_refused_clearly_outside_it() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &odd_hours(), 1).await;

    // Far past and far future: the client's mistake, answered at once, and the server
    // goes on serving (it once panicked and dropped the connection).
    for variables in [
        json!({ "to": "-262143-01-01T00:00:00Z" }),
        json!({ "from": "+262142-12-31T00:00:00Z", "to": "+262142-12-31T01:00:00Z" }),
        json!({ "asOf": "-262143-01-01T00:00:00Z" }),
        json!({ "to": "10000-01-01T00:00:00Z" }),
    ] {
        let answer = server.graphql(TIMELINE, variables.clone()).await;
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{variables}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("RFC 3339"), "{message}");
    }
    let uptime = server
        .graphql(
            "{ store(id: \"k\") { uptime(asOf: \"+200000-01-01T00:00:00Z\") { storeId } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&uptime), "BAD_USER_INPUT", "{uptime}");
    let trigger = server
        .graphql(
            "mutation { triggerReport(input: { asOf: \"-200000-01-01T00:00:00Z\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&trigger), "BAD_USER_INPUT", "{trigger}");

    // Inside the range, past 2262 (where a nanosecond count overflows), pieces are where
    // they were asked for, not in 1816.
    let late = server
        .graphql(
            TIMELINE,
            json!({ "from": "2300-01-01T00:00:00Z", "to": "2300-01-02T00:00:00Z", "asOf": "2300-01-02T00:00:00Z" }),
        )
        .await;
    let pieces = late["data"]["store"]["timeline"]
        .as_array()
        .unwrap_or_else(|| panic!("{late}"));
    assert!(!pieces.is_empty(), "{late}");
    assert_eq!(pieces[0]["start"], "2300-01-01T00:00:00+00:00", "{late}");
    assert_eq!(pieces.last().unwrap()["end"], "2300-01-02T00:00:00+00:00");

    // An instant that does not parse names the format it should have.
    let garbled = server.graphql(TIMELINE, json!({ "asOf": "yesterday" })).await;
    assert_eq!(code(&garbled), "BAD_USER_INPUT", "{garbled}");
    assert!(
        garbled["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("RFC 3339"),
        "{garbled}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_store_id_is_the_clients_mistake() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &odd_hours(), 1).await;
    let store = server
        .graphql(
            "query($id: String!) { store(id: $id) { storeId } }",
            json!({ "id": "k\u{0}" }),
        )
        .await;
    assert_eq!(code(&store), "BAD_USER_INPUT", "{store}");
    assert!(store["errors"][0]["message"].as_str().unwrap().contains("NUL"));
    // As a global id it is simply no object.
    let node = server
        .graphql(
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": "Store:k\u{0}" }),
        )
        .await;
    assert!(
        node["data"]["node"].is_null() && node["errors"].is_null(),
        "{node}"
    );
    server.stop().await;
}

const ROWS: &str = "query($id: ID!, $after: String, $order: ReportRowOrder) {
  report(id: $id) { rows(first: 1, after: $after, orderBy: $order) { pageInfo { endCursor } nodes { storeId } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_are_opaque_and_belong_to_their_list() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &odd_hours(), 1).await;
    let mut ids = Vec::new();
    for interpolation in ["NEAREST", "FORWARD_FILL"] {
        let made = server
            .graphql(
                "mutation($i: Interpolation) { triggerReport(input: { interpolation: $i }) { id } }",
                json!({ "i": interpolation }),
            )
            .await;
        let id = made["data"]["triggerReport"]["id"].as_str().unwrap().to_string();
        let (_, last) = server.follow(&id, "graphql-transport-ws").await;
        assert_eq!(last["status"], "COMPLETE");
        ids.push(id);
    }
    let first = server.graphql(ROWS, json!({ "id": ids[0] })).await;
    let cursor = first["data"]["report"]["rows"]["pageInfo"]["endCursor"].clone();
    assert!(cursor.is_string(), "{first}");
    let next = server
        .graphql(ROWS, json!({ "id": ids[0], "after": cursor }))
        .await;
    assert!(next["errors"].is_null(), "its own list takes it: {next}");

    let by_figure = json!({ "field": "DOWNTIME_LAST_WEEK", "direction": "DESC" });
    for (variables, what) in [
        (json!({ "id": ids[0], "after": "zzz" }), "made up"),
        (json!({ "id": ids[0], "after": "" }), "empty"),
        (json!({ "id": ids[1], "after": cursor }), "another report's"),
        (
            json!({ "id": ids[0], "after": cursor, "order": by_figure }),
            "another order's",
        ),
    ] {
        let answer = server.graphql(ROWS, variables).await;
        assert_eq!(code(&answer), "BAD_USER_INPUT", "{what}: {answer}");
    }
    // A cursor forged to hold an instant no database stores is refused too, not an error
    // of ours.
    let forged = {
        use base64::Engine;
        let key = format!("reports\n-200000-01-01T00:00:00+00:00|{}", ids[0]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    };
    for after in [json!("zzz"), json!(forged)] {
        let reports = server
            .graphql(
                "query($after: String) { reports(after: $after) { nodes { id } } }",
                json!({ "after": after }),
            )
            .await;
        assert_eq!(code(&reports), "BAD_USER_INPUT", "{after}: {reports}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_keep_the_querys_order_and_request_errors_have_no_location() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &odd_hours(), 0).await;
    let client = reqwest::Client::new();
    let text = client
        .post(format!("{}/graphql", server.address))
        .json(&json!({ "query": "{ zebra: dataset { stores dataVersion } middle: __typename apple: dataset { polls } }" }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = |key: &str| text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
    assert!(at("zebra") < at("middle") && at("middle") < at("apple"), "{text}");
    assert!(at("\"stores\"") < at("dataVersion"), "{text}");

    // A document over the limits is refused as a whole: no line 0, column 0.
    let deep = format!("{{ {}__typename{} }}", "a { ".repeat(40), " }".repeat(40));
    let refused: Value = client
        .post(format!("{}/graphql", server.address))
        .json(&json!({ "query": deep }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        refused["errors"][0]["extensions"]["code"].is_string(),
        "{refused}"
    );
    assert!(refused["errors"][0].get("locations").is_none(), "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_query_is_kept_only_for_a_caller_who_may_run_it() {
    let db = TestDb::new().await;
    let secret = common::create_token(&db, "viewer", "apq");
    let server = TestApp::spawn_adjusted(&db, &odd_hours(), 0, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    let query = "{ dataset { dataVersion } }";
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(query.as_bytes()))
    };
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let post = |body: Value, token: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/graphql", server.address))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };

    let (status, refused) = post(json!({ "query": query, "extensions": extensions }), None).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused["errors"][0].get("locations").is_none(), "{refused}");
    let (_, unknown) = post(json!({ "extensions": extensions }), Some(&secret)).await;
    assert_eq!(
        code(&unknown),
        "PERSISTED_QUERY_NOT_FOUND",
        "a refused caller registered nothing: {unknown}"
    );

    let (status, _) = post(json!({ "query": query, "extensions": extensions }), Some(&secret)).await;
    assert_eq!(status, 200);
    let (_, known) = post(json!({ "extensions": extensions }), Some(&secret)).await;
    assert!(known["data"]["dataset"]["dataVersion"].is_number(), "{known}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_answers_each_kind_of_service_error_with_its_status() {
    let db = TestDb::new().await;
    let server = TestApp::spawn_adjusted(&db, &odd_hours(), 0, true, None, |s| {
        s.max_queued_reports = 1;
        s.trigger_rate = 2;
    })
    .await;
    let bad = server.get("/get_report?report_id=nope").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "BAD_USER_INPUT", "{body}");

    let missing = server
        .get("/get_report?report_id=00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "NOT_FOUND");

    // No workers: the first report waits, the second finds the queue full, the third is
    // over the rate limit; both say when to come back.
    assert_eq!(server.post("/trigger_report").await.status(), 200);
    let full = server.post("/trigger_report").await;
    assert_eq!(full.status(), 429);
    assert_eq!(full.headers()["retry-after"], "5");
    let limited = server.post("/trigger_report").await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["code"],
        "TOO_MANY_REQUESTS"
    );
    server.stop().await;
}

/// `store-monitor ARGS` with `DATABASE_URL` set: whether it succeeded, and its stderr.
fn run(url: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_commands_never_create_a_database_and_revoke_by_prefix_once() {
    let db = TestDb::new().await;
    let name = format!("{}_never_made", db.name);
    let missing = db.url.replace(&db.name, &name);
    for args in [
        &["token", "create", "--role", "admin", "--name", "x"][..],
        &["token", "list"][..],
    ] {
        let (ok, stderr) = run(&missing, args);
        assert!(!ok, "{args:?}");
        assert!(
            stderr.contains("does not exist") && stderr.contains("serve"),
            "{stderr}"
        );
    }
    let made: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!made, "no database was created");

    common::create_token(&db, "viewer", "short");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let prefix = &id.to_string()[..8];
    let (ok, first) = run(&db.url, &["token", "revoke", prefix]);
    assert!(ok && first.contains("revoked viewer token"), "{first}");
    let (ok, again) = run(&db.url, &["token", "revoke", &id.to_string()]);
    assert!(ok && again.contains("revoked already"), "{again}");
    let (ok, unknown) = run(&db.url, &["token", "revoke", "ffffffff"]);
    assert!(!ok && unknown.contains("no token id starts with"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_required_on_loopback_without_a_token_says_why() {
    let db = TestDb::new().await;
    let data = odd_hours();
    let reports = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(
        &db.url,
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--auth",
            "required",
            "--data",
            data.to_str().unwrap(),
            "--reports",
            reports.path().to_str().unwrap(),
        ],
    );
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("(--auth required)"), "{stderr}");
    assert!(!stderr.contains("non-loopback"), "{stderr}");
}
