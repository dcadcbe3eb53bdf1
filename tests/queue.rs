//! What store-monitor relies on in apalis's own tables (`db::queue`), checked against
//! apalis itself: jobs it queued count as waiting, jobs it finished or gave up on do not,
//! and old finished jobs and dead workers are pruned. If apalis changes how it writes
//! them, this fails.

mod common;

use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use common::TestDb;
use store_monitor::db::{housekeeping, queue};

const QUEUE: &str = "store-monitor::queue-test";

async fn succeed(_job: u32) -> Result<(), BoxDynError> {
    Ok(())
}

async fn fail(_job: u32) -> Result<(), BoxDynError> {
    Err("this job always fails".into())
}

fn storage(db: &TestDb) -> PostgresStorage<u32> {
    PostgresStorage::new(&db.pool).with_config(Config::default().queue(QUEUE))
}

async fn push(db: &TestDb, job: u32, max_attempts: usize) {
    let task = TaskBuilder::new(job).max_attempts(max_attempts).build();
    storage(db).push_task(task).await.unwrap();
}

/// Runs a worker with `handler` until nothing is left waiting on the queue.
async fn work_off<F, Fut>(db: &TestDb, name: &str, handler: F)
where
    F: Fn(u32) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    let pool = db.pool.clone();
    WorkerBuilder::new(name)
        .backend(storage(db))
        .build(handler)
        .run_until(async move {
            // A regression fails here with a message instead of hanging the suite.
            let drained = async {
                while queue::depth(&pool, QUEUE).await.unwrap() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(60), drained)
                .await
                .expect("the worker drains the queue within a minute");
            Ok::<(), std::io::Error>(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_read_and_pruned_as_apalis_writes_it() {
    let db = TestDb::new().await;
    PostgresStorage::<()>::setup(&db.pool).await.unwrap();

    push(&db, 1, 3).await;
    push(&db, 2, 3).await;
    assert_eq!(
        queue::depth(&db.pool, QUEUE).await.unwrap(),
        2,
        "queued jobs wait"
    );
    work_off(&db, "queue-test-ok", succeed).await;

    push(&db, 3, 2).await;
    work_off(&db, "queue-test-failing", fail).await;
    assert_eq!(
        queue::depth(&db.pool, QUEUE).await.unwrap(),
        0,
        "a job out of attempts waits no more"
    );

    // Nothing is old yet; everything is once the horizon passes it.
    let now = chrono::Utc::now();
    let early = housekeeping::prune(&db.pool, now - chrono::TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!((early.jobs, early.workers), (0, 0));
    let before_prune: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let later = housekeeping::prune(&db.pool, now + chrono::TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(later.jobs, 3, "two done and one failed for good: {later:?}");
    // Whatever apalis does with its workers' rows when they stop (it may delete them
    // itself, or leave one named as a job's holder), no worker row written before the
    // prune that holds nothing is left. A stopped worker's registration can land after the
    // prune on a busy machine, re-inserting its row: that is a new row (a later
    // transaction), not one left over. tests/db.rs counts the pruning of rows written by hand.
    let idle_left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.workers w WHERE w.xmin::text::bigint < $1
           AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    )
    .bind(before_prune)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        idle_left, 0,
        "a stopped worker holding no job was left: {later:?}"
    );
}
