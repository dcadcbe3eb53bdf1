//! A report cannot be lost or loop: it is queued with its job or not at all, its starts
//! are bounded even when each one kills its process, the reconciler mends what older
//! versions or hands on the database left behind, and finished reports are forgotten
//! after their keeping time.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::TestDb;
use common::child::{ChildServer, serve_args};
use store_monitor::jobs::prune_reports;
use store_monitor::jobs::reconcile::{self, Reconciled};
use store_monitor::jobs::report as report_job;
use store_monitor::output::ReportFiles;
use uuid::Uuid;

/// `serve` in a process of its own, with `STORE_MONITOR_FAILPOINT` set to `failpoint`.
fn serve_failing(db: &TestDb, reports: &Path, failpoint: &str) -> ChildServer {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    ChildServer::start_with_env(
        env!("CARGO_BIN_EXE_store-monitor"),
        serve_args(&db.url, &data, reports),
        [("STORE_MONITOR_FAILPOINT", failpoint)],
    )
}

async fn trigger(address: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("{address}/graphql"))
        .json(&serde_json::json!({ "query": "mutation { triggerReport { id } }" }))
        .send()
        .await
}

/// Waits (up to a minute) for the process to end, as a crash ends it.
fn wait_for_exit(server: &mut ChildServer) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not crash at its failpoint");
}

async fn report_state(db: &TestDb) -> Vec<(String, i32, Option<String>)> {
    sqlx::query_as("SELECT status, attempts, error FROM reports ORDER BY created_at")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_inserting_a_report_and_queueing_it_leaves_neither() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut server = serve_failing(&db, reports.path(), "report-inserted");

    let answer = trigger(&server.address).await;
    assert!(answer.is_err(), "the process died mid-request: {answer:?}");
    assert!(!wait_for_exit(&mut server).success());

    assert!(
        report_state(&db).await.is_empty(),
        "no report stays PENDING without a job"
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_kills_its_worker_every_time_ends_failed_after_its_attempts() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let mut server = serve_failing(&db, reports.path(), "report-running");
    let answer = trigger(&server.address).await.unwrap();
    assert!(answer.status().is_success());
    wait_for_exit(&mut server);

    // Each new process takes the dead one's job over once its heartbeats stop, starts the
    // report and dies in turn, until the report has used its attempts.
    let mut crashes = 1;
    let final_state = loop {
        let mut next = serve_failing(&db, reports.path(), "report-running");
        let crashed_or_failed = async {
            loop {
                if let Some(status) = next.child.try_wait().unwrap() {
                    assert!(!status.success());
                    break None;
                }
                let state = report_state(&db).await;
                if state[0].0 == "FAILED" {
                    break Some(state);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let state = common::within(
            "the process to crash at the failpoint or the report to fail",
            Duration::from_secs(120),
            crashed_or_failed,
        )
        .await;
        if state.is_none() {
            crashes += 1;
        }
        if let Some(state) = state {
            next.terminate();
            break state;
        }
        assert!(
            crashes <= report_job::MAX_ATTEMPTS,
            "the report is retried without end"
        );
    };
    assert_eq!(crashes, report_job::MAX_ATTEMPTS);
    let (status, attempts, error) = &final_state[0];
    assert_eq!(
        (status.as_str(), *attempts),
        ("FAILED", report_job::MAX_ATTEMPTS as i32)
    );
    let error = error.as_deref().unwrap();
    assert!(
        error.contains("worker stopped during each of its 3 attempts"),
        "{error}"
    );
}

/// A report inserted by hand, as an older version or an interrupted process could leave it.
async fn insert_report(db: &TestDb, status: &str, created: TimeDelta, finished: Option<TimeDelta>) -> Uuid {
    let id = Uuid::new_v4();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO reports (id, status, interpolation, created_at, finished_at, result_of)
         VALUES ($1, $2, 'NEAREST', $3, $4, CASE WHEN $2 = 'COMPLETE' THEN $1 END)",
    )
    .bind(id)
    .bind(status)
    .bind(now - created)
    .bind(finished.map(|f| now - f))
    .execute(&db.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn the_reconciler_queues_a_report_without_a_job_and_fails_one_whose_job_gave_up() {
    let db = TestDb::new().await;
    apalis_postgres::PostgresStorage::<()>::setup(&db.pool)
        .await
        .unwrap();
    let orphan = insert_report(&db, "PENDING", TimeDelta::minutes(5), None).await;
    let abandoned = insert_report(&db, "RUNNING", TimeDelta::minutes(5), None).await;
    let young = insert_report(&db, "PENDING", TimeDelta::zero(), None).await;
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(report_job::enqueue(&mut conn, abandoned).await.unwrap());
    sqlx::query("UPDATE apalis.jobs SET status = 'Killed', done_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();

    let done = reconcile::reconcile(&db.pool).await.unwrap();
    assert_eq!(
        done,
        Reconciled {
            requeued: 1,
            failed: 1
        }
    );
    let job: (String, i32) = sqlx::query_as("SELECT status, max_attempts FROM apalis.jobs WHERE id = $1")
        .bind(report_job::task_id(orphan).to_string())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(job, ("Pending".to_string(), report_job::MAX_ATTEMPTS as i32));
    let status = |id: Uuid| {
        sqlx::query_scalar::<_, String>("SELECT status FROM reports WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
    };
    assert_eq!(status(abandoned).await.unwrap(), "FAILED");
    assert_eq!(
        status(young).await.unwrap(),
        "PENDING",
        "a report a minute old may still be committing"
    );
    assert!(
        !report_job::enqueue(&mut conn, orphan).await.unwrap(),
        "queued once only"
    );

    assert_eq!(
        reconcile::reconcile(&db.pool).await.unwrap(),
        Reconciled::default()
    );
}

#[tokio::test]
async fn finished_reports_are_forgotten_after_their_keeping_time_except_a_result_still_shared() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let files = ReportFiles::new(dir.path());
    let day = TimeDelta::days(1);
    let old = insert_report(&db, "COMPLETE", day * 41, Some(day * 40)).await;
    let old_failed = insert_report(&db, "FAILED", day * 41, Some(day * 40)).await;
    let shared = insert_report(&db, "COMPLETE", day * 41, Some(day * 40)).await;
    let sharer = insert_report(&db, "COMPLETE", day, Some(day)).await;
    sqlx::query("UPDATE reports SET result_of = $1 WHERE id = $2")
        .bind(shared)
        .bind(sharer)
        .execute(&db.pool)
        .await
        .unwrap();
    let pending = insert_report(&db, "PENDING", day * 41, None).await;
    for id in [old, shared] {
        std::fs::write(files.path(id), "store_id\n").unwrap();
    }
    // A file whose report another process pruned, and one written just now.
    let stray = Uuid::new_v4();
    std::fs::write(files.path(stray), "store_id\n").unwrap();
    let forty_days = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    for id in [old, shared, stray] {
        std::fs::File::options()
            .write(true)
            .open(files.path(id))
            .unwrap()
            .set_modified(forty_days)
            .unwrap();
    }
    let fresh = Uuid::new_v4();
    std::fs::write(files.path(fresh), "store_id\n").unwrap();
    sqlx::query("INSERT INTO report_rows VALUES ($1, 's1', 1, 2, 3, 4, 5, 6), ($2, 's1', 1, 2, 3, 4, 5, 6)")
        .bind(old)
        .bind(shared)
        .execute(&db.pool)
        .await
        .unwrap();

    let pruned = prune_reports::prune(&db.pool, &files, Utc::now() - day * 30)
        .await
        .unwrap();
    assert_eq!(pruned, 2, "the old report and the old failed one");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM reports ORDER BY created_at, id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    for id in [shared, sharer, pending] {
        assert!(left.contains(&id), "{id} is kept");
    }
    assert!(!left.contains(&old) && !left.contains(&old_failed));
    let rows: Vec<Uuid> = sqlx::query_scalar("SELECT report FROM report_rows")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, [shared]);
    assert!(!files.path(old).exists() && !files.path(stray).exists());
    assert!(files.path(shared).exists() && files.path(fresh).exists());

    assert_eq!(
        prune_reports::prune(&db.pool, &files, Utc::now() - day * 30)
            .await
            .unwrap(),
        0
    );
}
