//! The subcommands deploy pipelines run: `migrate` applies what a database lacks and says
//! so (nothing the second time), and `healthcheck` exits 0 against a ready server, 1
//! against a stopped one or one that does not answer in time.

mod common;

use std::process::{Command, Output};

use common::{TestApp, TestDb, examples_dir};

fn store_monitor(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_store-monitor"));
    command.args(args).env_remove("STORE_MONITOR_BIND");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn migrate_applies_what_the_database_lacks_once_and_nothing_the_second_time() {
    // A database an older release left: the migrations up to the store groups.
    let db = TestDb::at_migration(20261205000017).await;
    let first = store_monitor(&["migrate"], Some(&db.url));
    let said = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let applied: Vec<&str> = said.lines().collect();
    assert_eq!(applied.len(), 2, "{said}");
    assert!(applied[0].starts_with("applied 20261205000018 "), "{said}");
    assert!(applied[1].starts_with("applied 20261205000019 "), "{said}");
    // The job queue's schema too: a worker could start on it.
    let queue: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'apalis')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(queue);

    let second = store_monitor(&["migrate"], Some(&db.url));
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout), "");
    assert!(
        String::from_utf8_lossy(&second.stderr)
            .contains("nothing to apply: the database is at 20261205000019"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_against_a_ready_server_and_1_otherwise() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db, &examples_dir().join("odd-hours"), 0).await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    // As a container runs it: the server's own --bind, unspecified.
    let bind = format!("0.0.0.0:{port}");
    let ready = store_monitor(&["healthcheck", "--bind", &bind], None);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    app.stop().await;
    let stopped = store_monitor(&["healthcheck", "--bind", &bind, "--timeout", "2"], None);
    assert_eq!(stopped.status.code(), Some(1));

    // A port that takes the connection and never answers: told within its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let mute = store_monitor(&["healthcheck", "--url", &url, "--timeout", "1"], None);
    assert_eq!(mute.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&mute.stderr).contains("no answer within 1 s"),
        "{}",
        String::from_utf8_lossy(&mute.stderr)
    );
}

/// `systemd-analyze verify` on the units, where systemd is installed: not a word of warning
/// (it exits 0 on an unknown key, so its output is what is checked). The binary's path is
/// this build's, as an install puts it at /usr/local/bin.
#[test]
fn the_systemd_units_verify_without_a_warning() {
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the units are not verified here");
        return;
    };
    let units = tempfile::tempdir().unwrap();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/store-monitor "), "{}", path.display());
        let copy = units.path().join(path.file_name().unwrap());
        std::fs::write(
            &copy,
            text.replace("/usr/local/bin/store-monitor", env!("CARGO_BIN_EXE_store-monitor")),
        )
        .unwrap();
        paths.push(copy);
    }
    assert_eq!(paths.len(), 2, "the API's unit and the worker's");
    let verified = Command::new(analyze).arg("verify").args(&paths).output().unwrap();
    let said = String::from_utf8_lossy(&verified.stderr).to_string() + &String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success() && said.trim().is_empty(), "{said}");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}
