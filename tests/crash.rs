//! A report survives the death of the process running it.

mod common;

use std::path::Path;

use common::child::{ChildServer, serve_args};
use common::{Subscription, TestDb};
use serde_json::Value;
use store_monitor::domain::Interpolation;
use store_monitor::input::{DataFiles, FileChoice, InputData};
use store_monitor::output::write_report;

/// `store-monitor serve` as a process of its own, on the test's database.
fn serve(db: &TestDb, data: &Path, reports: &Path) -> ChildServer {
    ChildServer::start(
        env!("CARGO_BIN_EXE_store-monitor"),
        serve_args(&db.url, data, reports),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_process_is_killed_completes_in_the_next_and_no_partial_csv_is_served() {
    let db = TestDb::new().await;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let reports = tempfile::tempdir().unwrap();
    let expected = {
        let files = DataFiles::find(&data, &FileChoice::default()).unwrap();
        let mut out = Vec::new();
        write_report(
            &InputData::load(&files)
                .unwrap()
                .prepare()
                .report(None, Interpolation::Nearest),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    };

    let mut first = serve(&db, &data, reports.path());
    let triggered: Value = reqwest::Client::new()
        .post(format!("{}/trigger_report", first.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = triggered["report_id"].as_str().unwrap().to_string();

    // Kill the process the moment its worker has the report RUNNING.
    let mut states = Subscription::start(&first.address, &id, "graphql-transport-ws").await;
    loop {
        let state = states.next_state().await.expect("the report starts");
        match state["status"].as_str() {
            Some("RUNNING") => break,
            Some("PENDING") => {}
            other => panic!("the report finished before it could be interrupted: {other:?}"),
        }
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = serve(&db, &data, reports.path());
    let mut done = tokio::spawn({
        let (address, id) = (second.address.clone(), id.clone());
        async move {
            let mut states = Subscription::start(&address, &id, "graphql-ws").await;
            let mut last = None;
            while let Some(state) = states.next_state().await {
                last = state["status"].as_str().map(String::from);
            }
            last
        }
    });

    // Until it completes, every request gets "Running" or 409, never part of a CSV.
    let client = reqwest::Client::new();
    let mut polls = 0;
    let finished = loop {
        let file = client
            .get(format!("{}/reports/{id}.csv", second.address))
            .send()
            .await
            .unwrap();
        match file.status().as_u16() {
            409 => {}
            200 => assert_eq!(
                file.text().await.unwrap(),
                expected,
                "the report file is the whole report"
            ),
            other => panic!("unexpected status {other} for the report file"),
        }
        let poll = client
            .get(format!("{}/get_report?report_id={id}", second.address))
            .send()
            .await
            .unwrap();
        assert_eq!(poll.status(), 200);
        let is_csv = poll.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv");
        let body = poll.text().await.unwrap();
        if is_csv {
            assert_eq!(
                body, expected,
                "get_report served a CSV that is not the whole report"
            );
        } else {
            assert_eq!(body, r#"{"status":"Running"}"#);
        }
        polls += 1;
        tokio::select! {
            finished = &mut done => break finished.unwrap(),
            () = tokio::task::yield_now() => {}
        }
    };
    assert_eq!(finished.as_deref(), Some("COMPLETE"));
    assert!(polls >= 1);
    let file = client
        .get(format!("{}/reports/{id}.csv", second.address))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.text().await.unwrap(),
        expected,
        "the report file is the whole report"
    );

    // The second run was the report's second start (apalis's own count of the job's
    // attempts is written when it acknowledges the job, which may be after COMPLETE).
    let starts: i32 = sqlx::query_scalar("SELECT attempts FROM reports WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(starts, 2);

    // SIGTERM stops the server gracefully.
    let stopped = tokio::task::spawn_blocking(move || second.terminate())
        .await
        .unwrap();
    assert!(stopped.success(), "graceful stop exits 0: {stopped:?}");
}
