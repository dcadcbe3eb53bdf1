//! Reading the input files of SPEC §1: spellings, bad rows, bad files.

use std::io::Write;
use std::path::Path;

use store_monitor::domain::Interpolation;
use store_monitor::input::{DataFiles, FileChoice, InputData, InputError};
use store_monitor::output::write_report;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn report(dir: &Path) -> (String, InputData) {
    let files = DataFiles::find(dir, &FileChoice::default()).unwrap();
    let mut data = InputData::load(&files).unwrap();
    let mut out = Vec::new();
    write_report(&data.prepare().report(None, Interpolation::Nearest), &mut out).unwrap();
    (String::from_utf8(out).unwrap(), data)
}

const HEADER: &str = "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,downtime_last_hour,downtime_last_day,downtime_last_week\n";

#[test]
fn columns_are_found_by_name_in_any_order_with_bom_crlf_and_extra_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "store status.csv",
        "\u{feff}timestamp_utc,extra,status,store_id\r\n2023-01-23 17:00:00 UTC,x,ACTIVE, 1001 \r\n",
    );
    write(
        dir.path(),
        "Menu hours.csv",
        "\u{feff}store_id,day,start_time_local,end_time_local\r\n1001,0,09:00,12:00\r\n",
    );
    write(
        dir.path(),
        "bq-results-20230125-202210-1674678181880.csv",
        "timezone_str,store_id\r\nAmerica/Chicago,1001\r\n",
    );
    let (csv, data) = report(dir.path());
    assert!(data.rejected.is_empty(), "{:?}", data.rejected);
    // Monday 09:00-12:00 Chicago is 15:00-18:00 UTC; now is 17:00 UTC, and the week
    // reaches back to 17:00 on the Monday before, one more open hour.
    assert_eq!(csv, format!("{HEADER}1001,60.00,2.00,3.00,0.00,0.00,0.00\n"));
}

#[test]
fn bad_rows_are_reported_with_file_line_and_reason_and_the_rest_loads() {
    bad_rows_are_reported_with_line_ends("\n");
}

#[test]
fn bad_rows_of_a_crlf_file_are_reported_with_the_same_lines() {
    bad_rows_are_reported_with_line_ends("\r\n");
}

fn bad_rows_are_reported_with_line_ends(ending: &str) {
    let write = |dir: &Path, name: &str, text: &str| write(dir, name, &text.replace('\n', ending));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "store_status.csv",
        "store_id,status,timestamp_utc\n\
         a,active,2023-01-23 17:00:00 UTC\n\
         a,sleeping,2023-01-23 16:00:00 UTC\n\
         a,active,not a time\n\
         ,active,2023-01-23 16:00:00 UTC\n\
         a,inactive\n\
         b,inactive,2023-01-23 16:30:00.5Z\n",
    );
    write(
        dir.path(),
        "menu_hours.csv",
        "store_id,dayOfWeek,start_time_local,end_time_local\na,7,09:00,12:00\na,0,9am,12:00\n",
    );
    write(
        dir.path(),
        "timezones.csv",
        "store_id,timezone_str\na,Mars/Phobos\n",
    );
    let (csv, data) = report(dir.path());
    let got: Vec<String> = data
        .rejected
        .iter()
        .map(|r| {
            let name = Path::new(&r.file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            format!("{name}:{}: {}", r.line, r.reason)
        })
        .collect();
    assert_eq!(
        got,
        [
            "store_status.csv:3: unknown status \"sleeping\" (expected active or inactive)",
            "store_status.csv:4: bad timestamp \"not a time\" (expected like 2023-01-22 12:09:39.388884 UTC)",
            "store_status.csv:5: empty store_id",
            "store_status.csv:6: missing field `timestamp_utc`",
            "menu_hours.csv:2: bad day \"7\" (expected 0 = Monday … 6 = Sunday)",
            "menu_hours.csv:3: bad time \"9am\" (expected HH:MM or HH:MM:SS)",
            "timezones.csv:2: unknown time zone \"Mars/Phobos\"",
        ]
    );
    assert_eq!(data.rejected[0].raw, "a,sleeping,2023-01-23 16:00:00 UTC");
    assert_eq!(data.counts.status.rows, 6);
    assert_eq!(data.counts.status.rejected, 4);
    // Both stores still report: a without hours rows (all rejected) is open 24x7.
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn a_file_without_a_required_column_is_rejected_whole_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.csv",
        "store_id,state,timestamp_utc\na,active,2023-01-23 17:00:00 UTC\n",
    );
    let files = DataFiles::find(
        dir.path(),
        &FileChoice {
            status: Some(dir.path().join("s.csv")),
            ..FileChoice::default()
        },
    )
    .unwrap();
    let err = InputData::load(&files).unwrap_err();
    assert!(matches!(err, InputError::MissingColumn { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("s.csv") && message.contains("`status`"),
        "{message}"
    );
}

#[test]
fn a_folder_without_a_status_file_says_what_it_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "timezones.csv", "store_id,timezone_str\na,UTC\n");
    let err = DataFiles::find(dir.path(), &FileChoice::default()).unwrap_err();
    assert!(
        err.to_string().contains("store_id, status, timestamp_utc"),
        "{err}"
    );
}

#[test]
fn gzipped_files_read_like_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let text = "store_id,status,timestamp_utc\na,active,2023-01-23 17:00:00 UTC\na,inactive,2023-01-23 16:00:00 UTC\n";
    write(dir.path(), "plain.csv", text);
    let plain = report(dir.path()).0;
    std::fs::remove_file(dir.path().join("plain.csv")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.path().join("store_status.csv.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
    assert_eq!(report(dir.path()).0, plain);
}

#[test]
fn the_first_row_of_an_instant_and_the_first_valid_zone_win() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "store_status.csv",
        "store_id,status,timestamp_utc\n\
         a,inactive,2023-01-23 17:00:00 UTC\n\
         a,active,2023-01-23 17:00:00.000000 UTC\n",
    );
    write(
        dir.path(),
        "timezones.csv",
        "store_id,timezone_str\na,Nowhere/Land\na,Asia/Kolkata\na,America/New_York\n",
    );
    write(
        dir.path(),
        "menu_hours.csv",
        "store_id,day,start_time_local,end_time_local\na,0,22:00,23:00\n",
    );
    let (csv, _) = report(dir.path());
    // Monday 22:00-23:00 Kolkata is 16:30-17:30 UTC: half an hour of it before now, down,
    // and the last half hour of the Monday before, which starts the week.
    assert_eq!(csv, format!("{HEADER}a,0.00,0.00,0.00,30.00,0.50,1.00\n"));
}

/// A status file big enough to be read by two threads, with bad rows in both halves.
fn big_status_file(quoted: bool) -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("store_id,status,timestamp_utc\n");
    let mut bad_lines = Vec::new();
    let rows = 120_000;
    for i in 0..rows {
        let line = i as u64 + 2;
        let store = format!("store-{:05}", i % 997);
        let minute = i / 997 % 60;
        let hour = i / (997 * 60);
        if i % 25_000 == 7 {
            bad_lines.push(line);
            text.push_str(&format!("{store},maybe,2023-01-2{hour} 10:{minute:02}:00 UTC\n"));
        } else if quoted && i == rows - 3 {
            text.push_str(&format!("\"{store}\",active,2023-01-20 10:{minute:02}:00 UTC\n"));
        } else {
            let status = if i % 3 == 0 { "inactive" } else { "active" };
            text.push_str(&format!(
                "{store},{status},2023-01-2{hour} 10:{minute:02}:{:02}.123456 UTC\n",
                i % 60
            ));
        }
    }
    assert!(text.len() > 5 << 20, "the file must be big enough to split");
    write(dir.path(), "store_status.csv", &text);
    (dir, bad_lines)
}

#[test]
fn a_big_file_read_in_parts_keeps_line_numbers_and_order() {
    for quoted in [false, true] {
        let (dir, bad_lines) = big_status_file(quoted);
        let (csv, data) = report(dir.path());
        let lines: Vec<u64> = data.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, bad_lines, "quoted: {quoted}");
        for r in &data.rejected {
            assert!(r.raw.contains(",maybe,"), "{r} {}", r.raw);
        }
        assert_eq!(data.counts.status.rows, 120_000);
        assert_eq!(csv.lines().count(), 998);
    }
}
