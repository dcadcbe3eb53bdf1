//! A report survives the death of the process running it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;
use serde_json::{Value, json};
use store_monitor::domain::Interpolation;
use store_monitor::input::{DataFiles, FileChoice, InputData};
use store_monitor::output::write_report;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `store-monitor serve` as a process of its own.
fn serve(db: &TestDb, data: &Path, reports: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args([
            "serve",
            "--no-reload",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db.url,
        ])
        .arg("--data")
        .arg(data)
        .arg("--reports")
        .arg(reports)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server on port {port} did not become ready");
}

async fn status(port: u16, id: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(
            &json!({ "query": "query($id: ID!) { report(id: $id) { status } }", "variables": { "id": id } }),
        )
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    body["data"]["report"]["status"].as_str().map(String::from)
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

    let first_port = free_port();
    let mut first = serve(&db, &data, reports.path(), first_port);
    wait_ready(first_port).await;
    let triggered: Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{first_port}/trigger_report"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = triggered["report_id"].as_str().unwrap().to_string();

    // Kill the process the moment its worker has the report RUNNING.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(first_port, &id).await;
        if s.as_deref() == Some("RUNNING") {
            break;
        }
        assert!(
            s.as_deref() != Some("COMPLETE"),
            "the report finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the report never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let second_port = free_port();
    let mut second = serve(&db, &data, reports.path(), second_port);
    wait_ready(second_port).await;

    // Until it completes, every request gets "Running" or 409, never part of a CSV.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut polls, mut served) = (0, None);
    while served.is_none() {
        assert!(
            Instant::now() < deadline,
            "the report was not completed after the crash"
        );
        let file = client
            .get(format!("http://127.0.0.1:{second_port}/reports/{id}.csv"))
            .send()
            .await
            .unwrap();
        match file.status().as_u16() {
            409 => {}
            200 => served = Some(file.text().await.unwrap()),
            other => panic!("unexpected status {other} for the report file"),
        }
        let poll = client
            .get(format!(
                "http://127.0.0.1:{second_port}/get_report?report_id={id}"
            ))
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.unwrap(), expected, "the report file is the whole report");
    assert!(polls > 1);
    assert_eq!(status(second_port, &id).await.as_deref(), Some("COMPLETE"));

    // The second run was the job's second attempt.
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE job_type = $1")
        .bind(store_monitor::jobs::report::QUEUE)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(attempts >= 2, "attempts: {attempts}");

    // SIGTERM stops the server gracefully.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    let stopped = tokio::task::spawn_blocking(move || second.wait().unwrap())
        .await
        .unwrap();
    assert!(stopped.success(), "graceful stop exits 0: {stopped:?}");
}
