//! The server end to end: the real app on a random port against a fresh database.

mod common;

use std::path::Path;

use common::{TestApp, TestDb, example_dirs};
use serde_json::{Value, json};
use store_monitor::domain::Interpolation;
use store_monitor::input::{DataFiles, FileChoice, InputData};
use store_monitor::output::write_report;

const TRIGGER: &str = "mutation($input: TriggerReportInput) {
    triggerReport(input: $input) { id status interpolation asOf } }";
const REPORT: &str =
    "query($id: ID!) { report(id: $id) { id status csv csvUrl error storesTotal storesDone progress } }";

async fn trigger(app: &TestApp, input: Value) -> Value {
    let response = app.graphql(TRIGGER, json!({ "input": input })).await;
    assert!(response["errors"].is_null(), "{response}");
    response["data"]["triggerReport"].clone()
}

async fn report(app: &TestApp, id: &str) -> Value {
    let response = app.graphql(REPORT, json!({ "id": id })).await;
    assert!(response["errors"].is_null(), "{response}");
    response["data"]["report"].clone()
}

/// The report once finished: its subscription says when.
async fn finished(app: &TestApp, id: &str) -> Value {
    app.follow(id, "graphql-transport-ws").await;
    report(app, id).await
}

/// What `store-monitor report` says for the same files.
fn offline_csv(dir: &Path, as_of: Option<&str>, interpolation: Interpolation) -> String {
    let files = DataFiles::find(dir, &FileChoice::default()).unwrap();
    let as_of = as_of.map(|t| store_monitor::input::fields::timestamp(t.as_bytes()).unwrap());
    let mut out = Vec::new();
    write_report(
        &InputData::load(&files)
            .unwrap()
            .prepare()
            .report(as_of, interpolation),
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("(none)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_pending_running_complete_and_every_example_csv_matches() {
    for dir in example_dirs() {
        let db = TestDb::new().await;
        // No workers in the serving process: the reports wait, PENDING, until a worker
        // process starts, so every state can be seen, and the events cross processes.
        let server = TestApp::spawn(&db, &dir, 0).await;
        let nearest = trigger(&server, json!({})).await;
        let forward = trigger(&server, json!({ "interpolation": "FORWARD_FILL" })).await;
        assert_eq!(
            (nearest["status"].as_str(), nearest["interpolation"].as_str()),
            (Some("PENDING"), Some("NEAREST"))
        );
        assert_eq!(forward["interpolation"], "FORWARD_FILL");

        let (ready_a, wait_a) = tokio::sync::oneshot::channel();
        let (ready_b, wait_b) = tokio::sync::oneshot::channel();
        let (server_ref, nid, fid) = (
            &server,
            nearest["id"].as_str().unwrap(),
            forward["id"].as_str().unwrap(),
        );
        let follow = async {
            // Both WebSocket protocols: the current one and the older one.
            tokio::join!(
                server_ref.follow_ready(nid, "graphql-transport-ws", Some(ready_a)),
                server_ref.follow_ready(fid, "graphql-ws", Some(ready_b)),
            )
        };
        let start_worker = async {
            wait_a.await.unwrap();
            wait_b.await.unwrap();
            TestApp::spawn_worker(&db, &dir).await
        };
        let (((n_states, n_last), (f_states, f_last)), worker) = tokio::join!(follow, start_worker);
        assert_eq!(n_states, ["PENDING", "RUNNING", "COMPLETE"], "{}", dir.display());
        assert_eq!(f_states, ["PENDING", "RUNNING", "COMPLETE"], "{}", dir.display());
        assert_eq!(n_last["progress"], 1.0);

        for (id, last, expected) in [
            (nid, n_last, "expected_nearest.csv"),
            (fid, f_last, "expected_forward_fill.csv"),
        ] {
            let expected = std::fs::read_to_string(dir.join(expected)).unwrap();
            assert_eq!(
                report(&server, id).await["csv"].as_str().unwrap(),
                expected,
                "{} {id}",
                dir.display()
            );
            let file = server.get(last["csvUrl"].as_str().unwrap()).await;
            assert_eq!(file.status(), 200);
            assert!(
                file.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/csv")
            );
            assert_eq!(file.text().await.unwrap(), expected);
        }

        // asOf the newest poll is the same report: it reuses the finished one at once.
        let newest =
            server.graphql("{ dataset { newestPoll } }", json!({})).await["data"]["dataset"]["newestPoll"]
                .clone();
        let again = trigger(&server, json!({ "asOf": newest })).await;
        assert_eq!(again["status"], "COMPLETE", "an equal report completes at once");
        let expected = std::fs::read_to_string(dir.join("expected_nearest.csv")).unwrap();
        assert_eq!(
            report(&server, again["id"].as_str().unwrap()).await["csv"]
                .as_str()
                .unwrap(),
            expected
        );

        // An earlier asOf is computed, and agrees with the offline report.
        let earlier = "2023-01-22 12:00:00 UTC";
        let r = trigger(
            &server,
            json!({ "asOf": "2023-01-22T12:00:00Z", "interpolation": "FORWARD_FILL" }),
        )
        .await;
        let done = finished(&server, r["id"].as_str().unwrap()).await;
        assert_eq!(
            done["csv"].as_str().unwrap(),
            offline_csv(&dir, Some(earlier), Interpolation::ForwardFill)
        );

        worker.stop().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_trigger_and_poll_api_says_running_then_gives_the_csv() {
    let db = TestDb::new().await;
    let dir = &example_dirs()[0];
    let server = TestApp::spawn(&db, dir, 0).await;
    let triggered: Value = server.post("/trigger_report").await.json().await.unwrap();
    let id = triggered["report_id"].as_str().unwrap().to_string();
    let poll = server.get(&format!("/get_report?report_id={id}")).await;
    assert_eq!(poll.status(), 200);
    assert_eq!(
        poll.json::<Value>().await.unwrap(),
        json!({ "status": "Running" })
    );
    let pending_file = server.get(&format!("/reports/{id}.csv")).await;
    assert_eq!(pending_file.status(), 409, "no CSV before the report is complete");

    let worker = TestApp::spawn_worker(&db, dir).await;
    let expected = std::fs::read_to_string(dir.join("expected_nearest.csv")).unwrap();
    let (states, _) = server.follow(&id, "graphql-ws").await;
    assert_eq!(states.last().map(String::as_str), Some("COMPLETE"));
    let poll = server.get(&format!("/get_report?report_id={id}")).await;
    assert_eq!(poll.status(), 200);
    assert!(
        poll.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(poll.text().await.unwrap(), expected);

    assert_eq!(
        server
            .get(&format!("/get_report?report_id={}", uuid::Uuid::new_v4()))
            .await
            .status(),
        404
    );
    assert_eq!(server.get("/get_report?report_id=not-a-uuid").await.status(), 400);
    assert_eq!(server.get("/get_report").await.status(), 400);
    assert_eq!(
        server
            .get(&format!("/reports/{}.csv", uuid::Uuid::new_v4()))
            .await
            .status(),
        404
    );
    assert_eq!(server.get("/reports/nothing.csv").await.status(), 404);
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.get("/readyz").await.status(), 200);
    worker.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_pagination_walks_every_row_exactly_once() {
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    store_monitor::generate::generate(&store_monitor::generate::Plan {
        stores: 450,
        hours: bundled.join("menu_hours.csv"),
        timezones: bundled.join("timezones.csv"),
        ..store_monitor::generate::Plan::full_size(data.path())
    })
    .unwrap();
    let server = TestApp::spawn(&db, data.path(), 2).await;
    let id = trigger(&server, json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = finished(&server, &id).await;
    let csv = done["csv"].as_str().unwrap().to_string();
    assert_eq!(csv, offline_csv(data.path(), None, Interpolation::Nearest));
    let expected: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 450);

    let page = "query($id: ID!, $after: String) { report(id: $id) { rows(first: 97, after: $after) {
        edges { cursor node { storeId uptimeLastHour downtimeLastWeek } } pageInfo { hasNextPage endCursor } } } }";
    let (mut seen, mut after) = (Vec::new(), Value::Null);
    loop {
        let r = server.graphql(page, json!({ "id": id, "after": after })).await;
        let rows = &r["data"]["report"]["rows"];
        for edge in rows["edges"].as_array().unwrap() {
            seen.push(edge["node"]["storeId"].as_str().unwrap().to_string());
        }
        if !rows["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = rows["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, expected, "every row once, in the CSV's order");

    // One store's row, with the CSV's figures.
    let store = &expected[7];
    let line = csv.lines().find(|l| l.starts_with(&format!("{store},"))).unwrap();
    let one = server
        .graphql(
            "query($id: ID!, $store: ID) { report(id: $id) { rows(storeId: $store) { edges { node {
                storeId uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek } } } } }",
            json!({ "id": id, "store": store }),
        )
        .await;
    let node = &one["data"]["report"]["rows"]["edges"][0]["node"];
    let figures: Vec<String> = [
        "uptimeLastHour",
        "uptimeLastDay",
        "uptimeLastWeek",
        "downtimeLastHour",
        "downtimeLastDay",
        "downtimeLastWeek",
    ]
    .iter()
    .map(|f| format!("{:.2}", node[f].as_f64().unwrap()))
    .collect();
    assert_eq!(format!("{store},{}", figures.join(",")), line);

    // Reports list newest first, and pages too.
    let listed = server
        .graphql(
            "{ reports(first: 10) { edges { node { id status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["reports"]["edges"][0]["node"]["id"], id.as_str());
    let too_big = server
        .graphql(page.replace("97", "5000").as_str(), json!({ "id": id }))
        .await;
    assert_eq!(error_code(&too_big), "BAD_USER_INPUT");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_clear_and_never_internal() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 0).await;
    let unknown = server
        .graphql(REPORT, json!({ "id": uuid::Uuid::new_v4().to_string() }))
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    // A nullable field's error nulls that field alone.
    assert_eq!(unknown["data"], json!({ "report": null }), "{unknown}");
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no report with id")
    );
    let malformed = server.graphql(REPORT, json!({ "id": "report-1" })).await;
    assert_eq!(error_code(&malformed), "BAD_USER_INPUT");
    assert!(
        malformed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a report id")
    );
    let bad_as_of = server
        .graphql(TRIGGER, json!({ "input": { "asOf": "last tuesday" } }))
        .await;
    assert_eq!(error_code(&bad_as_of), "BAD_USER_INPUT", "{bad_as_of}");
    let inline_bad_as_of = server
        .graphql(
            "mutation { triggerReport(input: { asOf: \"2023-13-45\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&inline_bad_as_of),
        "BAD_USER_INPUT",
        "{inline_bad_as_of}"
    );
    let bad_enum = server
        .graphql(TRIGGER, json!({ "input": { "interpolation": "LINEAR" } }))
        .await;
    assert_eq!(error_code(&bad_enum), "BAD_USER_INPUT", "{bad_enum}");
    // Over HTTP too, refused documents carry the code of the step that refused them.
    let of_types = "ofType { ".repeat(16) + "name" + &" }".repeat(16);
    let too_deep = format!("{{ __schema {{ types {{ fields {{ type {{ {of_types} }} }} }} }} }}");
    let too_deep = server.graphql(&too_deep, json!({})).await;
    assert_eq!(error_code(&too_deep), "GRAPHQL_VALIDATION_FAILED", "{too_deep}");
    let syntax = server.graphql("{ report(id: ", json!({})).await;
    assert_eq!(error_code(&syntax), "GRAPHQL_PARSE_FAILED", "{syntax}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_cannot_be_written_fails_with_its_error() {
    let db = TestDb::new().await;
    let dir = &example_dirs()[0];
    // Reports cannot be written below a file.
    let blocked = tempfile::NamedTempFile::new().unwrap();
    let server = TestApp::spawn_with(&db, dir, 1, true, Some(blocked.path().join("reports"))).await;
    let id = trigger(&server, json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (states, last) = server.follow(&id, "graphql-transport-ws").await;
    assert_eq!(states.last().map(String::as_str), Some("FAILED"));
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("CSV file could not be written"),
        "{last}"
    );
    let poll = server.get(&format!("/get_report?report_id={id}")).await;
    assert_eq!(poll.status(), 500);
    let body: Value = poll.json().await.unwrap();
    assert_eq!(body["status"], "Failed");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("CSV file could not be written"), "{error}");
    let path = blocked.path().display().to_string();
    assert!(
        !error.contains(&path) && !error.contains("os error"),
        "no server path or OS text: {error}"
    );
    server.stop().await;
}

#[tokio::test]
async fn reload_data_says_what_each_file_of_this_reload_did() {
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    for name in ["store_status.csv", "menu_hours.csv", "timezones.csv"] {
        std::fs::copy(example_dirs()[0].join(name), data.path().join(name)).unwrap();
    }
    // Loads the files at start.
    let server = TestApp::spawn(&db, data.path(), 0).await;
    let mutation = "mutation { reloadData { changed dataVersion
                     files { id kind outcome readFrom rowsRead rowsInserted } } }";
    let unchanged = server.graphql(mutation, json!({})).await;
    let unchanged = &unchanged["data"]["reloadData"];
    assert_eq!(unchanged["changed"], false, "{unchanged}");
    let files = unchanged["files"].as_array().unwrap();
    let kinds: Vec<&str> = files.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["STATUS", "HOURS", "TIMEZONES"]);
    assert!(files.iter().all(|f| f["outcome"] == "UNCHANGED"), "{unchanged}");

    let status = data.path().join("store_status.csv");
    let mut text = std::fs::read_to_string(&status).unwrap();
    let size = text.len();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = header
        .iter()
        .map(|h| match h.trim() {
            "store_id" => "new-store",
            "status" => "active",
            _ => "2023-11-05 09:30:00 UTC",
        })
        .collect();
    text.push_str(&format!("{}\n", row.join(",")));
    std::fs::write(&status, text).unwrap();
    let loaded = server.graphql(mutation, json!({})).await;
    let loaded = &loaded["data"]["reloadData"];
    assert_eq!(loaded["changed"], true, "{loaded}");
    let first = &loaded["files"][0];
    assert_eq!(first["outcome"], "LOADED");
    assert_eq!(first["readFrom"], size as i64);
    assert_eq!(
        (&first["rowsRead"], &first["rowsInserted"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(loaded["dataVersion"], first["id"]);
    assert!(loaded["dataVersion"].as_i64() > unchanged["dataVersion"].as_i64());
    server.stop().await;
}
