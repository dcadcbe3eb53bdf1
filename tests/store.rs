//! `store(id)` (issue 11): a store as the input files describe it, checked against the
//! files of `tests/fixtures/examples/odd-hours` (a zone that is no zone, hours across midnight
//! and of a whole day, a store only polled) and each example's polls, paged.

mod common;

use common::{TestApp, TestDb, example_dirs};
use serde_json::{Value, json};

const STORE: &str = "query($id: String!, $first: Int, $after: String) { store(id: $id) {
  storeId timezone timezoneDefaulted businessHours { day start end } businessHoursDefaulted
  polls(first: $first, after: $after) { edges { cursor node { at status } } pageInfo { hasNextPage endCursor } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_what_its_files_say() {
    let odd = example_dirs()
        .into_iter()
        .find(|d| d.ends_with("odd-hours"))
        .unwrap();
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &odd, 0).await;

    let k = server.graphql(STORE, json!({ "id": "k", "first": 1000 })).await;
    let store = &k["data"]["store"];
    assert_eq!(store["storeId"], "k", "{k}");
    assert_eq!(store["timezone"], "Asia/Kolkata");
    assert_eq!(store["timezoneDefaulted"], false);
    assert_eq!(store["businessHoursDefaulted"], false);
    let hours = store["businessHours"].as_array().unwrap();
    assert!(
        hours.contains(&json!({ "day": "THURSDAY", "start": "22:00:00", "end": "02:00:00" })),
        "{hours:?}"
    );
    assert!(
        hours.contains(&json!({ "day": "WEDNESDAY", "start": "07:15:00", "end": "07:15:00" })),
        "{hours:?}"
    );

    // A zone that is no zone is read as the default; its hours stand.
    let bad = server.graphql(STORE, json!({ "id": "bad-tz" })).await;
    let store = &bad["data"]["store"];
    assert_eq!(store["timezone"], "America/Chicago", "{bad}");
    assert_eq!(store["timezoneDefaulted"], true);
    assert_eq!(
        store["businessHours"],
        json!([{ "day": "THURSDAY", "start": "16:00:00", "end": "23:59:59" }])
    );
    assert_eq!(store["businessHoursDefaulted"], false);

    // Only polled: the default zone, open around the clock.
    let one = server.graphql(STORE, json!({ "id": "one" })).await;
    let store = &one["data"]["store"];
    assert_eq!(store["timezone"], "America/Chicago", "{one}");
    assert_eq!(store["timezoneDefaulted"], true);
    assert_eq!(store["businessHours"], json!([]));
    assert_eq!(store["businessHoursDefaulted"], true);

    let nobody = server.graphql(STORE, json!({ "id": "no such store" })).await;
    assert!(
        nobody["data"]["store"].is_null() && nobody["errors"].is_null(),
        "{nobody}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stores_polls_are_its_status_rows_oldest_first_a_page_at_a_time() {
    for dir in example_dirs() {
        let db = TestDb::new().await;
        let server = TestApp::spawn(&db, &dir, 0).await;
        let status = std::fs::read_to_string(dir.join("store_status.csv")).unwrap();
        let mut by_store: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
        for line in status.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            let at = chrono::NaiveDateTime::parse_from_str(
                cells[2].trim_end_matches(" UTC"),
                "%Y-%m-%d %H:%M:%S%.f",
            )
            .unwrap()
            .and_utc();
            by_store.entry(cells[0].to_string()).or_default().push((
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                cells[1].to_uppercase(),
            ));
        }
        for (id, mut polls) in by_store {
            polls.sort();
            polls.dedup_by(|a, b| a.0 == b.0);
            // Two at a time, following the cursors.
            let (mut got, mut after) = (Vec::new(), Value::Null);
            loop {
                let answer = server
                    .graphql(STORE, json!({ "id": id, "first": 2, "after": after }))
                    .await;
                let page = &answer["data"]["store"]["polls"];
                for edge in page["edges"].as_array().unwrap() {
                    let at: chrono::DateTime<chrono::Utc> =
                        serde_json::from_value(edge["node"]["at"].clone()).unwrap();
                    got.push((
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        edge["node"]["status"].as_str().unwrap().to_string(),
                    ));
                }
                if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                    break;
                }
                after = page["pageInfo"]["endCursor"].clone();
            }
            assert_eq!(got, polls, "{} store {id}", dir.display());
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stores_uptime_is_its_row_of_the_expected_report() {
    let query = "query($id: String!, $i: Interpolation!) { store(id: $id) { uptime(interpolation: $i) {
      storeId uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek } } }";
    let fields = [
        "uptimeLastHour",
        "uptimeLastDay",
        "uptimeLastWeek",
        "downtimeLastHour",
        "downtimeLastDay",
        "downtimeLastWeek",
    ];
    for dir in example_dirs() {
        let db = TestDb::new().await;
        let server = TestApp::spawn(&db, &dir, 0).await;
        for (interpolation, file) in [
            ("NEAREST", "expected_nearest.csv"),
            ("FORWARD_FILL", "expected_forward_fill.csv"),
        ] {
            let expected = std::fs::read_to_string(dir.join(file)).unwrap();
            for line in expected.lines().skip(1) {
                let cells: Vec<&str> = line.split(',').collect();
                let answer = server
                    .graphql(query, json!({ "id": cells[0], "i": interpolation }))
                    .await;
                let uptime = &answer["data"]["store"]["uptime"];
                assert_eq!(uptime["storeId"], cells[0], "{answer}");
                let got: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{:.2}", uptime[f].as_f64().unwrap()))
                    .collect();
                assert_eq!(
                    got,
                    cells[1..],
                    "{} {interpolation} store {}",
                    dir.display(),
                    cells[0]
                );
            }
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stores_timeline_covers_the_week_and_adds_up_to_its_figures() {
    let query = "query($id: String!, $i: Interpolation!) { dataset { newestPoll } store(id: $id) {
      uptime(interpolation: $i) { uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek }
      timeline(interpolation: $i) { start end open status } } }";
    let nanos = |v: &Value| -> i128 {
        let at = chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos())
    };
    for dir in example_dirs() {
        let db = TestDb::new().await;
        let server = TestApp::spawn(&db, &dir, 0).await;
        let expected = std::fs::read_to_string(dir.join("expected_nearest.csv")).unwrap();
        for line in expected.lines().skip(1) {
            let id = line.split(',').next().unwrap();
            for interpolation in ["NEAREST", "FORWARD_FILL"] {
                let answer = server
                    .graphql(query, json!({ "id": id, "i": interpolation }))
                    .await;
                let context = format!("{} {id} {interpolation}: {answer}", dir.display());
                let now = nanos(&answer["data"]["dataset"]["newestPoll"]);
                let segments = answer["data"]["store"]["timeline"].as_array().unwrap();
                // The week before now, in order, no gap, no overlap, no piece like the next.
                let hour = 3_600_000_000_000i128;
                assert_eq!(nanos(&segments[0]["start"]), now - 168 * hour, "{context}");
                assert_eq!(nanos(&segments.last().unwrap()["end"]), now, "{context}");
                for pair in segments.windows(2) {
                    assert_eq!(pair[0]["end"], pair[1]["start"], "{context}");
                    assert!(
                        (&pair[0]["open"], &pair[0]["status"]) != (&pair[1]["open"], &pair[1]["status"]),
                        "{context}"
                    );
                }
                // Open time within the last hour (minutes), day and week (hours), up and down.
                let figures = &answer["data"]["store"]["uptime"];
                for (hours_back, unit, up, down) in [
                    (1, 60_000_000_000i128, "uptimeLastHour", "downtimeLastHour"),
                    (24, hour, "uptimeLastDay", "downtimeLastDay"),
                    (168, hour, "uptimeLastWeek", "downtimeLastWeek"),
                ] {
                    let since = now - hours_back * hour;
                    for (status, field) in [("ACTIVE", up), ("INACTIVE", down)] {
                        let total: i128 = segments
                            .iter()
                            .filter(|s| s["open"] == true && s["status"] == status)
                            .map(|s| (nanos(&s["end"]).min(now) - nanos(&s["start"]).max(since)).max(0))
                            .sum();
                        let hundredths = (total * 100 * 2 + unit) / (2 * unit);
                        let figure = (figures[field].as_f64().unwrap() * 100.0).round() as i128;
                        assert_eq!(hundredths, figure, "{field}: {context}");
                    }
                }
            }
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_store_and_row_is_a_node_read_back_by_its_global_id() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &example_dirs()[0], 1).await;
    let mut reports = Vec::new();
    for interpolation in ["NEAREST", "FORWARD_FILL"] {
        let answer = server
            .graphql(
                "mutation($i: Interpolation!) { triggerReport(input: { interpolation: $i }) { id } }",
                json!({ "i": interpolation }),
            )
            .await;
        let id = answer["data"]["triggerReport"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (states, _) = server.follow(&id, "graphql-transport-ws").await;
        assert_eq!(states.last().map(String::as_str), Some("COMPLETE"));
        reports.push(id);
    }
    let rows = "query($id: ID!) { report(id: $id) { rows { nodes { id storeId uptimeLastWeek } } } }";
    let mut row_ids = Vec::new();
    for report in &reports {
        let answer = server.graphql(rows, json!({ "id": report })).await;
        for row in answer["data"]["report"]["rows"]["nodes"].as_array().unwrap() {
            row_ids.push((row["id"].as_str().unwrap().to_string(), row.clone()));
        }
    }
    // A store's row in two reports is two objects.
    let mut ids: Vec<&String> = row_ids.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), row_ids.len(), "{row_ids:?}");

    let node = "query($id: ID!) { node(id: $id) { __typename id
      ... on Report { status } ... on Store { storeId } ... on ReportRow { storeId uptimeLastWeek } } }";
    for report in &reports {
        let answer = server.graphql(node, json!({ "id": report })).await;
        assert_eq!(answer["data"]["node"]["__typename"], "Report", "{answer}");
        assert_eq!(answer["data"]["node"]["id"], *report);
    }
    for (id, row) in &row_ids {
        let answer = server.graphql(node, json!({ "id": id })).await;
        let got = &answer["data"]["node"];
        assert_eq!(got["__typename"], "ReportRow", "{answer}");
        assert_eq!(
            (&got["id"], &got["storeId"], &got["uptimeLastWeek"]),
            (&row["id"], &row["storeId"], &row["uptimeLastWeek"])
        );
        let store = row["storeId"].as_str().unwrap();
        let answer = server
            .graphql(
                "query($id: String!) { store(id: $id) { id } }",
                json!({ "id": store }),
            )
            .await;
        let store_id = answer["data"]["store"]["id"].clone();
        let answer = server.graphql(node, json!({ "id": store_id })).await;
        assert_eq!(answer["data"]["node"]["__typename"], "Store", "{answer}");
        assert_eq!(answer["data"]["node"]["storeId"], store);
    }
    for unknown in [
        "Store:no such store",
        "ReportRow:nonsense",
        "42",
        &format!("ReportRow:{}:x", reports[0]),
    ] {
        let answer = server.graphql(node, json!({ "id": unknown })).await;
        assert!(
            answer["data"]["node"].is_null() && answer["errors"].is_null(),
            "{unknown}: {answer}"
        );
    }
    server.stop().await;
}
