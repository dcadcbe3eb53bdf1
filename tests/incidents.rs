//! Incidents (issue 21) against the real server: pushed polls open and resolve them by the
//! rules (business hours on the store's clock, across a DST change), polls late, repeated
//! or in any batches give the incidents of the polls in time order, a reload of the same
//! polls opens nothing twice, and the `incidents` subscription tells each change once. A
//! backfill out of time order (issue 32) goes back over what the evaluator knows, not over
//! the database, and the same incidents come of it with processes taking turns.

mod common;

use std::path::Path;

use common::child::ChildServer;
use common::socket::Socket;
use common::{TestApp, TestDb};
use serde_json::{Value, json};
use store_monitor::domain::incident::{Rules, incidents, within_hours};
use store_monitor::domain::zone::ZoneClock;
use store_monitor::domain::{HoursRow, LocalTime, Poll, Timestamp, Weekday, Zone};

const HEADER: &str = "store_id,status,timestamp_utc";

/// A data folder: every store open 09:00–17:00 daily in Chicago, no polls yet.
fn chicago_nine_to_five(dir: &Path, stores: &[&str]) {
    let mut hours = String::from("store_id,dayOfWeek,start_time_local,end_time_local\n");
    let mut zones = String::from("store_id,timezone_str\n");
    for store in stores {
        for day in 0..7 {
            hours.push_str(&format!("{store},{day},09:00:00,17:00:00\n"));
        }
        zones.push_str(&format!("{store},America/Chicago\n"));
    }
    std::fs::write(dir.join("menu_hours.csv"), hours).unwrap();
    std::fs::write(dir.join("timezones.csv"), zones).unwrap();
    std::fs::write(dir.join("store_status.csv"), format!("{HEADER}\n")).unwrap();
}

fn body(polls: &[(&str, &str, bool)]) -> String {
    let mut body = format!("{HEADER}\n");
    for (store, at, active) in polls {
        let status = if *active { "active" } else { "inactive" };
        body.push_str(&format!("{store},{status},{at} UTC\n"));
    }
    body
}

async fn push(app: &TestApp, polls: &[(&str, &str, bool)]) {
    push_to(&app.address, polls).await;
}

async fn push_to(address: &str, polls: &[(&str, &str, bool)]) {
    let response = reqwest::Client::new()
        .post(format!("{address}/polls"))
        .header("content-type", "text/csv")
        .body(body(polls))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn push_owned(app: &TestApp, store: &str, polls: &[(String, bool)]) {
    let rows: Vec<(&str, &str, bool)> = polls.iter().map(|(at, a)| (store, at.as_str(), *a)).collect();
    push(app, &rows).await;
}

const INCIDENTS: &str = "query($stores: [ID!]) {
    incidents(filter: { storeIds: $stores }, first: 1000) {
        totalCount
        nodes { id storeId openedAt resolvedAt open inactivePolls }
    }
}";

/// The store's incidents, oldest first.
async fn incidents_of(app: &TestApp, store: &str) -> Vec<Value> {
    let answer = app.graphql(INCIDENTS, json!({ "stores": [store] })).await;
    assert!(answer["errors"].is_null(), "{answer}");
    let mut list = answer["data"]["incidents"]["nodes"].as_array().unwrap().clone();
    list.reverse();
    assert_eq!(answer["data"]["incidents"]["totalCount"], list.len());
    list
}

/// An incident as the API writes it, without its id: (opened, resolved, inactive polls).
fn summary(incident: &Value) -> (String, Option<String>, i64) {
    (
        incident["openedAt"].as_str().unwrap().to_string(),
        incident["resolvedAt"].as_str().map(str::to_string),
        incident["inactivePolls"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn pushed_polls_open_and_resolve_an_incident_by_business_hours_across_a_dst_change() {
    let data = tempfile::tempdir().unwrap();
    chicago_nine_to_five(data.path(), &["chicago"]);
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, data.path(), 0).await;
    let mut socket = Socket::open(&app.address, json!({})).await;
    socket.expect_ack().await;
    socket
        .subscribe(
            "1",
            "subscription { incidents { eventId type incident { id storeId openedAt resolvedAt open inactivePolls } } }",
            json!({}),
        )
        .await;
    // Chicago moved from UTC-6 to UTC-5 on Sunday 2023-03-12.
    let polls = [
        ("2023-03-11 14:30:00", false), // 08:30 CST: closed, not counted
        ("2023-03-11 15:30:00", false), // 09:30 CST: the first inactive poll in hours
        ("2023-03-11 23:30:00", false), // 17:30 CST: closed
        ("2023-03-12 13:30:00", false), // 08:30 CDT: closed (07:30 on the old offset)
        ("2023-03-12 14:30:00", false), // 09:30 CDT: the second: the store is down
        ("2023-03-12 15:30:00", false), // 10:30 CDT: a third
        ("2023-03-12 22:30:00", true),  // 17:30 CDT: closed, so it resolves nothing
        ("2023-03-13 14:30:00", true),  // 09:30 CDT: up again
        ("2023-03-13 15:30:00", false), // one inactive poll alone opens nothing
        ("2023-03-13 16:30:00", true),
    ];
    for (i, (at, active)) in polls.iter().enumerate() {
        push(&app, &[("chicago", at, *active)]).await;
        let found = incidents_of(&app, "chicago").await;
        let expected = match i {
            0..=3 => vec![],
            4 => vec![("2023-03-11T15:30:00+00:00".into(), None, 2)],
            5 | 6 => vec![("2023-03-11T15:30:00+00:00".into(), None, 3)],
            _ => vec![(
                "2023-03-11T15:30:00+00:00".into(),
                Some("2023-03-13T14:30:00+00:00".into()),
                3,
            )],
        };
        let found: Vec<_> = found.iter().map(summary).collect();
        assert_eq!(found, expected, "after the poll at {at}");
    }

    // The subscription told the opening, then the resolution, of the same incident.
    let opened = next_event(&mut socket).await;
    assert_eq!(opened["type"], "OPENED");
    assert_eq!(opened["incident"]["open"], true);
    assert_eq!(opened["incident"]["inactivePolls"], 2);
    let resolved = next_event(&mut socket).await;
    assert_eq!(resolved["type"], "RESOLVED");
    assert_eq!(resolved["incident"]["id"], opened["incident"]["id"]);
    assert_eq!(resolved["incident"]["resolvedAt"], "2023-03-13T14:30:00+00:00");
    assert_ne!(resolved["eventId"], opened["eventId"]);

    // The incident is a node; the store lists it; the worst-first order and filters agree.
    let id = opened["incident"]["id"].as_str().unwrap();
    let node = app
        .graphql(
            "query($id: ID!) { node(id: $id) { ... on Incident { storeId store { storeId } open } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(node["data"]["node"]["store"]["storeId"], "chicago", "{node}");
    let store = app
        .graphql(
            r#"{ store(id: "chicago") { incidents(open: false) { totalCount nodes { id } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        store["data"]["store"]["incidents"]["nodes"][0]["id"], id,
        "{store}"
    );
    let open = app
        .graphql("{ incidents(filter: { open: true }) { totalCount } }", json!({}))
        .await;
    assert_eq!(open["data"]["incidents"]["totalCount"], 0, "{open}");
    app.stop().await;
}

async fn next_event(socket: &mut Socket) -> Value {
    let message = socket.next().await.expect("the socket stays open");
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["incidents"].clone()
}

/// A small deterministic generator, so that a failure names its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

/// `n` hourly polls from Friday 2023-03-10 18:00 UTC, over the DST change: down for a
/// while now and then.
fn hourly_polls(n: usize, rng: &mut Lcg) -> Vec<(String, bool)> {
    let start = chrono::NaiveDate::from_ymd_opt(2023, 3, 10)
        .unwrap()
        .and_hms_opt(18, 0, 0)
        .unwrap();
    let mut down = false;
    (0..n)
        .map(|i| {
            if rng.next(5) == 0 {
                down = !down;
            }
            let at = start + chrono::TimeDelta::minutes(60 * i as i64 + rng.next(50) as i64);
            (at.format("%Y-%m-%d %H:%M:%S").to_string(), !down)
        })
        .collect()
}

/// The incidents of `polls` by the rules, computed from the polls in time order alone.
fn expected(polls: &[(String, bool)], rules: Rules) -> Vec<(String, Option<String>, i64)> {
    let rows: Vec<HoursRow> = (0..7)
        .map(|day| HoursRow {
            day: Weekday::new(day).unwrap(),
            start: LocalTime::from_micros(9 * 3_600_000_000).unwrap(),
            end: LocalTime::from_micros(17 * 3_600_000_000).unwrap(),
        })
        .collect();
    let at = |text: &str| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    };
    let all: Vec<Poll> = polls
        .iter()
        .map(|(t, active)| Poll {
            at: Timestamp::from_datetime(at(t)),
            active: *active,
        })
        .collect();
    let zone: Zone = "America/Chicago".parse().unwrap();
    let text = |t: Timestamp| t.to_datetime().unwrap().to_rfc3339();
    let clock = ZoneClock::new(zone, all[0].at, Timestamp(all[all.len() - 1].at.micros() + 1));
    incidents(&within_hours(&all, &rows, &clock), rules)
        .iter()
        .map(|i| {
            (
                text(i.opened_at),
                i.resolved_at.map(text),
                i.inactive_polls as i64,
            )
        })
        .collect()
}

#[tokio::test]
async fn late_repeated_and_batched_polls_give_the_incidents_of_the_polls_in_time_order() {
    let data = tempfile::tempdir().unwrap();
    let stores = ["in-order", "shuffled", "backwards"];
    let named: Vec<String> = (1..=3)
        .flat_map(|seed| stores.map(|s| format!("{s}-{seed}")))
        .collect();
    chicago_nine_to_five(data.path(), &named.iter().map(String::as_str).collect::<Vec<_>>());
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, data.path(), 0).await;
    for seed in 1..=3u64 {
        let mut rng = Lcg(seed);
        let polls = hourly_polls(120, &mut rng);
        let expected = expected(&polls, Rules::default());
        assert!(expected.len() >= 2, "seed {seed}: the polls open incidents");
        let (a, b, c) = (
            format!("{}-{seed}", stores[0]),
            format!("{}-{seed}", stores[1]),
            format!("{}-{seed}", stores[2]),
        );
        // In order, a few polls a batch.
        for chunk in polls.chunks(3) {
            push_owned(&app, &a, chunk).await;
        }
        // Shuffled into batches of 1 to 9, a tenth of them sent twice, some with a poll twice.
        let mut shuffled = polls.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.next(i + 1));
        }
        let mut rest = &shuffled[..];
        while !rest.is_empty() {
            let n = (1 + rng.next(9)).min(rest.len());
            let mut batch = rest[..n].to_vec();
            if rng.next(10) == 0 {
                push_owned(&app, &b, &batch).await;
                batch.push(rest[0].clone());
            }
            push_owned(&app, &b, &batch).await;
            rest = &rest[n..];
        }
        // Newest first, one at a time: every poll is late.
        for poll in polls.iter().rev() {
            push_owned(&app, &c, std::slice::from_ref(poll)).await;
        }
        for store in [&a, &b, &c] {
            let found: Vec<_> = incidents_of(&app, store).await.iter().map(summary).collect();
            assert_eq!(found, expected, "seed {seed}, store {store}");
        }
    }
    // One open incident per store at most, whatever the arrivals: the database says so.
    let open: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM incidents WHERE resolved_at IS NULL GROUP BY store) c",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(open <= 1);
    app.stop().await;
}

#[tokio::test]
async fn a_reload_of_the_same_polls_opens_nothing_twice() {
    let data = tempfile::tempdir().unwrap();
    chicago_nine_to_five(data.path(), &["s"]);
    let mut rng = Lcg(7);
    let polls = hourly_polls(150, &mut rng);
    let rows: Vec<(&str, &str, bool)> = polls.iter().map(|(at, a)| ("s", at.as_str(), *a)).collect();
    std::fs::write(data.path().join("store_status.csv"), body(&rows)).unwrap();
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, data.path(), 0).await;
    let first: Vec<_> = incidents_of(&app, "s").await;
    let summaries: Vec<_> = first.iter().map(summary).collect();
    assert_eq!(summaries, expected(&polls, Rules::default()));
    let events = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM incident_events")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let told = events(&db).await;

    // The same polls in another order (so that the file is read again), and pushed again.
    let mut reversed = rows.clone();
    reversed.reverse();
    std::fs::write(data.path().join("store_status.csv"), body(&reversed)).unwrap();
    let reload = app
        .graphql("mutation { reloadData { changed } }", json!({}))
        .await;
    assert!(reload["errors"].is_null(), "{reload}");
    push(&app, &rows).await;
    assert_eq!(
        incidents_of(&app, "s").await,
        first,
        "the same incidents, ids and all"
    );
    assert_eq!(events(&db).await, told, "nothing told twice");
    app.stop().await;
}

#[tokio::test]
async fn removing_the_polls_that_made_an_incident_withdraws_it() {
    let data = tempfile::tempdir().unwrap();
    chicago_nine_to_five(data.path(), &["s"]);
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, data.path(), 0).await;
    push(
        &app,
        &[
            ("s", "2023-03-01 16:00:00", true),  // 10:00 CST
            ("s", "2023-03-01 17:00:00", false), // 11:00
            ("s", "2023-03-01 18:00:00", false), // 12:00: down since 11:00
        ],
    )
    .await;
    assert_eq!(incidents_of(&app, "s").await.len(), 1);
    // The last poll came from a clock gone wrong: removed, the store was never down.
    let removed = app
        .graphql(
            r#"mutation { deletePolls(input: { storeIds: ["s"], from: "2023-03-01T18:00:00Z" }) { files { rowsDeleted } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        removed["data"]["deletePolls"]["files"][0]["rowsDeleted"], 1,
        "{removed}"
    );
    assert!(incidents_of(&app, "s").await.is_empty());
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM incident_events ORDER BY seq")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["opened", "withdrawn"]);
    app.stop().await;
}

/// Each store's polls, in time order.
type StorePolls = Vec<Vec<(String, bool)>>;

/// Every store's polls (`hourly_polls`), all shuffled together: (store, poll) in the order
/// a backfill sends them.
fn shuffled_backfill(stores: usize, rng: &mut Lcg) -> (StorePolls, Vec<(usize, usize)>) {
    let polls: Vec<Vec<(String, bool)>> = (0..stores).map(|_| hourly_polls(120, rng)).collect();
    let mut order: Vec<(usize, usize)> = (0..stores).flat_map(|s| (0..120).map(move |p| (s, p))).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.next(i + 1));
    }
    (polls, order)
}

/// Where a backfill runs: `n` stores open 09:00–17:00 in Chicago with no polls, named
/// `{prefix}-{i}`, a database, and the arguments that serve them from another process.
struct Stage {
    names: Vec<String>,
    args: Vec<std::ffi::OsString>,
    _db: TestDb,
    _folders: [tempfile::TempDir; 2],
}

async fn stage(prefix: &str, n: usize) -> Stage {
    let (data, reports) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    chicago_nine_to_five(data.path(), &names.iter().map(String::as_str).collect::<Vec<_>>());
    let db = TestDb::new().await;
    let args = common::child::serve_args(&db.url, data.path(), reports.path());
    Stage {
        names,
        args,
        _db: db,
        _folders: [data, reports],
    }
}

async fn push_rows(address: &str, names: &[String], polls: &[Vec<(String, bool)>], rows: &[(usize, usize)]) {
    let rows: Vec<(&str, &str, bool)> = rows
        .iter()
        .map(|&(s, p)| (names[s].as_str(), polls[s][p].0.as_str(), polls[s][p].1))
        .collect();
    push_to(address, &rows).await;
}

/// The store's incidents as a server in another process answers them, oldest first.
async fn incidents_at(server: &ChildServer, store: &str) -> Vec<(String, Option<String>, i64)> {
    let answer = server
        .graphql(&format!(
            r#"{{ incidents(filter: {{ storeIds: ["{store}"] }}, first: 1000) {{
                nodes {{ openedAt resolvedAt inactivePolls }} }} }}"#
        ))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let list = answer["data"]["incidents"]["nodes"].as_array().unwrap();
    list.iter().rev().map(summary).collect()
}

/// How many stored polls the evaluator went back over, from the database and from memory.
async fn polls_gone_over(server: &ChildServer) -> (f64, f64) {
    let scrape = server.scrape_metrics().await;
    let sum = |from: &str| -> f64 {
        scrape
            .lines()
            .filter(|l| l.starts_with("store_monitor_incidents_polls_read_total{"))
            .filter(|l| l.contains(&format!("from=\"{from}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    (sum("database"), sum("memory"))
}

/// A backfill in no order (a poller's retry queue, a migration): every batch has polls
/// older than those evaluated for nearly every store, and each batch read each store's
/// history back from the database again (a full-size file pushed so ran at 0.20× `COPY`).
/// Once it has read them, the evaluator goes back over what it knows instead, and finds the
/// incidents of the polls in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_backfill_reads_each_stores_polls_from_the_database_once() {
    // Kept whole to the end: its database and folders go with it.
    let stage = stage("backfill", 40).await;
    let (names, mut args) = (stage.names.clone(), stage.args.clone());
    args.extend(["--metrics-bind".into(), "127.0.0.1:0".into()]);
    let server = ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args);
    let (polls, order) = shuffled_backfill(names.len(), &mut Lcg(11));
    let batches: Vec<&[(usize, usize)]> = order.chunks(order.len() / 6).collect();
    // The first batch is every store's first: in time order for each. The second is read
    // back from the database.
    push_rows(&server.address, &names, &polls, batches[0]).await;
    push_rows(&server.address, &names, &polls, batches[1]).await;
    let (first_read, _) = polls_gone_over(&server).await;
    assert!(
        first_read > 0.0,
        "the second batch is evaluated from the database"
    );
    for batch in &batches[2..] {
        push_rows(&server.address, &names, &polls, batch).await;
    }
    let (read, recalled) = polls_gone_over(&server).await;
    let later: usize = batches[2..].iter().map(|b| b.len()).sum();
    // Each later batch goes back over most of each store's polls (12,800 reads from the
    // database over these four before): now from memory, but for a store now and then
    // whose polls were known from a day before its earliest, and now needs older ones.
    assert!(
        read - first_read <= later as f64 / 10.0,
        "{} polls read from the database after the second batch, {recalled} from memory",
        read - first_read
    );
    assert!(recalled >= later as f64, "{recalled} polls gone over from memory");
    for (name, polls) in names.iter().zip(&polls) {
        assert_eq!(
            incidents_at(&server, name).await,
            expected(polls, Rules::default()),
            "{name}"
        );
    }
    server.terminate();
}

/// What one process knows holds only while no other evaluates: two servers on one database
/// take turns with a shuffled backfill, a removal comes in between, and each store's
/// incidents are those of its polls in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_taking_turns_with_a_backfill_and_a_removal_find_the_incidents_of_time_order() {
    let stage = stage("turns", 12).await;
    let (names, args) = (stage.names.clone(), stage.args.clone());
    let servers = [
        ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args.clone()),
        ChildServer::start(env!("CARGO_BIN_EXE_store-monitor"), args),
    ];
    let (polls, order) = shuffled_backfill(names.len(), &mut Lcg(5));
    // Six batches, by turns; then the first store's polls from 13 March go, by the first
    // server; then the rest of the batches, by turns again.
    let batches: Vec<&[(usize, usize)]> = order.chunks(order.len() / 10).collect();
    for (i, batch) in batches[..6].iter().enumerate() {
        push_rows(&servers[i % 2].address, &names, &polls, batch).await;
    }
    let cut = "2023-03-13 00:00:00";
    let removed = servers[0]
        .graphql(&format!(
            r#"mutation {{ deletePolls(input: {{ storeIds: ["{}"], from: "2023-03-13T00:00:00Z" }}) {{ files {{ rowsDeleted }} }} }}"#,
            names[0]
        ))
        .await;
    assert!(removed["errors"].is_null(), "{removed}");
    for (i, batch) in batches[6..].iter().enumerate() {
        push_rows(&servers[(i + 1) % 2].address, &names, &polls, batch).await;
    }
    // The first store keeps, of its polls from the cut on, those sent after the removal.
    let before: std::collections::HashSet<usize> = batches[..6]
        .iter()
        .flat_map(|b| b.iter())
        .filter(|&&(s, p)| s == 0 && polls[0][p].0.as_str() >= cut)
        .map(|&(_, p)| p)
        .collect();
    assert!(!before.is_empty());
    let kept: Vec<(String, bool)> = (0..120)
        .filter(|p| !before.contains(p))
        .map(|p| polls[0][p].clone())
        .collect();
    for server in &servers {
        assert_eq!(
            incidents_at(server, &names[0]).await,
            expected(&kept, Rules::default())
        );
        for (name, polls) in names.iter().zip(&polls).skip(1) {
            assert_eq!(
                incidents_at(server, name).await,
                expected(polls, Rules::default()),
                "{name}"
            );
        }
    }
    for server in servers {
        server.terminate();
    }
}
