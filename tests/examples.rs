//! The hand-worked data sets of the spec, reproduced byte for byte.

mod common;

use std::path::Path;
use std::process::Command;

use common::example_dirs;
use store_monitor::domain::Interpolation;
use store_monitor::input::{DataFiles, FileChoice, InputData};
use store_monitor::output::write_report;

fn report_csv(dir: &Path, interpolation: Interpolation) -> String {
    let files = DataFiles::find(dir, &FileChoice::default()).unwrap();
    let mut data = InputData::load(&files).unwrap();
    // The one bad row of the examples is deliberate: a zone that does not exist.
    for r in &data.rejected {
        assert!(r.reason.contains("unknown time zone \"Mars/Phobos\""), "{r}");
    }
    let mut out = Vec::new();
    write_report(&data.prepare().report(None, interpolation), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn every_example_matches_its_expected_nearest_report() {
    for dir in example_dirs() {
        let expected = std::fs::read_to_string(dir.join("expected_nearest.csv")).unwrap();
        assert_eq!(
            report_csv(&dir, Interpolation::Nearest),
            expected,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn every_example_matches_its_expected_forward_fill_report() {
    for dir in example_dirs() {
        let expected = std::fs::read_to_string(dir.join("expected_forward_fill.csv")).unwrap();
        assert_eq!(
            report_csv(&dir, Interpolation::ForwardFill),
            expected,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn the_report_command_prints_the_same_csv_and_a_summary() {
    for dir in example_dirs() {
        for (flag, expected) in [
            ("nearest", "expected_nearest.csv"),
            ("forward-fill", "expected_forward_fill.csv"),
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_store-monitor"))
                .args(["report", "--data"])
                .arg(&dir)
                .args(["--interpolation", flag])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let expected = std::fs::read_to_string(dir.join(expected)).unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                expected,
                "{} {flag}",
                dir.display()
            );
            let summary = String::from_utf8(out.stderr).unwrap();
            assert!(
                summary.contains("stores") && summary.contains("polls") && summary.contains("rejected"),
                "{summary}"
            );
        }
    }
}
