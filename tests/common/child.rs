//! A `store-monitor serve` process of its own, on a port it picks itself: for the tests
//! that kill a server, and for the `--server` benchmark.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `serve` process and where it listens.
pub struct ChildServer {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Every line the server has logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Every line it has printed on stdout so far.
    pub out: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The arguments of a `serve` on a database of its own: no reload schedule, the input
/// files of `data`, report files in `reports`.
pub fn serve_args(database_url: &str, data: &std::path::Path, reports: &std::path::Path) -> Vec<OsString> {
    vec![
        "--no-reload".into(),
        "--database-url".into(),
        database_url.into(),
        "--data".into(),
        data.into(),
        "--reports".into(),
        reports.into(),
    ]
}

impl ChildServer {
    /// Starts `store-monitor serve --bind 127.0.0.1:0 ARGS` and waits until it says where
    /// it listens (it does once its data is loaded and it accepts connections). The port is
    /// the one the server bound, never one freed for it that another process could take.
    pub fn start(binary: &str, args: impl IntoIterator<Item = impl Into<OsString>>) -> ChildServer {
        Self::start_with_env(binary, args, [])
    }

    /// [`ChildServer::start`] with these environment variables set too.
    pub fn start_with_env<const N: usize>(
        binary: &str,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: [(&str, &str); N],
    ) -> ChildServer {
        Self::start_at(binary, "127.0.0.1:0", args, env)
    }

    /// [`ChildServer::start_with_env`], bound to `bind`. The address to call is on
    /// 127.0.0.1 whatever the bind.
    pub fn start_at<const N: usize>(
        binary: &str,
        bind: &str,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: [(&str, &str); N],
    ) -> ChildServer {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--bind", bind])
            .args(args.into_iter().map(Into::into))
            .envs(env);
        Self::spawn(command)
    }

    /// [`ChildServer::start`] under `prlimit`, allowed only `files` open files.
    pub fn start_with_open_files(
        binary: &str,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        files: u32,
    ) -> ChildServer {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .args([binary, "serve", "--bind", "127.0.0.1:0"])
            .args(args.into_iter().map(Into::into));
        Self::spawn(command)
    }

    /// Starts `command` (a `serve` with whatever flags, environment and working directory
    /// it was given), as [`ChildServer::start`] does.
    pub fn start_command(command: Command) -> ChildServer {
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> ChildServer {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let printed = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                printed.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr is piped");
        let (found, address) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        // Reads the log to the end: a full pipe would stop the server.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = found.send(url.replace("0.0.0.0", "127.0.0.1"));
                }
                kept.lock().unwrap().push(line);
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(300))
            .expect("the server says where it listens");
        ChildServer {
            child,
            address,
            log,
            out,
        }
    }

    /// Waits until a line of the log contains `needle`, for at most `deadline`; fails the
    /// test saying what it waited for, with the log, if none does.
    #[allow(dead_code)]
    pub async fn logged(&self, needle: &str, deadline: Duration) {
        let started = std::time::Instant::now();
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            assert!(
                started.elapsed() < deadline,
                "the server did not log {needle:?} within {deadline:?}: {:?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a GraphQL operation over HTTP, with no token: the whole response.
    #[allow(dead_code)]
    pub async fn graphql(&self, query: &str) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Where a server started with `--metrics-bind` serves `/metrics`: `127.0.0.1:PORT`.
    pub async fn metrics_address(&self) -> String {
        let said = async {
            loop {
                let found = self.log.lock().unwrap().iter().find_map(|line| {
                    line.split("metrics on http://")
                        .nth(1)
                        .and_then(|rest| rest.split('/').next())
                        .map(str::to_string)
                });
                if let Some(address) = found {
                    return address;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), said)
            .await
            .expect("the server says where its metrics are within 30 s")
    }

    /// What its `/metrics` says now (a server started with `--metrics-bind`).
    pub async fn scrape_metrics(&self) -> String {
        let address = self.metrics_address().await;
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The process's id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to stop, as a service manager does (SIGTERM), and waits for it.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.child.wait().expect("the server can be waited for")
    }
}

/// A test that fails half-way leaves no server running.
impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
