//! History at scale (issue 19). A report reads its window: the polls of its week and each
//! store's last poll before it, whatever the length of history; its rows equal the
//! whole-history engine's on the same files, for both interpolations and any `asOf`, stores
//! whose only polls are weeks old included. Polls are partitioned by week (a database of
//! the previous schema keeps every poll when migrated), and `--keep-polls-days` prunes
//! whole weeks without changing a report, once across processes, whole or not at all.

mod common;

use std::io::Write;
use std::path::Path;

use common::{TestApp, TestDb};
use serde_json::json;
use store_monitor::db::reload::reload;
use store_monitor::db::snapshot::Snapshot;
use store_monitor::domain::time::MICROS_PER_DAY;
use store_monitor::domain::{Interpolation, StoreReport, Timestamp};
use store_monitor::generate::{Plan, generate};
use store_monitor::input::{DataFiles, FileChoice, InputData};
use store_monitor::jobs::prune_polls;

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

/// `days` of generated history for 150 stores into `dir`, and stores whose only polls are
/// weeks before the newest: one that went down and stayed silent, one polled once; and one
/// polled only in the last hour. Returns the newest poll.
fn history_files(dir: &Path, days: u32) -> Timestamp {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let end = Plan::END;
    generate(&Plan {
        out: dir.to_path_buf(),
        stores: 150,
        days,
        seed: 19,
        polls_per_store: 10 * days,
        end,
        hours: data.join("menu_hours.csv"),
        timezones: data.join("timezones.csv"),
        gzip: false,
        by_store: false,
        groups: 0,
    })
    .unwrap();
    let day = |n: i64| Timestamp(end.0 - n * MICROS_PER_DAY);
    let mut status = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("store_status.csv"))
        .unwrap();
    for (store, status_word, at) in [
        ("silent-since", "active", day(20)),
        ("silent-since", "inactive", day(19)),
        ("polled-once", "inactive", day(30)),
        ("late-comer", "active", Timestamp(end.0 - 3_600_000_000)),
    ] {
        writeln!(status, "{store},{status_word},{at}").unwrap();
    }
    end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_weeks_of_history_equals_the_whole_history_engine() {
    let dir = tempfile::tempdir().unwrap();
    let end = history_files(dir.path(), 40);
    let day = |n: i64| Timestamp(end.0 - n * MICROS_PER_DAY);
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

/// `SELECT count(*), a checksum of every poll`: equal before and after means no poll was
/// lost, added or changed.
async fn fingerprint(db: &TestDb) -> (i64, String) {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(hashtextextended(store || ' ' || (extract(epoch FROM at) * 1000000)::bigint
                                                        || ' ' || active, 0)::numeric), 0)::text
         FROM polls",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn scalar(db: &TestDb, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_database_of_the_previous_schema_keeps_every_poll_when_partitioned() {
    // The schema before polls were partitioned, full of polls: 300 stores, hourly for 45
    // days (seven weeks and more), at odd microseconds.
    let db = TestDb::at_migration(20261129000010).await;
    for statement in [
        "INSERT INTO stores (store_id, first_poll)
         SELECT 'store-' || n, '2023-01-01 00:00:00.000007+00' FROM generate_series(1, 300) n",
        "INSERT INTO polls (store, at, active)
         SELECT s.id, '2023-01-01 00:00:00.000007+00'::timestamptz + h * interval '1 hour' + s.id * interval '1 second',
                (h + s.id) % 5 <> 0
         FROM stores s, generate_series(0, 45 * 24) h",
    ] {
        sqlx::query(statement).execute(&db.pool).await.unwrap();
    }
    let before = fingerprint(&db).await;
    assert_eq!(before.0, 300 * (45 * 24 + 1));

    store_monitor::db::MIGRATOR.run(&db.pool).await.unwrap();

    assert_eq!(fingerprint(&db).await, before, "every poll is kept, unchanged");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'polls' AND relkind = 'p'"
        )
        .await,
        1,
        "polls is a partitioned table"
    );
    let partitions = scalar(
        &db,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'polls'::regclass",
    )
    .await;
    let weeks = scalar(
        &db,
        "SELECT count(DISTINCT date_trunc('week', at AT TIME ZONE 'UTC')) FROM polls",
    )
    .await;
    assert_eq!(partitions, weeks, "a partition a week");
    assert!(weeks >= 7, "{weeks}");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid AND x.indisprimary
             WHERE i.inhparent = 'polls'::regclass"
        )
        .await,
        partitions,
        "each partition has the primary key"
    );
    let duplicate = sqlx::query("INSERT INTO polls SELECT store, at, NOT active FROM polls LIMIT 1")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(
        duplicate.to_string().contains("polls_pkey") || duplicate.to_string().contains("duplicate key"),
        "one poll per store and instant: {duplicate}"
    );
}

const STORE_QUERY: &str = "query($id: String!, $from: DateTime) {
    store(id: $id) {
        uptime { uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek }
        forward: uptime(interpolation: FORWARD_FILL) { uptimeLastWeek downtimeLastWeek }
        timeline(from: $from) { start end open status }
    }
    dataset { polls oldestPoll pollsKeptFrom prunings { week keptFrom pollsRemoved keepDays } }
}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_to_14_days_changes_no_report_nor_uptime_and_says_where_history_begins() {
    let dir = tempfile::tempdir().unwrap();
    let end = history_files(dir.path(), 45);
    let day = |n: i64| Timestamp(end.0 - n * MICROS_PER_DAY);
    let db = TestDb::new().await;
    // No background pruning: this test prunes by calling the job.
    let app = TestApp::spawn(&db, dir.path(), 0).await;
    let stores = ["silent-since", "polled-once", "late-comer", "1000128758364590000"];
    let from = day(5).to_datetime().unwrap().to_rfc3339();
    let mut before = Vec::new();
    for store in stores {
        before.push(
            app.graphql(STORE_QUERY, json!({ "id": store, "from": from }))
                .await,
        );
    }
    let reports = [Interpolation::Nearest, Interpolation::ForwardFill];
    let mut rows_before = Vec::new();
    for interpolation in reports {
        rows_before.push(from_db(&db, None, interpolation).await);
    }
    let (polls_before, _) = fingerprint(&db).await;
    assert!(
        before[0]["data"]["dataset"]["pollsKeptFrom"].is_null(),
        "{}",
        before[0]
    );

    let pruned = prune_polls::prune(&db.pool, 14).await.unwrap();
    // 45 days are seven weeks or more; those ending 14 days before the newest go.
    assert!(pruned.weeks >= 4, "{pruned:?}");
    assert!(pruned.polls > 0 && !pruned.busy, "{pruned:?}");
    let kept = pruned.kept_from.unwrap();
    assert!(
        kept <= day(14).to_datetime().unwrap() && kept > day(21).to_datetime().unwrap(),
        "{kept}"
    );
    let (polls_after, _) = fingerprint(&db).await;
    assert_eq!(
        polls_before - polls_after,
        pruned.polls,
        "the polls said to go went"
    );

    for (i, interpolation) in reports.into_iter().enumerate() {
        assert_eq!(
            from_db(&db, None, interpolation).await,
            rows_before[i],
            "{interpolation:?}"
        );
    }
    for (i, store) in stores.into_iter().enumerate() {
        let after = app
            .graphql(STORE_QUERY, json!({ "id": store, "from": from }))
            .await;
        assert!(after.get("errors").is_none(), "{after}");
        assert_eq!(after["data"]["store"], before[i]["data"]["store"], "{store}");
        let dataset = &after["data"]["dataset"];
        assert_eq!(dataset["polls"], json!(polls_after), "{dataset}");
        assert_eq!(dataset["pollsKeptFrom"], json!(kept.to_rfc3339()), "{dataset}");
        let oldest: chrono::DateTime<chrono::Utc> = dataset["oldestPoll"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            oldest,
            day(30).to_datetime().unwrap(),
            "the store polled once keeps its poll"
        );
        let prunings = dataset["prunings"].as_array().unwrap();
        assert_eq!(prunings.len() as u32, pruned.weeks.min(10), "{dataset}");
        assert_eq!(prunings[0]["keptFrom"], json!(kept.to_rfc3339()), "newest first");
        assert_eq!(prunings[0]["keepDays"], json!(14));
    }

    // What would read the pruned weeks is refused, saying where history begins.
    let old = app
        .graphql(
            "mutation($at: DateTime) { triggerReport(input: { asOf: $at }) { id } }",
            json!({ "at": day(20).to_datetime().unwrap().to_rfc3339() }),
        )
        .await;
    assert_eq!(old["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{old}");
    let message = old["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("were pruned") && message.contains(&kept.to_rfc3339()),
        "{message}"
    );
    let timeline = app
        .graphql(
            STORE_QUERY,
            json!({ "id": "silent-since", "from": day(25).to_datetime().unwrap().to_rfc3339() }),
        )
        .await;
    assert_eq!(
        timeline["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{timeline}"
    );

    // Nothing more is old enough: a second pruning does nothing.
    assert_eq!(prune_polls::prune(&db.pool, 14).await.unwrap().weeks, 0);
    // Polls loaded later into the pruned past are stored (in the partition of the past).
    let late = dir.path().join("store_status.csv");
    let mut status = std::fs::OpenOptions::new().append(true).open(&late).unwrap();
    writeln!(status, "late-comer,inactive,{}", day(40)).unwrap();
    drop(status);
    reload(&db.pool, &files(dir.path())).await.unwrap();
    assert_eq!(fingerprint(&db).await.0, polls_after + 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruning_cut_short_loses_nothing_and_the_next_finishes_it_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    history_files(dir.path(), 45);
    let db = TestDb::new().await;
    let ingest = |failpoint: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"));
        command
            .args(["ingest", "--keep-polls-days", "14", "--data"])
            .arg(dir.path())
            .args(["--database-url", &db.url]);
        if let Some(point) = failpoint {
            command.env("STORE_MONITOR_FAILPOINT", point);
        }
        command.output().unwrap()
    };
    // Killed inside a week's pruning: nothing of it happened.
    let crashed = ingest(Some("prune-polls-before-commit"));
    assert!(!crashed.status.success());
    let whole = fingerprint(&db).await;
    assert_eq!(scalar(&db, "SELECT count(*) FROM poll_prunings").await, 0);
    let rows = from_db(&db, None, Interpolation::Nearest).await;

    // Killed between two weeks: the first is pruned and recorded, the rest left.
    let crashed = ingest(Some("prune-polls-after-a-week"));
    assert!(!crashed.status.success());
    assert_eq!(scalar(&db, "SELECT count(*) FROM poll_prunings").await, 1);
    let pruned_one = scalar(&db, "SELECT sum(polls)::bigint FROM poll_prunings").await;
    assert_eq!(fingerprint(&db).await.0, whole.0 - pruned_one);
    assert_eq!(from_db(&db, None, Interpolation::Nearest).await, rows);

    // Another process holds the partitions' lock: this one leaves pruning to it.
    let mut holder = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(store_monitor_poll_partitions_lock())")
        .execute(&mut *holder)
        .await
        .unwrap();
    let busy = prune_polls::prune(&db.pool, 14).await.unwrap();
    assert!(busy.busy && busy.weeks == 0, "{busy:?}");
    holder.rollback().await.unwrap();

    // The next run finishes it; the report is still the same.
    let finished = ingest(None);
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let said = String::from_utf8_lossy(&finished.stderr);
    assert!(
        said.contains("pruned") && said.contains("every poll kept from"),
        "{said}"
    );
    let weeks = scalar(&db, "SELECT count(*) FROM poll_prunings").await;
    assert!(weeks >= 4, "{weeks}");
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT week) FROM poll_prunings").await,
        weeks,
        "no week pruned twice"
    );
    let pruned = scalar(&db, "SELECT sum(polls)::bigint FROM poll_prunings").await;
    assert_eq!(fingerprint(&db).await.0, whole.0 - pruned);
    assert_eq!(from_db(&db, None, Interpolation::Nearest).await, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_from_the_future_or_before_2000_are_rejected_rows_and_an_admin_deletes_polls() {
    let dir = tempfile::tempdir().unwrap();
    let end = history_files(dir.path(), 10);
    let day = |n: i64| Timestamp(end.0 - n * MICROS_PER_DAY);
    let clock = Timestamp::from_datetime(chrono::Utc::now());
    let near_future = Timestamp(clock.0 + 30 * 60 * 1_000_000);
    let mut status = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("store_status.csv"))
        .unwrap();
    // Within --max-clock-skew (1 h) of the clock: taken, and every report's *now* with it.
    writeln!(status, "near-future,active,{near_future}").unwrap();
    writeln!(status, "far-future,active,2100-01-01 00:00:00 UTC").unwrap();
    writeln!(status, "unset-clock,inactive,1970-01-01 00:00:00 UTC").unwrap();
    // A run of three up polls, then down: deleting the third makes the second a run's end.
    let hour = 3_600_000_000;
    let gap_at = Timestamp(day(5).0 + 2 * hour);
    for (n, word) in ["active", "active", "active", "inactive", "inactive"]
        .iter()
        .enumerate()
    {
        writeln!(status, "gap,{word},{}", Timestamp(day(5).0 + n as i64 * hour)).unwrap();
    }
    drop(status);
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, dir.path(), 0).await;
    let dataset = "{ dataset { polls newestPoll dataVersion loads(first: 5) { kind file outcome rowsDeleted
        rejectedRows { line reason } } } }";
    let before = app.graphql(dataset, json!({})).await;
    let data = &before["data"]["dataset"];
    let reasons: Vec<&str> = data["loads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["rejectedRows"].as_array().unwrap())
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("2100-01-01") && r.contains("after the server's clock")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("before 2000-01-01")),
        "{reasons:?}"
    );
    let newest: chrono::DateTime<chrono::Utc> = data["newestPoll"].as_str().unwrap().parse().unwrap();
    assert_eq!(Timestamp::from_datetime(newest), near_future);

    // Nothing named: refused, nothing deleted.
    let nothing = app
        .graphql("mutation { deletePolls(input: {}) { dataVersion } }", json!({}))
        .await;
    assert_eq!(
        nothing["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{nothing}"
    );

    let delete = "mutation($stores: [ID!], $from: DateTime) {
        deletePolls(input: { storeIds: $stores, from: $from }) { dataVersion files { kind file rowsDeleted changed } } }";
    let deleted = app.graphql(delete, json!({ "stores": ["near-future"] })).await;
    let load = &deleted["data"]["deletePolls"];
    assert_eq!(load["files"][0]["rowsDeleted"], 1, "{deleted}");
    assert_eq!(load["files"][0]["kind"], "STATUS");
    assert!(
        load["files"][0]["file"]
            .as_str()
            .unwrap()
            .starts_with("deletePolls by "),
        "{load}"
    );
    assert!(
        load["dataVersion"].as_i64() > data["dataVersion"].as_i64(),
        "{load} {data}"
    );
    let after = app.graphql(dataset, json!({})).await;
    let after = &after["data"]["dataset"];
    let newest: chrono::DateTime<chrono::Utc> = after["newestPoll"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        Timestamp::from_datetime(newest),
        end,
        "the newest poll is read anew"
    );
    assert_eq!(
        after["polls"].as_i64().unwrap(),
        data["polls"].as_i64().unwrap() - 1
    );
    let gone = app
        .graphql(
            "{ store(id: \"near-future\") { uptime { uptimeLastHour } } }",
            json!({}),
        )
        .await;
    assert!(
        gone["data"]["store"]["uptime"].is_null(),
        "no poll left, no figures: {gone}"
    );

    let one = app
        .graphql(
            "mutation($from: DateTime, $to: DateTime) {
                deletePolls(input: { storeIds: [\"gap\"], from: $from, to: $to }) { files { rowsDeleted } } }",
            json!({
                "from": gap_at.to_datetime().unwrap().to_rfc3339(),
                "to": Timestamp(gap_at.0 + 1).to_datetime().unwrap().to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(one["data"]["deletePolls"]["files"][0]["rowsDeleted"], 1, "{one}");

    // A time range, every store: the last two days go, and the newest poll is before them.
    let cut = day(2).to_datetime().unwrap();
    let deleted = app.graphql(delete, json!({ "from": cut.to_rfc3339() })).await;
    assert!(
        deleted["data"]["deletePolls"]["files"][0]["rowsDeleted"]
            .as_i64()
            .unwrap()
            > 100,
        "{deleted}"
    );
    let left = app.graphql(dataset, json!({})).await;
    let newest: chrono::DateTime<chrono::Utc> = left["data"]["dataset"]["newestPoll"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(newest < cut, "{newest}");
    assert_eq!(
        left["data"]["dataset"]["polls"].as_i64().unwrap(),
        fingerprint(&db).await.0,
        "dataset.polls counts what is stored"
    );
    // The reload after it does not bring back what the file holds before its end.
    reload(&db.pool, &files(dir.path())).await.unwrap();
    assert_eq!(
        left["data"]["dataset"]["polls"].as_i64().unwrap(),
        fingerprint(&db).await.0
    );
    // The report is the engine's on the file without the deleted polls: the runs' edges
    // around the gaps were marked anew.
    let kept_dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.path().join("store_status.csv")).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let at = line.rsplit(',').next().unwrap();
            let at = store_monitor::input::fields::timestamp(at.as_bytes());
            let deleted = line.starts_with("near-future,") || (line.starts_with("gap,") && at == Ok(gap_at));
            !deleted && at.is_ok_and(|at| at < day(2))
        })
        .collect();
    let kept = format!("store_id,status,timestamp_utc\n{}\n", kept.join("\n"));
    std::fs::write(kept_dir.path().join("store_status.csv"), kept).unwrap();
    for other in ["menu_hours.csv", "timezones.csv"] {
        std::fs::copy(dir.path().join(other), kept_dir.path().join(other)).unwrap();
    }
    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
        for as_of in [None, Some(day(3)), Some(Timestamp(day(5).0 + 5 * hour))] {
            let expected = from_files(kept_dir.path(), as_of, interpolation);
            let got = from_db(&db, as_of, interpolation).await;
            assert_eq!(got.len(), expected.len(), "{as_of:?} {interpolation:?}");
            for (got, expected) in got.iter().zip(&expected) {
                assert_eq!(got, expected, "{as_of:?} {interpolation:?}");
            }
        }
    }
    app.stop().await;
}

/// `store-monitor ingest` on `dir` and `db`: whether it succeeded, what it said, and its
/// peak resident memory in MB.
fn ingest_peak(dir: &Path, db: &TestDb) -> (bool, String, i64) {
    // Reaped below by wait4, which std's wait cannot replace: it gives no resource usage.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_store-monitor"))
        .args(["ingest", "--data"])
        .arg(dir)
        .args(["--database-url", &db.url])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut stderr = child.stderr.unwrap();
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    // wait4 gives this child's own peak, whatever the other tests' children took.
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, said.join().unwrap(), usage.ru_maxrss / 1024)
}

#[tokio::test]
async fn a_file_of_nul_bytes_or_with_a_nul_tail_is_refused_in_bounded_memory() {
    const NULS: usize = 200 << 20;
    let db = TestDb::new().await;
    // A valid status file with 200 MB of NUL bytes after its rows.
    let dir = tempfile::tempdir().unwrap();
    history_files(dir.path(), 2);
    let mut status = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("store_status.csv"))
        .unwrap();
    status.write_all(&vec![0u8; NULS]).unwrap();
    drop(status);
    let (ok, said, peak_mb) = ingest_peak(dir.path(), &db);
    assert!(!ok && said.contains("longer than 1 MiB"), "{said}");
    assert!(peak_mb < 150, "{peak_mb} MB to refuse a 200 MB line");
    let recorded = store_monitor::db::loads::recent(&db.pool, 5).await.unwrap();
    let status = recorded
        .iter()
        .find(|l| l.kind == store_monitor::input::FileKind::Status)
        .unwrap();
    assert!(
        status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("longer than 1 MiB")),
        "{status:?}"
    );
    assert_eq!(fingerprint(&db).await.0, 0, "nothing of it was loaded");

    // A status file of NUL bytes alone: found by its name, refused with the same reason.
    std::fs::write(dir.path().join("store_status.csv"), vec![0u8; NULS]).unwrap();
    let (ok, said, peak_mb) = ingest_peak(dir.path(), &db);
    assert!(!ok && said.contains("longer than 1 MiB"), "{said}");
    assert!(peak_mb < 150, "{peak_mb} MB to refuse a file of NULs");
}

/// Polls whose edge mark is wrong, by a window over every poll: edges left unmarked (never
/// allowed), and polls inside a run marked (allowed until `tidy_edges` runs).
async fn wrong_edge_marks(db: &TestDb) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE exact AND NOT edge), count(*) FILTER (WHERE edge AND NOT exact)
         FROM (SELECT edge, active IS DISTINCT FROM lag(active) OVER w
                            OR active IS DISTINCT FROM lead(active) OVER w AS exact
               FROM polls WINDOW w AS (PARTITION BY store ORDER BY at)) x",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Polls of a few stores over five weeks, at any instant (Mondays' midnights, the week
/// partitions' bounds, included), each in one of three loads, and a *now*: after each load,
/// the database's report (read from the week partitions, the edges of runs only, marked
/// anew as later loads fill in between) equals the whole-history engine's on the same file.
fn sparse_history() -> impl proptest::strategy::Strategy<Value = (Vec<(u8, i64, bool, u8)>, i64)> {
    use proptest::prelude::*;
    let span = 35 * MICROS_PER_DAY;
    // Snapped to whole hours now and then, so that polls fall exactly on week bounds too.
    let instant =
        (0..span, any::<bool>()).prop_map(|(at, snap)| if snap { at - at % 3_600_000_000 } else { at });
    (
        proptest::collection::vec((0u8..4, instant, any::<bool>(), 0u8..3), 1..80),
        0..span + MICROS_PER_DAY,
    )
}

#[test]
fn the_partitioned_read_equals_the_whole_history_engine_for_any_polls_loads_and_now() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // 2023-01-02 was a Monday: the five weeks start on a partition bound.
    let start = Timestamp::from_datetime("2023-01-02T00:00:00Z".parse().unwrap());
    let mut runner = TestRunner::new(Config::with_cases(16));
    runner
        .run(&sparse_history(), |(polls, now)| {
            let dir = tempfile::tempdir().unwrap();
            let as_of = Some(Timestamp(start.0 + now));
            runtime.block_on(async {
                let db = TestDb::new().await;
                // Each load's file is the last one with that load's polls appended (read
                // from where the last ended), so a later load fills in between stored polls.
                let mut file = String::from("store_id,status,timestamp_utc\n");
                for load in 0..3 {
                    for (store, at, active, _) in polls.iter().filter(|p| p.3 == load) {
                        let status = if *active { "active" } else { "inactive" };
                        file.push_str(&format!("store-{store},{status},{}\n", Timestamp(start.0 + at)));
                    }
                    std::fs::write(dir.path().join("store_status.csv"), &file).unwrap();
                    reload(&db.pool, &files(dir.path())).await.unwrap();
                    for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
                        let expected = from_files(dir.path(), as_of, interpolation);
                        let got = from_db(&db, as_of, interpolation).await;
                        proptest::prop_assert_eq!(
                            got,
                            expected,
                            "load {} {:?} {:?}",
                            load,
                            as_of,
                            interpolation
                        );
                    }
                    proptest::prop_assert_eq!(wrong_edge_marks(&db).await.0, 0, "an edge left unmarked");
                }
                // Tidied, the marks are exact, and the reports the same.
                store_monitor::jobs::tidy_edges::tidy(&db.pool).await.unwrap();
                proptest::prop_assert_eq!(wrong_edge_marks(&db).await, (0, 0));
                for interpolation in [Interpolation::Nearest, Interpolation::ForwardFill] {
                    let expected = from_files(dir.path(), as_of, interpolation);
                    proptest::prop_assert_eq!(from_db(&db, as_of, interpolation).await, expected);
                }
                Ok(())
            })
        })
        .unwrap();
}
