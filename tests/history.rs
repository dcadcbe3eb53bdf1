//! A report reads its window (issue 19, part 2): the polls of its week and each store's
//! last poll before it, whatever the length of history. Its rows equal the whole-history
//! engine's on the same files, for both interpolations and any `asOf`, stores whose only
//! polls are weeks old included.

mod common;

use std::io::Write;
use std::path::Path;

use common::TestDb;
use store_monitor::db::reload::reload;
use store_monitor::db::snapshot::Snapshot;
use store_monitor::domain::time::MICROS_PER_DAY;
use store_monitor::domain::{Interpolation, StoreReport, Timestamp};
use store_monitor::generate::{Plan, generate};
use store_monitor::input::{DataFiles, FileChoice, InputData};

fn files(dir: &Path) -> DataFiles {
    DataFiles::find(dir, &FileChoice::default()).unwrap()
}

async fn from_db(db: &TestDb, as_of: Option<Timestamp>, interpolation: Interpolation) -> Vec<StoreReport> {
    let snapshot = Snapshot::open(&db.pool, as_of).await.unwrap();
    let total = snapshot.stores_total;
    let rows = snapshot.report(interpolation, Default::default()).await.unwrap();
    assert_eq!(rows.len() as u64, total, "storesTotal is the number of rows");
    rows
}

fn from_files(dir: &Path, as_of: Option<Timestamp>, interpolation: Interpolation) -> Vec<StoreReport> {
    InputData::load(&files(dir))
        .unwrap()
        .prepare()
        .report(as_of, interpolation)
        .rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_weeks_of_history_equals_the_whole_history_engine() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let end = Plan::END;
    generate(&Plan {
        out: dir.path().to_path_buf(),
        stores: 150,
        days: 40,
        seed: 19,
        polls_per_store: 400,
        end,
        hours: data.join("menu_hours.csv"),
        timezones: data.join("timezones.csv"),
        gzip: false,
        by_store: false,
    })
    .unwrap();
    // Stores whose only polls are weeks before the newest: one that went down and stayed
    // silent, one polled once; and one polled only after most reports' *now*.
    let day = |n: i64| Timestamp(end.0 - n * MICROS_PER_DAY);
    let mut status = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("store_status.csv"))
        .unwrap();
    for (store, status_word, at) in [
        ("silent-since", "active", day(20)),
        ("silent-since", "inactive", day(19)),
        ("polled-once", "inactive", day(30)),
        ("late-comer", "active", Timestamp(end.0 - 3_600_000_000)),
    ] {
        writeln!(status, "{store},{status_word},{at}").unwrap();
    }
    drop(status);

    let db = TestDb::new().await;
    reload(&db.pool, &files(dir.path())).await.unwrap();
    // *Now* at the newest poll, inside the history, just after the silent store's last
    // poll, halfway between two days, and before nearly every poll.
    let instants = [
        None,
        Some(day(3)),
        Some(Timestamp(day(19).0 + 1)),
        Some(Timestamp(day(12).0 + MICROS_PER_DAY / 2 + 1)),
        Some(day(39)),
    ];
    for as_of in instants {
        for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
            let expected = from_files(dir.path(), as_of, interpolation);
            assert!(!expected.is_empty(), "{as_of:?}");
            let got = from_db(&db, as_of, interpolation).await;
            assert_eq!(got.len(), expected.len(), "{as_of:?} {interpolation:?}");
            for (got, expected) in got.iter().zip(&expected) {
                assert_eq!(got, expected, "{as_of:?} {interpolation:?}");
            }
        }
    }
    let silent = from_db(&db, None, Interpolation::ForwardFill).await;
    let row = silent.iter().find(|r| r.store_id == "silent-since").unwrap();
    assert!(
        row.uptime.last_week.down.0 > 0,
        "a store silent for weeks carries its last status into the week: {row:?}"
    );
}
