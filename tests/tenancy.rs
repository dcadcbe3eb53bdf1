//! Tokens scoped to store groups (issue 22): a token of group A reads A's stores, incidents,
//! report rows and counts only, and pushes A's polls only; another group's store is absent,
//! exactly as a store that does not exist; what would touch the fleet refuses the token;
//! admin tokens cannot be scoped.

mod common;

use std::path::Path;

use common::socket::Socket;
use common::{TestApp, TestDb, cli, create_token};
use serde_json::{Value, json};

/// Three stores down since 10:00 (no hours: open around the clock): `alpha-1` in group A,
/// `bravo-1` in group B, `both-ab` in both.
fn data(dir: &Path) {
    let mut status = String::from("store_id,status,timestamp_utc\n");
    for store in ["alpha-1", "bravo-1", "both-ab"] {
        for hour in [10, 11] {
            status.push_str(&format!("{store},inactive,2023-01-25 {hour}:00:00 UTC\n"));
        }
    }
    std::fs::write(dir.join("store_status.csv"), status).unwrap();
    std::fs::write(
        dir.join("store_groups.csv"),
        "store_id,group\nalpha-1,A\nboth-ab,A\nbravo-1,B\nboth-ab,B\n",
    )
    .unwrap();
}

/// A server that needs tokens on that data, and its admin's token.
async fn start() -> (tempfile::TempDir, TestDb, TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let db = TestDb::new().await;
    let admin = create_token(&db, "admin", "the admin");
    let app = TestApp::spawn_adjusted(&db, dir.path(), 1, true, None, |s| {
        s.auth = Some(store_monitor::settings::AuthMode::Required);
    })
    .await;
    (dir, db, app, admin)
}

fn scoped_token(db: &TestDb, role: &str, group: &str) -> String {
    cli(
        db,
        [
            "token", "create", "--role", role, "--name", "scoped", "--group", group,
        ],
    )
    .trim()
    .to_string()
}

/// Pushes one active poll of `store` at 12:00 (its stores went down at 10:00), as `token`.
async fn back_up(app: &TestApp, token: &str, store: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/polls", app.address))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(format!(
            "store_id,status,timestamp_utc\n{store},active,2023-01-25 12:00:00 UTC\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

const INCIDENTS: &str = "{ incidents { totalCount nodes { storeId store { storeId } } } }";

fn stores_of(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["data"]["incidents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["storeId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_token_of_one_group_reads_that_groups_stores_and_incidents_and_nothing_else() {
    let (_dir, db, app, _) = start().await;
    let a = scoped_token(&db, "viewer", "A");
    let fleet = create_token(&db, "viewer", "the fleet");

    let of_a = app.graphql_as(&a, INCIDENTS, json!({})).await;
    assert_eq!(of_a["data"]["incidents"]["totalCount"], 2, "{of_a}");
    assert_eq!(stores_of(&of_a), ["alpha-1", "both-ab"]);
    assert!(!of_a.to_string().contains("bravo-1"), "{of_a}");
    let named = app
        .graphql_as(
            &a,
            "{ incidents(filter: { storeIds: [\"bravo-1\"] }) { totalCount nodes { storeId } } }",
            json!({}),
        )
        .await;
    assert_eq!(named["data"]["incidents"]["totalCount"], 0, "{named}");

    let fleet_sees = app.graphql_as(&fleet, INCIDENTS, json!({})).await;
    assert_eq!(fleet_sees["data"]["incidents"]["totalCount"], 3);
    assert_eq!(stores_of(&fleet_sees), ["alpha-1", "both-ab", "bravo-1"]);

    let store = "query($id: String!) { store(id: $id) { storeId incidents { totalCount } } }";
    let mine = app.graphql_as(&a, store, json!({ "id": "both-ab" })).await;
    assert_eq!(mine["data"]["store"]["storeId"], "both-ab", "{mine}");
    assert_eq!(mine["data"]["store"]["incidents"]["totalCount"], 1);
    // Another group's store and a store that does not exist answer alike.
    let theirs = app.graphql_as(&a, store, json!({ "id": "bravo-1" })).await;
    let nobody = app.graphql_as(&a, store, json!({ "id": "zz" })).await;
    assert_eq!(theirs, json!({ "data": { "store": null } }));
    assert_eq!(theirs, nobody);
    let seen = app.graphql_as(&fleet, store, json!({ "id": "bravo-1" })).await;
    assert_eq!(seen["data"]["store"]["storeId"], "bravo-1");
}

/// A report triggered by `token`, followed over WebSocket as `follower` sees it until it
/// is COMPLETE: its id and last state.
async fn complete_report(app: &TestApp, token: &str, follower: &str) -> (String, Value) {
    let triggered = app
        .graphql_as(token, "mutation { triggerReport { id } }", json!({}))
        .await;
    let id = triggered["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{triggered}"))
        .to_string();
    let mut socket = Socket::open(
        &app.address,
        json!({ "Authorization": format!("Bearer {follower}") }),
    )
    .await;
    socket.expect_ack().await;
    socket
        .subscribe(
            "1",
            "subscription($id: ID!) { report(id: $id) { id status storesTotal storesDone rows { totalCount nodes { storeId } } } }",
            json!({ "id": id }),
        )
        .await;
    loop {
        let message = socket.next().await.expect("the subscription runs until COMPLETE");
        let report = &message["payload"]["data"]["report"];
        assert!(message["payload"]["errors"].is_null(), "{message}");
        if report["status"] == "COMPLETE" {
            return (id, report.clone());
        }
    }
}

/// Every row of the report `id` that `token` can page through one at a time in `order`,
/// checking that each page's `totalCount` is the number of rows paged.
async fn paged_rows(app: &TestApp, token: &str, id: &str, order: &str) -> Vec<String> {
    let query = format!(
        "query($id: ID!, $after: String) {{ report(id: $id) {{ rows(first: 1, after: $after, orderBy: {order}) {{
            totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ storeId downtimeLastHour }} }} }} }}"
    );
    let (mut stores, mut after, mut totals) = (Vec::new(), Value::Null, Vec::new());
    loop {
        let page = app
            .graphql_as(token, &query, json!({ "id": id, "after": after }))
            .await;
        let rows = &page["data"]["report"]["rows"];
        totals.push(rows["totalCount"].as_i64().unwrap_or_else(|| panic!("{page}")));
        for node in rows["nodes"].as_array().unwrap() {
            stores.push(node["storeId"].as_str().unwrap().to_string());
        }
        if rows["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = rows["pageInfo"]["endCursor"].clone();
    }
    assert!(
        totals.iter().all(|t| *t == stores.len() as i64),
        "{totals:?} {stores:?}"
    );
    stores
}

#[tokio::test]
async fn a_scoped_token_reads_its_groups_slice_of_a_report_at_every_report_door() {
    let (_dir, db, app, admin) = start().await;
    let a = scoped_token(&db, "viewer", "A");
    let fleet = create_token(&db, "viewer", "the fleet");
    let of_both = cli(
        &db,
        [
            "token", "create", "--role", "viewer", "--name", "both", "--group", "A", "--group", "B",
        ],
    )
    .trim()
    .to_string();
    let (id, followed) = complete_report(&app, &admin, &a).await;
    assert_eq!(followed["storesTotal"], 2, "{followed}");
    assert_eq!(followed["storesDone"], 2, "{followed}");
    assert_eq!(followed["rows"]["totalCount"], 2, "{followed}");
    let mut answers = vec![followed.to_string()];

    for order in [
        "{ field: STORE_ID }",
        "{ field: DOWNTIME_LAST_HOUR, direction: DESC }",
    ] {
        let mut mine = paged_rows(&app, &a, &id, order).await;
        mine.sort();
        assert_eq!(mine, ["alpha-1", "both-ab"], "{order}");
        let mut all = paged_rows(&app, &fleet, &id, order).await;
        all.sort();
        assert_eq!(all, ["alpha-1", "both-ab", "bravo-1"], "{order}");
        // A token of both groups: each store once.
        let mut both = paged_rows(&app, &of_both, &id, order).await;
        both.sort();
        assert_eq!(both, all, "{order}");
    }
    // Naming another group's store matches nothing, as a store that does not exist.
    let named = "query($id: ID!, $stores: [String!]) { report(id: $id) { rows(filter: { storeIds: $stores }) { totalCount nodes { storeId } } } }";
    let theirs = app
        .graphql_as(&a, named, json!({ "id": id, "stores": ["bravo-1"] }))
        .await;
    let nobody = app
        .graphql_as(&a, named, json!({ "id": id, "stores": ["nobody"] }))
        .await;
    assert_eq!(theirs["data"]["report"]["rows"]["totalCount"], 0, "{theirs}");
    assert_eq!(theirs, nobody);
    let both = app
        .graphql_as(&a, named, json!({ "id": id, "stores": ["bravo-1", "both-ab"] }))
        .await;
    assert_eq!(both["data"]["report"]["rows"]["totalCount"], 1, "{both}");
    answers.extend([theirs.to_string(), both.to_string()]);

    // The CSV, as a field, a signed link, a download with the token and the original API.
    let csv_of = |token: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.graphql_as(
                &token,
                "query($id: ID!) { report(id: $id) { storesTotal csv csvUrl } }",
                json!({ "id": id }),
            )
            .await["data"]["report"]
                .clone()
        }
    };
    let mine = csv_of(a.clone()).await;
    let csv = mine["csv"].as_str().unwrap().to_string();
    let stores: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(stores, ["alpha-1", "both-ab"], "{csv}");
    assert_eq!(mine["storesTotal"], 2);
    let everything = csv_of(fleet.clone()).await;
    assert_eq!(everything["csv"].as_str().unwrap().lines().count(), 4);
    assert_eq!(everything["storesTotal"], 3);

    let client = reqwest::Client::new();
    let link = format!("{}{}", app.address, mine["csvUrl"].as_str().unwrap());
    let linked = client.get(&link).send().await.unwrap();
    assert_eq!(linked.status(), 200);
    assert_eq!(linked.headers()["cache-control"], "private, no-cache");
    let etag = linked.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(linked.text().await.unwrap(), csv);
    let again = client
        .get(&link)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let fleet_link = format!("{}{}", app.address, everything["csvUrl"].as_str().unwrap());
    let fleet_file = client
        .get(&fleet_link)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fleet_file.status(),
        200,
        "the slice's ETag is not the fleet file's"
    );
    assert_eq!(
        fleet_file.text().await.unwrap(),
        everything["csv"].as_str().unwrap()
    );
    for path in [
        format!("/reports/{id}.csv"),
        format!("/get_report?report_id={id}"),
    ] {
        let got = client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{path}");
        assert_eq!(got.text().await.unwrap(), csv, "{path}");
    }
    answers.push(mine.to_string());
    for answer in answers {
        assert!(!answer.contains("bravo-1"), "{answer}");
    }
}

#[tokio::test]
async fn a_scoped_token_counts_its_groups_stores_in_the_dataset() {
    let (_dir, db, app, _) = start().await;
    let a = scoped_token(&db, "viewer", "A");
    let fleet = create_token(&db, "viewer", "the fleet");
    let query = "{ dataset { stores polledStores polls businessHours timezones newestPoll oldestPoll
                   loads { file rejectedRows { line } } prunings { week } } }";
    let mine = app.graphql_as(&a, query, json!({})).await;
    let dataset = &mine["data"]["dataset"];
    assert_eq!(
        [&dataset["stores"], &dataset["polledStores"], &dataset["polls"]],
        [2, 2, 4],
        "{mine}"
    );
    assert_eq!(dataset["newestPoll"], "2023-01-25T11:00:00+00:00");
    assert_eq!(dataset["oldestPoll"], "2023-01-25T10:00:00+00:00");
    assert_eq!(
        dataset["loads"],
        json!([]),
        "the fleet's files are not the token's"
    );
    let all = app.graphql_as(&fleet, query, json!({})).await;
    let dataset = &all["data"]["dataset"];
    assert_eq!([&dataset["stores"], &dataset["polls"]], [3, 6], "{all}");
    assert!(!dataset["loads"].as_array().unwrap().is_empty());
    assert!(!mine.to_string().contains("bravo-1"));
}

#[tokio::test]
async fn node_reads_back_a_scoped_tokens_stores_and_incidents_and_nothing_else() {
    let (_dir, db, app, admin) = start().await;
    let a = scoped_token(&db, "viewer", "A");
    let node = "query($id: ID!) { node(id: $id) { id } }";
    let read = |token: String, id: String| {
        let app = &app;
        async move { app.graphql_as(&token, node, json!({ "id": id })).await["data"]["node"].clone() }
    };
    let incidents = app
        .graphql_as(&admin, "{ incidents { nodes { id storeId } } }", json!({}))
        .await;
    let incident_of = |store: &str| {
        incidents["data"]["incidents"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["storeId"] == store)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let report = app
        .graphql_as(&admin, "mutation { triggerReport { id } }", json!({}))
        .await["data"]["triggerReport"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, a_sees) in [
        ("Store:alpha-1".to_string(), true),
        ("Store:both-ab".to_string(), true),
        ("Store:bravo-1".to_string(), false),
        ("Store:zz".to_string(), false),
        (incident_of("alpha-1"), true),
        (incident_of("bravo-1"), false),
        (report.clone(), true),
        (format!("ReportRow:{report}:bravo-1"), false),
    ] {
        let seen = read(a.clone(), id.clone()).await;
        if a_sees {
            assert_eq!(seen["id"], id.as_str(), "{id}");
        } else {
            assert!(seen.is_null(), "{id}: {seen}");
        }
    }
    assert_eq!(
        read(admin.clone(), incident_of("bravo-1")).await["id"],
        incident_of("bravo-1").as_str()
    );
    assert_eq!(read(admin.clone(), report.clone()).await["id"], report.as_str());
}

#[tokio::test]
async fn the_incidents_subscription_tells_a_scoped_token_of_its_groups_stores_alone() {
    let (_dir, db, app, _) = start().await;
    let a = scoped_token(&db, "viewer", "A");
    let pusher = create_token(&db, "operator", "the pusher");
    let listen = |token: String| {
        let address = app.address.clone();
        async move {
            let mut socket =
                Socket::open(&address, json!({ "Authorization": format!("Bearer {token}") })).await;
            socket.expect_ack().await;
            socket
                .subscribe(
                    "1",
                    "subscription { incidents { type incident { storeId store { storeId } } } }",
                    json!({}),
                )
                .await;
            socket
        }
    };
    let (mut mine, mut all) = (listen(a).await, listen(pusher.clone()).await);
    let back_up = |store: &'static str| back_up(&app, &pusher, store);
    async fn next(socket: &mut Socket) -> (String, String) {
        let message = socket.next().await.expect("the socket stays open");
        let event = &message["payload"]["data"]["incidents"];
        assert_eq!(
            event["incident"]["store"]["storeId"], event["incident"]["storeId"],
            "{message}"
        );
        (
            event["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{message}"))
                .to_string(),
            event["incident"]["storeId"].as_str().unwrap().to_string(),
        )
    }
    // `both-ab` is in both groups: both hear of it (and so both subscriptions are running).
    back_up("both-ab").await;
    let resolved = |store: &str| ("RESOLVED".to_string(), store.to_string());
    assert_eq!(next(&mut mine).await, resolved("both-ab"));
    assert_eq!(next(&mut all).await, resolved("both-ab"));
    back_up("bravo-1").await;
    back_up("alpha-1").await;
    assert_eq!(next(&mut all).await, resolved("bravo-1"));
    assert_eq!(next(&mut all).await, resolved("alpha-1"));
    assert_eq!(
        next(&mut mine).await,
        resolved("alpha-1"),
        "bravo-1 is not group A's"
    );
}

#[tokio::test]
async fn a_scoped_operator_pushes_its_stores_polls_alone_and_cannot_touch_the_fleet() {
    let (_dir, db, app, admin) = start().await;
    let operator = scoped_token(&db, "operator", "A");
    let refused = |answer: &Value| {
        let error = &answer["errors"][0];
        assert_eq!(error["extensions"]["code"], "FORBIDDEN", "{answer}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("scoped to store groups"),
            "{answer}"
        );
        assert!(
            answer["data"].is_null() || answer.get("data").is_none(),
            "{answer}"
        );
    };
    let cancel = "mutation { cancelReport(id: \"00000000-0000-0000-0000-000000000000\") { id } }";
    refused(&app.graphql_as(&operator, cancel, json!({})).await);
    let served = app.graphql_as(&admin, cancel, json!({})).await;
    assert_eq!(served["errors"][0]["extensions"]["code"], "NOT_FOUND", "{served}");

    // A batch of its store, another group's and one that does not exist: the last two are
    // rejected rows, with one reason (no oracle for which ids exist).
    let response = reqwest::Client::new()
        .post(format!("{}/polls", app.address))
        .bearer_auth(&operator)
        .header("content-type", "text/csv")
        .body(
            "store_id,status,timestamp_utc\nalpha-1,active,2023-01-25 12:00:00 UTC\n\
             bravo-1,active,2023-01-25 12:00:00 UTC\nnobody,active,2023-01-25 12:00:00 UTC\n",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    let rejected = answer["rejected"].as_array().unwrap();
    let lines: Vec<_> = rejected.iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [3, 4], "{answer}");
    let reasons: Vec<String> = rejected
        .iter()
        .map(|r| {
            r["reason"]
                .as_str()
                .unwrap()
                .replace("bravo-1", "ID")
                .replace("nobody", "ID")
        })
        .collect();
    assert_eq!(reasons[0], reasons[1]);
    assert!(
        reasons[0].contains("not a store of this token's store groups"),
        "{answer}"
    );
    let recorded = app
        .graphql_as(
            &operator,
            "mutation { recordPolls(polls: [{ storeId: \"both-ab\", status: ACTIVE, timestampUtc: \"2023-01-25T12:00:00Z\" },
                { storeId: \"bravo-1\", status: ACTIVE, timestampUtc: \"2023-01-25T12:00:00Z\" }]) { accepted rejected { line reason } } }",
            json!({}),
        )
        .await;
    assert_eq!(recorded["data"]["recordPolls"]["accepted"], 1, "{recorded}");
    assert_eq!(
        recorded["data"]["recordPolls"]["rejected"][0]["line"], 2,
        "{recorded}"
    );
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT s.store_id FROM polls p JOIN stores s ON s.id = p.store
         WHERE p.at = '2023-01-25 12:00:00+00' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, ["alpha-1", "both-ab"]);
    let nobody: i64 = sqlx::query_scalar("SELECT count(*) FROM stores WHERE store_id = 'nobody'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(nobody, 0, "a rejected row makes no store");
}

#[tokio::test]
async fn admin_tokens_cannot_be_scoped_and_groups_must_exist() {
    let (_dir, db, app, admin) = start().await;
    let made = app
        .graphql_as(
            &admin,
            "mutation { createToken(input: { name: \"b\", role: VIEWER, groups: [\"B\", \"B \"] }) { secret token { groups } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        made["data"]["createToken"]["token"]["groups"],
        json!(["B"]),
        "{made}"
    );
    let b = made["data"]["createToken"]["secret"].as_str().unwrap();
    let sees = app.graphql_as(b, INCIDENTS, json!({})).await;
    assert_eq!(stores_of(&sees), ["both-ab", "bravo-1"]);

    for (input, says) in [
        (
            "{ name: \"x\", role: ADMIN, groups: [\"A\"] }",
            "cannot be scoped",
        ),
        (
            "{ name: \"x\", role: VIEWER, groups: [\"Nowhere\"] }",
            "no store is in the group \\\"Nowhere\\\"",
        ),
        (
            "{ name: \"x\", role: VIEWER, groups: [] }",
            "at least one store group",
        ),
    ] {
        let answer = app
            .graphql_as(
                &admin,
                &format!("mutation {{ createToken(input: {input}) {{ secret }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{answer}"
        );
        assert!(answer.to_string().contains(says), "{says}: {answer}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args([
            "token", "create", "--role", "admin", "--name", "x", "--group", "A",
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be scoped"));
    let listed = cli(&db, ["token", "list"]);
    assert!(listed.contains("(groups B)"), "{listed}");
}

#[tokio::test]
async fn admins_set_rename_and_delete_groups_and_scoped_tokens_follow() {
    let (_dir, db, app, admin) = start().await;
    let set = "mutation($g: String!, $s: [ID!]!) { setGroupStores(group: $g, storeIds: $s) { name storeCount storeIds } }";
    let made = app
        .graphql_as(
            &admin,
            set,
            json!({ "g": " North ", "s": ["bravo-1", "alpha-1", "alpha-1"] }),
        )
        .await;
    assert_eq!(
        made["data"]["setGroupStores"],
        json!({ "name": "North", "storeCount": 2, "storeIds": ["alpha-1", "bravo-1"] }),
        "{made}"
    );
    let north = scoped_token(&db, "viewer", "North");
    assert_eq!(
        stores_of(&app.graphql_as(&north, INCIDENTS, json!({})).await),
        ["alpha-1", "bravo-1"]
    );

    // Setting again replaces its stores; unknown ids are refused, naming them.
    let unknown = app
        .graphql_as(&admin, set, json!({ "g": "North", "s": ["alpha-1", "ghost"] }))
        .await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{unknown}"
    );
    assert!(unknown.to_string().contains("\\\"ghost\\\""), "{unknown}");
    let moved = app
        .graphql_as(&admin, set, json!({ "g": "North", "s": ["both-ab"] }))
        .await;
    assert_eq!(moved["data"]["setGroupStores"]["storeCount"], 1, "{moved}");
    assert_eq!(
        stores_of(&app.graphql_as(&north, INCIDENTS, json!({})).await),
        ["both-ab"]
    );

    // A rename carries the tokens scoped to the group: they see the same stores at once.
    let rename =
        "mutation($g: String!, $n: String!) { renameGroup(group: $g, newName: $n) { name storeCount } }";
    let taken = app
        .graphql_as(&admin, rename, json!({ "g": "North", "n": "A" }))
        .await;
    assert!(taken.to_string().contains("exists already"), "{taken}");
    let renamed = app
        .graphql_as(&admin, rename, json!({ "g": "North", "n": "Nord" }))
        .await;
    assert_eq!(
        renamed["data"]["renameGroup"],
        json!({ "name": "Nord", "storeCount": 1 }),
        "{renamed}"
    );
    let me = app
        .graphql_as(
            &north,
            "{ me { role groups } storeGroups { name storeCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["data"],
        json!({ "me": { "role": "VIEWER", "groups": ["Nord"] }, "storeGroups": [{ "name": "Nord", "storeCount": 1 }] }),
        "{me}"
    );
    assert_eq!(
        stores_of(&app.graphql_as(&north, INCIDENTS, json!({})).await),
        ["both-ab"]
    );
    let all = app
        .graphql_as(
            &admin,
            "{ me { groups } storeGroups(first: 2, after: \"A\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        all["data"],
        json!({ "me": { "groups": null }, "storeGroups": [{ "name": "B" }, { "name": "Nord" }] })
    );

    // A group a token is scoped to is not deleted under it.
    let delete = "mutation($g: String!) { deleteGroup(group: $g) { name storeCount } }";
    let held = app.graphql_as(&admin, delete, json!({ "g": "Nord" })).await;
    assert!(
        held.to_string().contains("1 token is scoped to the group"),
        "{held}"
    );
    let tokens = app
        .graphql_as(&admin, "{ tokens { id groups } }", json!({}))
        .await;
    let id = tokens["data"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["groups"] == json!(["Nord"]))
        .unwrap()["id"]
        .clone();
    app.graphql_as(
        &admin,
        "mutation($id: ID!) { revokeToken(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let deleted = app.graphql_as(&admin, delete, json!({ "g": "Nord" })).await;
    assert_eq!(
        deleted["data"]["deleteGroup"],
        json!({ "name": "Nord", "storeCount": 1 }),
        "{deleted}"
    );
    let gone = app.graphql_as(&admin, delete, json!({ "g": "Nord" })).await;
    assert_eq!(gone["errors"][0]["extensions"]["code"], "NOT_FOUND", "{gone}");
    let viewer = create_token(&db, "viewer", "a viewer");
    let refused = app.graphql_as(&viewer, delete, json!({ "g": "A" })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
}

/// Every read a client can make at each door, as group A's token and as the fleet's: no
/// byte of any answer to A names group B's store, and the fleet's name it (so the scan can
/// fail). GraphQL over HTTP (queries, `node` of B's objects, filters naming B's store) and
/// over WebSocket (each subscription, while polls arrive and a report runs), REST (the
/// original API, the CSV file, its signed link, a push's answer).
/// `setGroupStores` takes up to 100,000 stores in one call (the ids of this test are short
/// enough for the 1 MB request body) and refuses one more, saying the cap.
#[tokio::test]
async fn set_group_stores_takes_100000_stores_and_refuses_100001() {
    let (_dir, db, app, admin) = start().await;
    sqlx::query("INSERT INTO stores (store_id) SELECT g::text FROM generate_series(1, 100001) g")
        .execute(&db.pool)
        .await
        .unwrap();
    let set =
        "mutation($g: String!, $s: [ID!]!) { setGroupStores(group: $g, storeIds: $s) { name storeCount } }";
    let ids = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>();
    let most = app
        .graphql_as(&admin, set, json!({ "g": "Everyone", "s": ids(100_000) }))
        .await;
    assert_eq!(
        most["data"]["setGroupStores"],
        json!({ "name": "Everyone", "storeCount": 100_000 }),
        "{}",
        &most.to_string()[..most.to_string().len().min(2000)]
    );
    let over = app
        .graphql_as(&admin, set, json!({ "g": "Everyone", "s": ids(100_001) }))
        .await;
    assert_eq!(
        over["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{over}"
    );
    assert!(
        over["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100000 stores"),
        "{over}"
    );
    // The refused call changed nothing.
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM store_groups WHERE group_name = 'Everyone'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(kept, 100_000);
}

#[tokio::test]
async fn no_answer_to_a_group_a_token_names_a_group_b_store_at_any_door() {
    let (_dir, db, app, admin) = start().await;
    let a = scoped_token(&db, "operator", "A");
    let fleet = create_token(&db, "operator", "the fleet");
    const THEIRS: &str = "bravo-1";

    // Subscriptions first, so that they hear what follows.
    let mut sockets = Vec::new();
    for token in [&a, &fleet] {
        let mut socket = Socket::open(
            &app.address,
            json!({ "Authorization": format!("Bearer {token}") }),
        )
        .await;
        socket.expect_ack().await;
        socket
            .subscribe(
                "i",
                "subscription { incidents { type incident { id storeId store { storeId } } } }",
                json!({}),
            )
            .await;
        socket
            .subscribe(
                "r",
                "subscription { reports { id status storesTotal csv rows { totalCount nodes { storeId downtimeLastHour } } } }",
                json!({}),
            )
            .await;
        socket
            .subscribe(
                "d",
                "subscription { dataset { stores polls newestPoll loads { rejectedRows { raw } } } }",
                json!({}),
            )
            .await;
        sockets.push(socket);
    }
    let (report, _) = complete_report(&app, &admin, &a).await;
    // Every store comes back up, A's by A's push (a push of B's store is a rejected row
    // quoting the pusher's own row: `a_scoped_operator_pushes…`), then all by the fleet's.
    let push = |token: String, stores: &[&str]| {
        let address = app.address.clone();
        let mut body = String::from("store_id,status,timestamp_utc\n");
        for store in stores {
            body.push_str(&format!("{store},active,2023-01-25 12:00:00 UTC\n"));
        }
        async move {
            reqwest::Client::new()
                .post(format!("{address}/polls"))
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let mut answers: Vec<(String, String, String)> = Vec::new();
    let a_pushed = push(a.clone(), &["alpha-1", "both-ab"]).await;
    answers.push(("A".into(), "POST /polls".into(), a_pushed));
    let fleet_pushed = push(fleet.clone(), &["alpha-1", THEIRS, "both-ab"]).await;
    answers.push(("fleet".into(), "POST /polls".into(), fleet_pushed));

    let incidents = app
        .graphql_as(&admin, "{ incidents { nodes { id storeId } } }", json!({}))
        .await;
    let theirs_incident = incidents["data"]["incidents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["storeId"] == THEIRS)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = "rows(first: 100) { totalCount edges { cursor node { id storeId uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek } } }";
    let reads = [
        "{ me { name role groups } storeGroups { name storeCount storeIds } }".to_string(),
        "{ dataset { stores polledStores polls businessHours timezones newestPoll oldestPoll pollsKeptFrom dataVersion
           prunings { week } loads { file kind rowsRead rejectedRows { line reason raw } } } }"
            .to_string(),
        "{ incidents(first: 100) { totalCount edges { cursor node { id storeId openedAt resolvedAt open inactivePolls store { storeId } } } } }".to_string(),
        format!("{{ incidents(filter: {{ storeIds: [\"{THEIRS}\", \"both-ab\"] }}) {{ totalCount nodes {{ storeId }} }} }}"),
        format!("{{ store(id: \"{THEIRS}\") {{ storeId }} }}"),
        "{ store(id: \"both-ab\") { id storeId timezone businessHours { day start end } uptime { storeId uptimeLastHour }
           timeline { start end open status } polls(first: 100) { nodes { at status } }
           incidents { totalCount nodes { id storeId } } } }"
            .to_string(),
        format!("{{ reports(first: 2) {{ nodes {{ id status storesTotal storesDone csv csvUrl {rows} }} }} }}"),
        format!("{{ latestReport {{ id storesTotal csv {rows} }} }}"),
        format!(
            "{{ report(id: \"{report}\") {{ desc: rows(orderBy: {{ field: DOWNTIME_LAST_WEEK, direction: DESC }}) {{ totalCount nodes {{ storeId }} }}
               named: rows(filter: {{ storeIds: [\"{THEIRS}\", \"both-ab\"] }}) {{ totalCount nodes {{ storeId }} }}
               one: rows(storeId: \"{THEIRS}\") {{ totalCount nodes {{ storeId }} }} }} }}"
        ),
        format!(
            "{{ s: node(id: \"Store:{THEIRS}\") {{ id }} r: node(id: \"ReportRow:{report}:{THEIRS}\") {{ id }}
               i: node(id: \"{theirs_incident}\") {{ id ... on Incident {{ storeId }} }} }}"
        ),
    ];
    let client = reqwest::Client::new();
    for (who, token) in [("A", &a), ("fleet", &fleet)] {
        for read in &reads {
            let answer = app.graphql_as(token, read, json!({})).await;
            assert!(answer.get("errors").is_none(), "{who}: {read}: {answer}");
            answers.push((who.into(), read.clone(), answer.to_string()));
        }
        let link = app
            .graphql_as(
                token,
                &format!("{{ report(id: \"{report}\") {{ csvUrl }} }}"),
                json!({}),
            )
            .await["data"]["report"]["csvUrl"]
            .as_str()
            .unwrap()
            .to_string();
        for (path, with_token) in [
            (format!("/get_report?report_id={report}"), true),
            (format!("/reports/{report}.csv"), true),
            (link, false),
        ] {
            let mut request = client.get(format!("{}{path}", app.address));
            if with_token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{who}: {path}");
            answers.push((who.into(), path, response.text().await.unwrap()));
        }
    }
    // What each socket heard, until the last store is back up for both.
    for (who, socket) in ["A", "fleet"].into_iter().zip(&mut sockets) {
        let mut back = 0;
        while back < if who == "A" { 2 } else { 3 } {
            let message = socket.next().await.expect("the socket stays open");
            assert!(message["payload"]["errors"].is_null(), "{who}: {message}");
            if message["id"] == "i" {
                back += 1;
            }
            answers.push((
                who.into(),
                format!("subscription {}", message["id"]),
                message.to_string(),
            ));
        }
    }

    for (who, door, answer) in &answers {
        if who == "A" {
            assert!(!answer.contains(THEIRS), "{door} told A of {THEIRS}: {answer}");
        }
    }
    for door in ["subscription \"i\"", "/reports/", "node(id"] {
        assert!(
            answers
                .iter()
                .any(|(who, d, answer)| who == "fleet" && d.contains(door) && answer.contains(THEIRS)),
            "the fleet's {door} never named {THEIRS}: the scan would not catch a leak"
        );
    }
    let fleet_reads = answers
        .iter()
        .filter(|(who, d, a)| who == "fleet" && d.starts_with('{') && a.contains(THEIRS));
    assert!(fleet_reads.count() >= 6, "the fleet's reads name {THEIRS}");
}

/// The audit log of a real `serve` process: a scoped call names its groups, and asking for
/// another group's store (null to the caller) is counted in its call's line.
#[tokio::test]
async fn asking_for_another_groups_store_is_counted_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let reports = tempfile::tempdir().unwrap();
    let db = TestDb::new().await;
    create_token(&db, "admin", "the admin");
    let mut args = common::child::serve_args(&db.url, dir.path(), reports.path());
    args.extend(["--auth".into(), "required".into()]);
    let server = common::child::ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let a = scoped_token(&db, "viewer", "A");
    let ask = |query: &str| {
        let request = reqwest::Client::new()
            .post(format!("{}/graphql", server.address))
            .bearer_auth(&a)
            .json(&json!({ "query": query }));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let answer = ask("{ s: store(id: \"bravo-1\") { storeId } n: node(id: \"Store:bravo-1\") { id } }").await;
    assert_eq!(answer, json!({ "data": { "s": null, "n": null } }));
    let mine = ask("{ store(id: \"alpha-1\") { storeId } }").await;
    assert_eq!(mine["data"]["store"]["storeId"], "alpha-1");
    let log = server.log.clone();
    server.terminate();
    let log = log.lock().unwrap().join("\n");
    let calls: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("groups A") && l.contains("[read]: ok"))
        .collect();
    assert_eq!(calls.len(), 2, "{log}");
    assert!(
        calls[0].contains("2 stores outside its groups asked for, answered as absent"),
        "{log}"
    );
    assert!(!calls[1].contains("outside its groups"), "{log}");
}

/// A socket's caller was made at `connection_init` and kept its token's groups: after an
/// admin renamed A to A2 and B to A, a socket of an A-scoped viewer heard B's incidents and
/// read B's stores. Now the token's notice reaches the socket, which is closed (4403) before
/// anything of the new A; connected again, it sees its token's current group alone.
#[tokio::test]
async fn a_socket_after_renames_hears_and_reads_only_its_tokens_current_groups() {
    let (_dir, db, app, admin) = start().await;
    let viewer = scoped_token(&db, "viewer", "A");
    let pusher = create_token(&db, "operator", "the pusher");
    let open = || async {
        let mut socket = Socket::open(
            &app.address,
            json!({ "Authorization": format!("Bearer {viewer}") }),
        )
        .await;
        socket.expect_ack().await;
        socket
            .subscribe(
                "1",
                "subscription { incidents { type incident { storeId } } }",
                json!({}),
            )
            .await;
        socket
    };
    let mut before = open().await;
    let back_up = |store: &'static str| back_up(&app, &pusher, store);
    // The subscription runs: it hears of its own store.
    back_up("alpha-1").await;
    let heard = before.next().await.unwrap();
    assert_eq!(
        heard["payload"]["data"]["incidents"]["incident"]["storeId"], "alpha-1",
        "{heard}"
    );

    let rename = "mutation($g: String!, $n: String!) { renameGroup(group: $g, newName: $n) { name } }";
    for (from, to) in [("A", "A2"), ("B", "A")] {
        let renamed = app
            .graphql_as(&admin, rename, json!({ "g": from, "n": to }))
            .await;
        assert_eq!(renamed["data"]["renameGroup"]["name"], to, "{renamed}");
    }
    back_up("bravo-1").await;
    let closed = before.next().await.unwrap();
    assert_eq!(closed["type"], "close", "nothing of B's stores: {closed}");
    assert_eq!(closed["code"], 4403, "{closed}");
    assert!(
        closed["reason"].as_str().unwrap().contains("groups changed"),
        "{closed}"
    );

    // Connected again, the token sees A2 (alpha-1, both-ab), not the new A (bravo-1).
    let mut after = open().await;
    let read_query = "{ incidents { nodes { storeId } } store(id: \"bravo-1\") { storeId } }";
    after.subscribe("2", read_query, json!({})).await;
    let read = after.next().await.unwrap();
    let mut stores: Vec<String> = read["payload"]["data"]["incidents"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{read}"))
        .iter()
        .map(|n| n["storeId"].as_str().unwrap().to_string())
        .collect();
    stores.sort();
    assert_eq!(stores, ["alpha-1", "both-ab"], "{read}");
    assert_eq!(read["payload"]["data"]["store"], Value::Null, "{read}");
    back_up("both-ab").await;
    let heard = loop {
        let message = after.next().await.unwrap();
        if message["id"] == "1" {
            break message;
        }
    };
    assert_eq!(
        heard["payload"]["data"]["incidents"]["incident"]["storeId"], "both-ab",
        "{heard}"
    );
}
