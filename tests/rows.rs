//! A report's rows as a front end asks for them (issue 11): ordered by any figure or the
//! store id, either way, filtered by stores and ranges, counted, and paged, each checked
//! against a sort of the report's own CSV done here.

mod common;

use std::path::Path;

use common::{TestApp, TestDb};
use serde_json::{Value, json};

const FIELDS: [&str; 7] = [
    "STORE_ID",
    "UPTIME_LAST_HOUR",
    "UPTIME_LAST_DAY",
    "UPTIME_LAST_WEEK",
    "DOWNTIME_LAST_HOUR",
    "DOWNTIME_LAST_DAY",
    "DOWNTIME_LAST_WEEK",
];

/// One CSV row: the store id and its six figures in hundredths.
#[derive(Clone, Debug)]
struct Row {
    store: String,
    figures: [i64; 6],
}

impl Row {
    /// The sort key of `field` (an index of [`FIELDS`]): the figure (0 for the store id),
    /// then the store id byte by byte.
    fn key(&self, field: usize) -> (i64, Vec<u8>) {
        let figure = if field == 0 { 0 } else { self.figures[field - 1] };
        (figure, self.store.as_bytes().to_vec())
    }
}

fn parse(csv: &str) -> Vec<Row> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let mut figures = [0; 6];
            for (figure, cell) in figures.iter_mut().zip(&cells[1..]) {
                *figure = (cell.parse::<f64>().unwrap() * 100.0).round() as i64;
            }
            Row {
                store: cells[0].to_string(),
                figures,
            }
        })
        .collect()
}

async fn report_on_generated_data(db: &TestDb, data: &Path) -> (TestApp, String, Vec<Row>) {
    let (server, id, csv) = common::generated_report(db, data, |_| {}).await;
    (server, id, parse(&csv))
}

const ROWS: &str = "query($id: ID!, $first: Int, $after: String, $order: ReportRowOrder, $filter: ReportRowFilter) {
  report(id: $id) { rows(first: $first, after: $after, orderBy: $order, filter: $filter) {
    totalCount
    edges { cursor node { storeId uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek } }
    pageInfo { hasNextPage endCursor } } } }";

/// Every page of `rows` in `order` with `filter`, `first` at a time: the store ids in the
/// order served, and the total count each page said.
async fn all_pages(
    server: &TestApp,
    id: &str,
    order: Value,
    filter: Value,
    first: i64,
) -> (Vec<String>, Vec<i64>) {
    let (mut stores, mut totals, mut after) = (Vec::new(), Vec::new(), Value::Null);
    loop {
        let answer = server
            .graphql(
                ROWS,
                json!({ "id": id, "first": first, "after": after, "order": order, "filter": filter }),
            )
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        let rows = &answer["data"]["report"]["rows"];
        totals.push(rows["totalCount"].as_i64().unwrap());
        for edge in rows["edges"].as_array().unwrap() {
            stores.push(edge["node"]["storeId"].as_str().unwrap().to_string());
        }
        if !rows["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (stores, totals);
        }
        after = rows["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_every_order_and_filter_match_a_sort_of_the_csv() {
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let (server, id, rows) = report_on_generated_data(&db, data.path()).await;
    assert!(rows.len() > 250, "{} rows", rows.len());

    // Every order, both ways, paged 37 at a time.
    for (field, name) in FIELDS.iter().enumerate() {
        let mut expected = rows.clone();
        expected.sort_by_key(|r| r.key(field));
        let ascending: Vec<String> = expected.iter().map(|r| r.store.clone()).collect();
        let mut descending = ascending.clone();
        descending.reverse();
        for (direction, want) in [("ASC", &ascending), ("DESC", &descending)] {
            let order = json!({ "field": name, "direction": direction });
            let (got, totals) = all_pages(&server, &id, order, Value::Null, 37).await;
            assert_eq!(&got, want, "{name} {direction}");
            assert!(totals.iter().all(|t| *t == rows.len() as i64), "{totals:?}");
        }
    }

    // The worst stores first: the most downtime in the last week, ranges and stores.
    let (min, max) = (1.5, 40.25);
    let mut expected: Vec<&Row> = rows
        .iter()
        .filter(|r| (150..=4025).contains(&r.figures[5]) && r.figures[3] <= 3000)
        .collect();
    expected.sort_by_key(|r| std::cmp::Reverse(r.key(6)));
    let filter = json!({ "downtimeLastWeek": { "min": min, "max": max }, "downtimeLastHour": { "max": 30 } });
    let order = json!({ "field": "DOWNTIME_LAST_WEEK", "direction": "DESC" });
    let (got, totals) = all_pages(&server, &id, order.clone(), filter, 10).await;
    let want: Vec<String> = expected.iter().map(|r| r.store.clone()).collect();
    assert_eq!(got, want);
    assert!(totals.iter().all(|t| *t == want.len() as i64));
    assert!(
        !want.is_empty() && want.len() < rows.len(),
        "the filter keeps some rows, not all"
    );

    let some: Vec<String> = rows.iter().step_by(7).map(|r| r.store.clone()).collect();
    let filter =
        json!({ "storeIds": some.iter().chain(["no such store".to_string()].iter()).collect::<Vec<_>>() });
    let (got, totals) = all_pages(&server, &id, json!({}), filter, 1000).await;
    let mut want = some.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(totals, [some.len() as i64]);

    // A range end on a hundredth is kept, float noise or not: 0.3 keeps 0.30.
    let row = rows.iter().find(|r| r.figures[2] > 0).unwrap();
    let exact = row.figures[2] as f64 / 100.0;
    let filter = json!({ "storeIds": [row.store], "uptimeLastWeek": { "min": exact, "max": exact } });
    let (got, _) = all_pages(&server, &id, json!({}), filter, 10).await;
    assert_eq!(got, std::slice::from_ref(&row.store));

    // A cursor of another order is the client's mistake, said so.
    let first = server
        .graphql(
            ROWS,
            json!({ "id": id, "first": 1, "order": { "field": "UPTIME_LAST_DAY" } }),
        )
        .await;
    let cursor = first["data"]["report"]["rows"]["pageInfo"]["endCursor"].clone();
    let answer = server
        .graphql(
            ROWS,
            json!({ "id": id, "first": 1, "after": cursor, "order": { "field": "DOWNTIME_LAST_DAY" } }),
        )
        .await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    server.stop().await;
}
