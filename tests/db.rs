//! The PostgreSQL data layer, against a real server: each test gets its own database.

mod common;

use std::path::Path;

use common::{TestDb, example_dirs};
use store_monitor::db::housekeeping::{self, Pruned};
use store_monitor::db::loads;
use store_monitor::db::reload::{Reload, reload};
use store_monitor::db::snapshot::Snapshot;
use store_monitor::domain::load::Outcome;
use store_monitor::domain::{Interpolation, StoreReport, Timestamp};
use store_monitor::generate::{Plan, generate};
use store_monitor::input::{DataFiles, FileChoice, FileKind, InputData};

fn files(dir: &Path) -> DataFiles {
    DataFiles::find(dir, &FileChoice::default()).unwrap()
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn version(db: &TestDb) -> i64 {
    loads::data_version(&db.pool).await.unwrap()
}

async fn db_report(db: &TestDb, as_of: Option<Timestamp>, interpolation: Interpolation) -> Vec<StoreReport> {
    let snapshot = Snapshot::open(&db.pool, as_of).await.unwrap();
    let expected_total = snapshot.stores_total;
    let rows = snapshot.report(interpolation, Default::default()).await.unwrap();
    assert_eq!(
        rows.len() as u64,
        expected_total,
        "storesTotal is the number of rows"
    );
    rows
}

fn file_report(dir: &Path, as_of: Option<Timestamp>, interpolation: Interpolation) -> Vec<StoreReport> {
    InputData::load(&files(dir))
        .unwrap()
        .prepare()
        .report(as_of, interpolation)
        .rows
}

fn outcomes(r: &Reload) -> Vec<(FileKind, Outcome)> {
    r.files
        .iter()
        .map(|f| (f.record.kind, f.record.outcome))
        .collect()
}

#[tokio::test]
async fn loading_the_same_files_twice_changes_nothing() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["store_status.csv", "menu_hours.csv", "timezones.csv"] {
        std::fs::copy(example_dirs()[0].join(name), dir.path().join(name)).unwrap();
    }
    let first = reload(&db.pool, &files(dir.path())).await.unwrap();
    assert!(
        first
            .files
            .iter()
            .all(|f| f.record.outcome == Outcome::Loaded && f.record.changed)
    );
    let (polls, hours, zones, v) = (
        count(&db, "polls").await,
        count(&db, "business_hours").await,
        count(&db, "timezones").await,
        version(&db).await,
    );
    assert!(polls > 0 && hours > 0 && zones > 0);

    // Unchanged files are skipped by their checksum.
    let second = reload(&db.pool, &files(dir.path())).await.unwrap();
    assert!(
        second
            .files
            .iter()
            .all(|f| f.record.outcome == Outcome::Unchanged && !f.record.changed)
    );

    // Changed bytes with the same rows (a repeated row) are read again and change nothing.
    let status = dir.path().join("store_status.csv");
    let mut text = std::fs::read_to_string(&status).unwrap();
    let last = text.lines().last().unwrap().to_string();
    text.push_str(&format!("{last}\n"));
    std::fs::write(&status, text).unwrap();
    let third = reload(&db.pool, &files(dir.path())).await.unwrap();
    let status_load = &third.files[0];
    assert_eq!(
        (
            status_load.record.outcome,
            status_load.record.rows_inserted,
            status_load.record.changed
        ),
        (Outcome::Loaded, 0, false)
    );
    assert_eq!(count(&db, "polls").await, polls);
    assert_eq!(
        (count(&db, "business_hours").await, count(&db, "timezones").await),
        (hours, zones)
    );
    assert_eq!(
        version(&db).await,
        v,
        "the data version moves only when the data does"
    );
}

#[tokio::test]
async fn bad_rows_are_stored_with_line_and_reason_while_good_rows_load() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("store_status.csv"),
        "store_id,status,timestamp_utc\na,active,2023-01-23 17:00:00 UTC\na,maybe,2023-01-23 16:00:00 UTC\nb,inactive,yesterday\nb,inactive,2023-01-23 15:00:00 UTC\n",
    )
    .unwrap();
    let r = reload(&db.pool, &files(dir.path())).await.unwrap();
    let load = &r.files[0];
    assert_eq!(
        (
            load.record.rows_read,
            load.record.rows_inserted,
            load.record.rows_rejected
        ),
        (4, 2, 2)
    );
    let stored: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT line, reason, raw FROM rejected_rows WHERE load = $1 ORDER BY line")
            .bind(load.record.id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].0, 3);
    assert!(
        stored[0].1.contains("unknown status \"maybe\""),
        "{}",
        stored[0].1
    );
    assert_eq!(stored[0].2, "a,maybe,2023-01-23 16:00:00 UTC");
    assert_eq!(stored[1].0, 4);
    assert!(stored[1].1.contains("bad timestamp"), "{}", stored[1].1);
    assert_eq!(count(&db, "polls").await, 2);
}

#[tokio::test]
async fn a_file_with_a_wrong_header_or_none_changes_nothing() {
    let db = TestDb::new().await;
    let good = &example_dirs()[0];
    reload(&db.pool, &files(good)).await.unwrap();
    let before = (
        count(&db, "polls").await,
        count(&db, "business_hours").await,
        version(&db).await,
    );

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(
        &wrong,
        "store_id,state,timestamp_utc\nzz,active,2030-01-01 00:00:00 UTC\n",
    )
    .unwrap();
    let headerless = dir.path().join("headerless.csv");
    std::fs::write(&headerless, "zz,0,09:00,17:00\nzz,1,09:00,17:00\n").unwrap();
    let bad = DataFiles {
        status: wrong,
        hours: Some(headerless),
        timezones: None,
        groups: None,
    };
    let r = reload(&db.pool, &bad).await.unwrap();
    assert_eq!(
        outcomes(&r),
        [
            (FileKind::Status, Outcome::Failed),
            (FileKind::Hours, Outcome::Failed)
        ]
    );
    for f in &r.files {
        assert!(
            f.record
                .error
                .as_deref()
                .unwrap()
                .contains("the header lacks the column"),
            "{:?}",
            f.record.error
        );
    }
    assert_eq!(
        (
            count(&db, "polls").await,
            count(&db, "business_hours").await,
            version(&db).await
        ),
        before
    );
    // The failed loads are on record.
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM data_loads WHERE outcome = 'failed'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(failed, 2);
}

#[tokio::test]
async fn an_hours_reload_replaces_the_old_hours() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("store_status.csv"),
        "store_id,status,timestamp_utc\na,active,2023-01-23 17:00:00 UTC\n",
    )
    .unwrap();
    let hours = dir.path().join("menu_hours.csv");
    std::fs::write(
        &hours,
        "store_id,day,start_time_local,end_time_local\na,0,09:00,12:00\na,1,09:00,12:00\nb,2,10:00,11:00\n",
    )
    .unwrap();
    reload(&db.pool, &files(dir.path())).await.unwrap();
    let v1 = version(&db).await;
    std::fs::write(
        &hours,
        "store_id,dayOfWeek,start_time_local,end_time_local\na,3,08:00,24:00\nb,2,10:00,11:00\n",
    )
    .unwrap();
    let r = reload(&db.pool, &files(dir.path())).await.unwrap();
    assert_eq!(
        outcomes(&r),
        [
            (FileKind::Status, Outcome::Unchanged),
            (FileKind::Hours, Outcome::Loaded)
        ]
    );
    let rows: Vec<(String, i16, String, String)> = sqlx::query_as(
        "SELECT s.store_id, h.day, h.start_local::text, h.end_local::text FROM business_hours h JOIN stores s ON s.id = h.store",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("a".to_string(), 3, "08:00:00".to_string(), "24:00:00".to_string()),
            ("b".to_string(), 2, "10:00:00".to_string(), "11:00:00".to_string())
        ]
    );
    assert!(version(&db).await > v1);
}

#[tokio::test]
async fn a_store_groups_file_is_found_by_its_header_and_loaded_as_a_guarded_snapshot() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("store_status.csv"),
        "store_id,status,timestamp_utc\na,active,2023-01-23 17:00:00 UTC\n",
    )
    .unwrap();
    // Any name: the header says what it is. A store in two groups, a row twice, two bad rows.
    let groups = dir.path().join("brands.csv");
    std::fs::write(
        &groups,
        "store_id,group\na,North\nb, North \nb,South\nc,South\nb,South\n,North\na,   \n",
    )
    .unwrap();
    let memberships = || async {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT g.group_name, s.store_id FROM store_groups g JOIN stores s ON s.id = g.store ORDER BY 1, 2",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(g, s)| format!("{g}:{s}"))
            .collect::<Vec<_>>()
    };
    let r = reload(&db.pool, &files(dir.path())).await.unwrap();
    let load = r
        .files
        .iter()
        .find(|f| f.record.kind == FileKind::Groups)
        .unwrap();
    assert_eq!(load.record.outcome, Outcome::Loaded);
    assert_eq!(
        (
            load.record.rows_read,
            load.record.rows_rejected,
            load.record.rows_inserted
        ),
        (7, 2, 4)
    );
    assert_eq!(
        load.rejected
            .iter()
            .map(|r| r.reason.as_str())
            .collect::<Vec<_>>(),
        ["empty store_id", "empty group"]
    );
    assert_eq!(memberships().await, ["North:a", "North:b", "South:b", "South:c"]);

    let again = reload(&db.pool, &files(dir.path())).await.unwrap();
    assert!(!again.changed());

    // Two of the three stores would be in no group: a truncated file, refused.
    std::fs::write(&groups, "store_id,group\na,North\n").unwrap();
    let refused = reload(&db.pool, &files(dir.path())).await.unwrap();
    let load = refused
        .files
        .iter()
        .find(|f| f.record.kind == FileKind::Groups)
        .unwrap();
    assert_eq!(load.record.outcome, Outcome::Failed);
    assert!(
        load.record.error.as_deref().unwrap().contains("refused"),
        "{:?}",
        load.record
    );
    assert_eq!(memberships().await, ["North:a", "North:b", "South:b", "South:c"]);

    // Stores moving between groups lose nothing.
    std::fs::write(&groups, "store_id,group\na,North\nb,North\nc,East\n").unwrap();
    let moved = reload(&db.pool, &files(dir.path())).await.unwrap();
    assert!(moved.changed());
    assert_eq!(memberships().await, ["East:c", "North:a", "North:b"]);
}

#[tokio::test]
async fn a_half_copied_hours_or_time_zone_file_is_refused_and_the_data_kept() {
    let db = TestDb::new().await;
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let dir = tempfile::tempdir().unwrap();
    generate(&Plan {
        stores: 500,
        hours: bundled.join("menu_hours.csv"),
        timezones: bundled.join("timezones.csv"),
        ..Plan::full_size(dir.path())
    })
    .unwrap();
    reload(&db.pool, &files(dir.path())).await.unwrap();
    let (hours, zones, v) = (
        count(&db, "business_hours").await,
        count(&db, "timezones").await,
        version(&db).await,
    );
    let report = db_report(&db, None, Interpolation::Nearest).await;
    let hours_file = dir.path().join("menu_hours.csv");
    let zones_file = dir.path().join("timezones.csv");
    let full_hours = std::fs::read_to_string(&hours_file).unwrap();
    let full_zones = std::fs::read_to_string(&zones_file).unwrap();
    let header_only = |text: &str| format!("{}\n", text.lines().next().unwrap());
    let tenth = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        format!("{}\n", lines[..lines.len() / 10].join("\n"))
    };
    for (file, text) in [
        (&hours_file, header_only(&full_hours)),
        (&hours_file, tenth(&full_hours)),
        (&zones_file, full_zones[..100].to_string()),
    ] {
        std::fs::write(file, text).unwrap();
        let r = reload(&db.pool, &files(dir.path())).await.unwrap();
        let refused = r
            .files
            .iter()
            .find(|f| f.record.outcome == Outcome::Failed)
            .expect("a refused load");
        assert!(
            refused.record.error.as_deref().unwrap().contains("refused"),
            "{:?}",
            refused.record
        );
        assert!(!r.changed(), "nothing changed");
        assert_eq!(
            (
                count(&db, "business_hours").await,
                count(&db, "timezones").await,
                version(&db).await
            ),
            (hours, zones, v)
        );
        assert_eq!(
            db_report(&db, None, Interpolation::Nearest).await,
            report,
            "the same report"
        );
        std::fs::write(&hours_file, &full_hours).unwrap();
        std::fs::write(&zones_file, &full_zones).unwrap();
    }
    // Forced, the operator's file stands.
    std::fs::write(&hours_file, header_only(&full_hours)).unwrap();
    let forced = store_monitor::db::reload::reload_with(
        &db.pool,
        &files(dir.path()).found(),
        store_monitor::db::reload::Guard::FORCE,
    )
    .await
    .unwrap();
    assert!(forced.changed());
    assert_eq!(count(&db, "business_hours").await, 0);
}

#[tokio::test]
async fn two_reloads_at_once_do_not_interleave() {
    let db = TestDb::new().await;
    let dir = &example_dirs()[0];
    let files = files(dir);
    let (a, b) = tokio::join!(reload(&db.pool, &files), reload(&db.pool, &files));
    let (a, b) = (a.unwrap(), b.unwrap());
    // One of them loaded every file, the other found them all loaded: had they interleaved,
    // both would have seen no earlier load.
    let loaded = |r: &Reload| r.files.iter().all(|f| f.record.outcome == Outcome::Loaded);
    let unchanged = |r: &Reload| r.files.iter().all(|f| f.record.outcome == Outcome::Unchanged);
    assert!(
        (loaded(&a) && unchanged(&b)) || (loaded(&b) && unchanged(&a)),
        "{:?} / {:?}",
        outcomes(&a),
        outcomes(&b)
    );
    assert_eq!(count(&db, "data_loads").await, 6);
}

#[tokio::test]
async fn the_read_path_gives_the_file_report_for_every_example() {
    for dir in example_dirs() {
        let db = TestDb::new().await;
        reload(&db.pool, &files(&dir)).await.unwrap();
        for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
            assert_eq!(
                db_report(&db, None, interpolation).await,
                file_report(&dir, None, interpolation),
                "{} {interpolation:?}",
                dir.display()
            );
        }
    }
}

#[tokio::test]
async fn the_read_path_gives_the_file_report_for_a_generated_data_set() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    generate(&Plan {
        stores: 600,
        days: 9,
        hours: data.join("menu_hours.csv"),
        timezones: data.join("timezones.csv"),
        ..Plan::full_size(dir.path())
    })
    .unwrap();
    reload(&db.pool, &files(dir.path())).await.unwrap();
    let as_of = Some(store_monitor::input::fields::timestamp(b"2023-01-22 03:30:00 UTC").unwrap());
    for (at, interpolation) in [
        (None, Interpolation::Nearest),
        (as_of, Interpolation::ForwardFill),
        (as_of, Interpolation::Nearest),
    ] {
        let expected = file_report(dir.path(), at, interpolation);
        assert!(expected.len() > 500);
        assert_eq!(
            db_report(&db, at, interpolation).await,
            expected,
            "{at:?} {interpolation:?}"
        );
    }
}

async fn execute(db: &TestDb, sql: &'static str) {
    sqlx::raw_sql(sql).execute(&db.pool).await.unwrap();
}

#[tokio::test]
async fn housekeeping_forgets_old_bookkeeping_but_nothing_the_data_depends_on() {
    let db = TestDb::new().await;
    apalis_postgres::PostgresStorage::setup(&db.pool).await.unwrap();
    let dir = &example_dirs()[0];
    reload(&db.pool, &files(dir)).await.unwrap();
    for _ in 0..3 {
        reload(&db.pool, &files(dir)).await.unwrap();
    }
    let version_before = version(&db).await;
    let newest_before = loads::newest_poll(&db.pool).await.unwrap();
    assert!(newest_before.is_some());
    execute(
        &db,
        "UPDATE data_loads SET started_at = started_at - interval '60 days',
                               finished_at = finished_at - interval '60 days';
         INSERT INTO reload_ticks (tick, claimed_by)
         VALUES (now() - interval '60 days', 'old'), (now(), 'new');
         INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen)
         VALUES ('dead', 't', 's', now() - interval '60 days'),
                ('holding', 't', 's', now() - interval '60 days'),
                ('alive', 't', 's', now());
         INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, done_at, lock_by)
         VALUES ('\\x', 'done-old', 'x', 'Done', 1, 3, now() - interval '60 days', NULL),
                ('\\x', 'killed-old', 'x', 'Killed', 1, 3, now() - interval '60 days', NULL),
                ('\\x', 'done-new', 'x', 'Done', 1, 3, now(), NULL),
                ('\\x', 'failed-exhausted', 'x', 'Failed', 3, 3, now() - interval '60 days', NULL),
                ('\\x', 'failed-retrying', 'x', 'Failed', 1, 3, now() - interval '60 days', 'holding'),
                ('\\x', 'pending', 'x', 'Pending', 0, 3, NULL, NULL);
         INSERT INTO incident_events (id, kind, incident, store, opened_at, inactive_polls)
         SELECT gen_random_uuid(), 'opened', gen_random_uuid(), id, now(), 2 FROM stores, generate_series(1, 2);
         UPDATE incident_events SET created_at = created_at - interval '60 days';
         INSERT INTO webhooks (id, url, events, secret, created_by)
         VALUES ('00000000-0000-0000-0000-000000000001', 'https://example.com/', '{incident.opened}', 'whsec_x', 't');
         INSERT INTO webhook_deliveries (webhook, event, attempt, at, duration_ms, outcome)
         VALUES ('00000000-0000-0000-0000-000000000001', gen_random_uuid(), 1, now() - interval '60 days', 1, 'delivered'),
                ('00000000-0000-0000-0000-000000000001', gen_random_uuid(), 1, now(), 1, 'delivered');",
    )
    .await;
    // The outbox's newest event stays, whatever its age: readers start after its seq.
    let events = count(&db, "incident_events").await;
    assert!(events >= 3);

    let pruned = housekeeping::prune(&db.pool, chrono::Utc::now() - chrono::TimeDelta::days(30))
        .await
        .unwrap();

    // 3 loaded + 9 unchanged records: the newest of each kind stays, 6 go.
    let expected = Pruned {
        jobs: 3,
        workers: 1,
        reload_ticks: 1,
        loads: 6,
        incident_events: events as u64 - 1,
        deliveries: 1,
    };
    assert_eq!(pruned, expected);
    let jobs: Vec<String> = sqlx::query_scalar("SELECT id FROM apalis.jobs ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, ["done-new", "failed-retrying", "pending"]);
    assert_eq!(count(&db, "data_loads WHERE outcome = 'loaded'").await, 3);
    assert_eq!(version(&db).await, version_before);
    let newest_after = loads::newest_poll(&db.pool).await.unwrap();
    assert_eq!(newest_after, newest_before);
    assert_eq!(
        housekeeping::prune(&db.pool, chrono::Utc::now() - chrono::TimeDelta::days(30))
            .await
            .unwrap(),
        Pruned::default(),
        "a second pruning finds nothing"
    );
    // The checksums still say the files are unchanged.
    let again = reload(&db.pool, &files(dir)).await.unwrap();
    assert!(
        outcomes(&again).iter().all(|(_, o)| *o == Outcome::Unchanged),
        "{:?}",
        outcomes(&again)
    );
}

/// A copy of an example's files in a folder of its own, to be changed by the test.
fn copy_example(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in ["store_status.csv", "menu_hours.csv", "timezones.csv"] {
        std::fs::copy(dir.join(name), copy.path().join(name)).unwrap();
    }
    copy
}

/// A status row in the column order of `header`.
fn status_row(header: &str, store: &str, status: &str, at: &str) -> String {
    let fields: Vec<&str> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|name| match name.trim() {
            "store_id" => store,
            "status" => status,
            "timestamp_utc" => at,
            other => panic!("unexpected column {other}"),
        })
        .collect();
    fields.join(",")
}

#[tokio::test]
async fn a_status_file_that_grew_by_appending_is_read_from_where_the_last_load_ended() {
    let db = TestDb::new().await;
    let data = copy_example(&example_dirs()[0]);
    let status = data.path().join("store_status.csv");
    reload(&db.pool, &files(data.path())).await.unwrap();

    let original = std::fs::read_to_string(&status).unwrap();
    let lines_before = original.matches('\n').count() as u64;
    let mut rows = original.lines();
    let header = rows.next().unwrap();
    let first: Vec<&str> = rows.next().unwrap().split(',').collect();
    let column = |name: &str| header.split(',').position(|h| h.trim() == name).unwrap();
    let (store, at) = (first[column("store_id")], first[column("timestamp_utc")]);
    let flipped = if first[column("status")] == "active" {
        "inactive"
    } else {
        "active"
    };
    // A new poll, the stored first poll's instant with the other status (the stored one
    // wins), and a broken row.
    let appended = [
        status_row(header, store, "active", "2024-01-01 00:00:00 UTC"),
        status_row(header, store, flipped, at),
        status_row(header, store, "active", "yesterday"),
    ];
    let grown = format!("{original}{}\r\n", appended.join("\r\n"));
    std::fs::write(&status, &grown).unwrap();

    let again = reload(&db.pool, &files(data.path())).await.unwrap();
    let load = &again.files[0];
    assert_eq!(load.record.kind, FileKind::Status);
    assert_eq!(load.record.outcome, Outcome::Loaded);
    assert_eq!(load.record.read_from, original.len() as i64);
    assert_eq!(
        (
            load.record.rows_read,
            load.record.rows_inserted,
            load.record.rows_rejected
        ),
        (3, 1, 1)
    );
    assert_eq!(load.rejected[0].line, lines_before + 3, "{}", load.rejected[0]);
    let stored: i64 = sqlx::query_scalar("SELECT read_from FROM data_loads WHERE id = $1")
        .bind(load.record.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, original.len() as i64);
    // The same data as reading the grown file whole.
    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
        assert_eq!(
            db_report(&db, None, interpolation).await,
            file_report(data.path(), None, interpolation)
        );
    }

    // Rewritten rather than appended to (the rows in another order): read whole.
    let mut reordered: Vec<&str> = grown.lines().skip(1).collect();
    reordered.reverse();
    std::fs::write(&status, format!("{header}\r\n{}\r\n", reordered.join("\r\n"))).unwrap();
    let rewritten = reload(&db.pool, &files(data.path())).await.unwrap();
    let load = &rewritten.files[0];
    assert_eq!(load.record.outcome, Outcome::Loaded);
    assert_eq!(load.record.read_from, 0);
    assert_eq!(load.record.rows_read, reordered.len() as i64);
    assert_eq!(load.record.rows_inserted, 0);
}

#[tokio::test]
async fn a_store_id_with_a_nul_byte_is_rejected_not_a_crash() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("store_status.csv"),
        "store_id,status,timestamp_utc\na,active,2023-01-23 17:00:00 UTC\nb\0c,active,2023-01-23 17:00:00 UTC\n",
    )
    .unwrap();
    let r = reload(&db.pool, &files(dir.path())).await.unwrap();
    let load = &r.files[0];
    assert_eq!(
        (
            load.record.rows_read,
            load.record.rows_inserted,
            load.record.rows_rejected
        ),
        (2, 1, 1)
    );
    assert_eq!(load.rejected[0].line, 3);
    assert!(load.rejected[0].reason.contains("NUL"), "{}", load.rejected[0]);
    // PostgreSQL text holds no NUL: the raw row is stored with U+FFFD in its place.
    let raw: String = sqlx::query_scalar("SELECT raw FROM rejected_rows WHERE load = $1")
        .bind(load.record.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(raw, "b\u{fffd}c,active,2023-01-23 17:00:00 UTC");
    assert_eq!(count(&db, "stores").await, 1);
}

/// A copy of the first example's input files in a folder of its own.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["store_status.csv", "menu_hours.csv", "timezones.csv"] {
        std::fs::copy(example_dirs()[0].join(name), dir.path().join(name)).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_missing_or_unreadable_status_file_is_recorded_failed_and_the_other_files_still_load() {
    let db = TestDb::new().await;
    let dir = example_copy();
    std::fs::remove_file(dir.path().join("store_status.csv")).unwrap();
    let found = DataFiles::find_each(dir.path(), &FileChoice::default());
    let done = store_monitor::db::reload::reload_with(&db.pool, &found, Default::default())
        .await
        .unwrap();
    let outcome = |kind: FileKind| {
        let load = done.files.iter().find(|f| f.record.kind == kind).unwrap();
        (load.record.outcome, load.record.error.clone().unwrap_or_default())
    };
    let (status, error) = outcome(FileKind::Status);
    assert_eq!(status, Outcome::Failed);
    assert!(error.contains("no status file"), "{error}");
    let folder = dir.path().display().to_string();
    assert!(!error.contains(&folder), "clients see no server paths: {error}");
    assert_eq!(outcome(FileKind::Hours).0, Outcome::Loaded);
    assert_eq!(outcome(FileKind::Timezones).0, Outcome::Loaded);
    assert!(count(&db, "business_hours").await > 0 && count(&db, "timezones").await > 0);
    let recorded = loads::recent(&db.pool, 10).await.unwrap();
    assert!(
        recorded
            .iter()
            .any(|l| l.kind == FileKind::Status && l.outcome == Outcome::Failed)
    );

    // A status file that cannot be read (here a folder where the file should be).
    std::fs::create_dir(dir.path().join("store_status.csv")).unwrap();
    let choice = FileChoice {
        status: Some(dir.path().join("store_status.csv")),
        ..Default::default()
    };
    let found = DataFiles::find_each(dir.path(), &choice);
    let done = store_monitor::db::reload::reload_with(&db.pool, &found, Default::default())
        .await
        .unwrap();
    let status = done
        .files
        .iter()
        .find(|f| f.record.kind == FileKind::Status)
        .unwrap();
    assert_eq!(status.record.outcome, Outcome::Failed);
    assert!(
        status.record.error.as_deref().unwrap().starts_with("cannot read"),
        "{status:?}"
    );
    assert!(
        !status.record.error.as_deref().unwrap().contains("os error")
            && !status.record.error.as_deref().unwrap().contains(&folder),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_reload_cut_short_before_it_commits_is_recorded_as_unfinished() {
    let db = TestDb::new().await;
    let dir = example_copy();
    let crashed = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(["ingest", "--data"])
        .arg(dir.path())
        .args(["--database-url", &db.url])
        .env("STORE_MONITOR_FAILPOINT", "reload-before-commit")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let recorded = loads::recent(&db.pool, 10).await.unwrap();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    for load in &recorded {
        assert_eq!(load.outcome, Outcome::Failed);
        assert!(
            load.error.as_deref().unwrap().contains("did not finish"),
            "{load:?}"
        );
    }
    assert_eq!(
        count(&db, "polls").await,
        0,
        "nothing of the cut-short reload stays"
    );

    // A reload that finishes leaves no such record of itself.
    reload(&db.pool, &files(dir.path())).await.unwrap();
    let unfinished = loads::recent(&db.pool, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.error.as_deref().is_some_and(|e| e.contains("did not finish")))
        .count();
    assert_eq!(unfinished, 3, "only the cut-short reload's");
}

#[tokio::test]
async fn the_share_of_stores_a_new_hours_file_may_drop_is_the_operators_to_set() {
    let db = TestDb::new().await;
    let dir = example_copy();
    // The bundled business hours: thousands of stores, so that shares can be told apart.
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/menu_hours.csv");
    std::fs::copy(bundled, dir.path().join("menu_hours.csv")).unwrap();
    let ingest = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
            .args(["ingest", "--data"])
            .arg(dir.path())
            .args(["--database-url", &db.url])
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(ingest(&[]).status.success());
    let hours = dir.path().join("menu_hours.csv");
    let text = std::fs::read_to_string(&hours).unwrap();
    let stores: std::collections::BTreeSet<&str> =
        text.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    // Drop a tenth of its stores.
    let gone: std::collections::BTreeSet<&str> = stores.iter().step_by(10).copied().collect();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !gone.contains(l.split(',').next().unwrap()))
        .collect();
    std::fs::write(&hours, kept.join("\n") + "\n").unwrap();
    let share = 100.0 * gone.len() as f64 / stores.len() as f64;

    let refused = ingest(&["--max-snapshot-loss", &format!("{:.1}", share / 2.0)]);
    assert!(!refused.status.success());
    let told = String::from_utf8_lossy(&refused.stderr);
    assert!(told.contains("failed, nothing loaded"), "{told}");
    let accepted = ingest(&["--max-snapshot-loss", &format!("{:.1}", share + 1.0)]);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let bad = ingest(&["--max-snapshot-loss", "120"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a percentage"));
}

#[test]
fn a_database_password_never_shows_in_errors_or_logs() {
    let url = "postgres://postgres:s3cret-PW@127.0.0.1:1/store_monitor";
    for command in [
        &["ingest"][..],
        &["serve", "--bind", "127.0.0.1:0", "--no-reload"][..],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
            .args(command)
            .args(["--database-url", url])
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command:?} cannot reach port 1");
        let told = String::from_utf8_lossy(&output.stderr);
        assert!(
            told.contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
            "{told}"
        );
        assert!(
            !told.contains("s3cret-PW"),
            "{command:?} showed the password: {told}"
        );
    }
}
