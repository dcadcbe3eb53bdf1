//! The scheduled reload: a real apalis cron worker per "process", ticking every second.

mod common;

use std::time::Duration;

use apalis::prelude::*;
use apalis_cron::CronScheduler;
use common::{TestDb, example_dirs};
use store_monitor::input::FileChoice;
use store_monitor::jobs::reload::{ReloadContext, every, on_tick, schedule};

/// Claimed ticks and load records so far.
async fn progress(db: &TestDb) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM reload_ticks), (SELECT count(*) FROM data_loads)")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_each_tick_once() {
    let db = TestDb::new().await;
    let every_second = schedule("* * * * * *").unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = |instance: &str| {
        let mut stopped = stopped.clone();
        let ctx = ReloadContext {
            pool: db.pool.clone(),
            data_dir: example_dirs()[0].clone(),
            files: FileChoice::default(),
            instance: instance.to_string(),
            keep_history: chrono::TimeDelta::days(30),
            guard: Default::default(),
        };
        WorkerBuilder::new(format!("reload-{instance}"))
            .backend(CronScheduler::new(every_second.clone()))
            .data(ctx)
            .build(on_tick)
            .run_until(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
                Ok::<(), std::io::Error>(())
            })
    };
    // Stop once three ticks have run to the end: each has its three load records.
    let enough = async {
        let three_ticks = async {
            loop {
                let (ticks, loads) = progress(&db).await;
                if ticks >= 3 && loads == 3 * ticks {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        common::within(
            "three reload ticks run to the end",
            Duration::from_secs(120),
            three_ticks,
        )
        .await;
        stop.send(true).unwrap();
    };
    let (a, b, ()) = tokio::join!(worker("process-a"), worker("process-b"), enough);
    a.unwrap();
    b.unwrap();

    let ticks: i64 = sqlx::query_scalar("SELECT count(*) FROM reload_ticks")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let loads: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM data_loads GROUP BY outcome ORDER BY outcome")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(ticks >= 2, "{ticks} ticks");
    // Three files per tick, loaded at the first tick and unchanged after: had both processes
    // run a tick, there would be six loads for it.
    assert_eq!(
        loads,
        [
            ("loaded".to_string(), 3),
            ("unchanged".to_string(), 3 * (ticks - 1))
        ]
    );
}

#[test]
fn reload_periods_are_checked_against_the_clock() {
    assert!(every(10).is_ok());
    assert!(every(60).is_ok());
    assert!(every(120).is_ok());
    assert!(every(1440).is_ok());
    let err = every(7).unwrap_err();
    assert!(err.contains("--reload-cron"), "{err}");
    assert!(every(0).is_err());
    assert!(
        schedule("every ten minutes")
            .unwrap_err()
            .contains("seconds first")
    );
}
