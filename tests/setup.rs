//! A contributor's set-up (issue 12): `.env` is read and the environment wins over it;
//! `serve` says where it serves once ready, and writes no colour codes into a pipe;
//! `.env.example` lists exactly the variables `--help` names, with the same defaults; the
//! VSCode files start what exists; `reset-db` drops the database only when told `--yes`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::child::ChildServer;
use common::{TestDb, example_dirs};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BINARY: &str = env!("CARGO_BIN_EXE_store-monitor");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `serve` in `dir` (where its `.env` is), on the first example, without `--bind`.
fn serve_in(dir: &Path, db: &TestDb, env: &[(&str, &str)]) -> ChildServer {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .args(["serve", "--no-reload", "--database-url", &db.url, "--data"])
        .arg(&example_dirs()[0])
        .arg("--reports")
        .arg(dir.join("reports"))
        .env_remove("STORE_MONITOR_BIND")
        .envs(env.iter().copied());
    ChildServer::start_command(command)
}

/// The host of `http://host:port`.
fn host_of(address: &str) -> &str {
    let authority = address.trim_start_matches("http://");
    authority.rsplit_once(':').unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binds_where_dot_env_says_and_the_environment_wins() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // Another loopback address than the default's, and port 0: the child binds a free port
    // itself and says which (no port picked here that another process could take first).
    std::fs::write(
        dir.path().join(".env"),
        "# a developer's set-up\nSTORE_MONITOR_BIND=127.0.0.2:0\n",
    )
    .unwrap();

    let server = serve_in(dir.path(), &db, &[]);
    assert_eq!(
        host_of(&server.address),
        "127.0.0.2",
        "{:?}",
        server.log.lock().unwrap()
    );
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains("read .env") && log.contains("set=[\"STORE_MONITOR_BIND\"]"),
        "{log}"
    );
    server.terminate();

    // The same variable in the environment wins.
    let server = serve_in(dir.path(), &db, &[("STORE_MONITOR_BIND", "127.0.0.1:0")]);
    assert_eq!(host_of(&server.address), "127.0.0.1");
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains("kept_from_environment=[\"STORE_MONITOR_BIND\"]"),
        "{log}"
    );
    server.terminate();
}

#[test]
fn a_dot_env_that_does_not_parse_stops_the_command_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "STORE_MONITOR_BIND=127.0.0.1:1\nnot a line\n",
    )
    .unwrap();
    let output = Command::new(BINARY)
        .current_dir(dir.path())
        .args(["serve", "--no-reload"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("cannot read .env"), "{said}");
    assert!(said.contains("not a line"), "{said}");

    // `report` runs on files alone and does not read it.
    let output = Command::new(BINARY)
        .current_dir(dir.path())
        .args(["report", "--data"])
        .arg(&example_dirs()[0])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_the_urls_it_serves_once_ready_and_no_colour_codes_into_a_pipe() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), &db, &[("STORE_MONITOR_BIND", "127.0.0.1:0")]);
    // stdout is read by a thread of its own: give it a moment.
    let mut printed = String::new();
    for _ in 0..100 {
        printed = server.out.lock().unwrap().join("\n");
        if printed.contains("readiness") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let urls: BTreeMap<String, String> = printed
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (name, url) = line.trim().rsplit_once(' ')?;
            Some((name.trim().to_string(), url.to_string()))
        })
        .collect();
    let address = &server.address;
    let expected = [
        ("dashboard", format!("{address}/")),
        ("GraphiQL", format!("{address}/graphql")),
        ("GraphQL (POST)", format!("{address}/graphql")),
        (
            "subscriptions",
            format!("{}/graphql/ws", address.replace("http", "ws")),
        ),
        ("liveness", format!("{address}/healthz")),
        ("readiness", format!("{address}/readyz")),
    ];
    for (name, url) in &expected {
        assert_eq!(urls.get(*name), Some(url), "{printed}");
    }
    assert!(printed.starts_with("store-monitor is ready"), "{printed}");

    // Each answers what it says.
    let client = reqwest::Client::new();
    let page = |url: &str| client.get(url).header("Accept", "text/html").send();
    for name in ["dashboard", "GraphiQL"] {
        let answer = page(&urls[name]).await.unwrap();
        assert_eq!(answer.status(), 200, "{name}");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    let answer = client
        .post(&urls["GraphQL (POST)"])
        .json(&serde_json::json!({ "query": "{ dataset { stores } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    for name in ["liveness", "readiness"] {
        assert_eq!(
            client.get(&urls[name]).send().await.unwrap().status(),
            200,
            "{name}"
        );
    }
    let mut request = urls["subscriptions"].as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (_socket, answer) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(answer.status(), 101);

    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe: {log}");
    assert!(log.contains(" INFO "), "{log}");
    server.terminate();
}

/// The `[env: NAME…]` of each option in `help` text, with its `[default: …]` ("" if none).
fn env_names(help: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut option = Vec::new();
    let mut flush = |option: &mut Vec<&str>| {
        let text = option.join("\n");
        if let Some(rest) = text.split("[env: ").nth(1) {
            let name = rest.split(['=', ']']).next().unwrap().to_string();
            let default = text
                .split("[default: ")
                .nth(1)
                .map(|d| d.split(']').next().unwrap().to_string())
                .unwrap_or_default();
            found.insert(name, default);
        }
        option.clear();
    };
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            flush(&mut option);
        }
        option.push(line);
    }
    flush(&mut option);
    found
}

fn help(args: &[&str]) -> String {
    let output = Command::new(BINARY)
        .arg("help")
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn dot_env_example_lists_every_variable_help_names_with_its_default() {
    // Every subcommand, as the top-level help lists them.
    let top = help(&[]);
    let commands: Vec<&str> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A command's name is indented two spaces; its description's next lines, more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(
        commands.contains(&"serve") && commands.contains(&"reset-db"),
        "{top}"
    );
    let mut from_help = BTreeMap::new();
    for command in &commands {
        for (name, default) in env_names(&help(&[command])) {
            if let Some(other) = from_help.insert(name.clone(), default.clone()) {
                assert_eq!(other, default, "{name} has two defaults");
            }
        }
    }

    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let listed: BTreeMap<String, String> = example
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let variable = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            variable.then(|| (name.to_string(), value.to_string()))
        })
        .collect();
    let names = |map: &BTreeMap<String, String>| map.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        names(&listed),
        names(&from_help),
        ".env.example and the [env: …] names of --help differ"
    );
    assert_eq!(listed, from_help, "a default in .env.example is not --help's");
    assert!(from_help.contains_key("STORE_MONITOR_BIND") && from_help.contains_key("DATABASE_URL"));
}

fn json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_vscode_files_start_what_exists() {
    let launch = json(".vscode/launch.json");
    let tasks = json(".vscode/tasks.json");
    let configurations = launch["configurations"].as_array().unwrap();
    let find = |args: &[&str]| {
        configurations
            .iter()
            .find(|c| c["args"] == serde_json::json!(args))
            .unwrap_or_else(|| panic!("no configuration runs {args:?}"))
    };
    for command in ["serve", "worker"] {
        let configuration = find(&[command]);
        assert_eq!(configuration["type"], "lldb", "CodeLLDB's type");
        assert_eq!(configuration["request"], "launch");
        // The binary reads `.env` from its working directory, the workspace's; CodeLLDB
        // reads it too, after a task has made one from `.env.example` if there is none.
        assert_eq!(configuration["cwd"], "${workspaceFolder}");
        assert_eq!(configuration["envFile"], "${workspaceFolder}/.env");
        let before = configuration["preLaunchTask"].as_str().unwrap();
        let task = tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["label"] == before)
            .expect("the task to run first");
        assert_eq!(task["command"], "test -f .env || cp .env.example .env");
        assert_eq!(configuration["cargo"]["filter"]["name"], "store-monitor");
        assert_eq!(configuration["cargo"]["filter"]["kind"], "bin");
        assert!(
            configuration["cargo"]["args"]
                .as_array()
                .unwrap()
                .contains(&"--bin=store-monitor".into())
        );
    }

    // The test binary is chosen from a list: every file of tests/, and nothing else.
    let test = configurations
        .iter()
        .find(|c| c["cargo"]["args"].to_string().contains("--test=${input:"))
        .expect("a configuration that debugs one integration test");
    assert_eq!(test["type"], "lldb");
    assert_eq!(test["cargo"]["filter"]["kind"], "test");
    let input_id = test["cargo"]["args"]
        .to_string()
        .split("${input:")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap()
        .to_string();
    let input = launch["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == input_id.as_str())
        .expect("the input the test configuration names");
    assert_eq!(input["type"], "pickString");
    let offered: BTreeSet<String> = input["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    let tests: BTreeSet<String> = std::fs::read_dir(root().join("tests"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    assert_eq!(offered, tests, "the list of test binaries is out of date");

    let commands: Vec<String> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["command"].as_str().unwrap().to_string())
        .collect();
    for wanted in [
        "cargo build",
        "cargo test",
        "bash .ci/run",
        "cargo run -q -- schema > schema.graphql",
        "cargo run -q -- reset-db --yes",
    ] {
        assert!(
            commands.iter().any(|c| c == wanted),
            "no task runs {wanted:?}: {commands:?}"
        );
    }
    // Each benchmark a task runs exists.
    for command in commands.iter().filter(|c| c.starts_with("cargo bench")) {
        let bench = command
            .split("--bench ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(root().join("benches").join(bench).exists(), "{command}");
    }

    let extensions = json(".vscode/extensions.json");
    for id in ["rust-lang.rust-analyzer", "vadimcn.vscode-lldb"] {
        assert!(
            extensions["recommendations"]
                .as_array()
                .unwrap()
                .contains(&id.into()),
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_db_drops_the_database_only_with_yes() {
    let db = TestDb::new().await;
    let exists = || async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&common::server_url())
            .await
            .unwrap();
        let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&db.name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::Connection::close(conn).await.unwrap();
        found
    };
    let run = |args: &[&str]| {
        Command::new(BINARY)
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    let refused = run(&["reset-db"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(exists().await);

    let done = run(&["reset-db", "--yes"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(String::from_utf8_lossy(&done.stderr).contains("dropped the database"));
    assert!(!exists().await);
    let again = run(&["reset-db", "--yes"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to drop"));
}
