//! Who may do what, end to end (issue 10): each role against each operation over GraphQL,
//! WebSocket, the REST routes and signed CSV links; refused calls change nothing; revoked
//! and expired tokens and tampered or expired links are refused at once; the rate limits;
//! protected mode and the audit log of a real `serve` process.

mod common;

use std::process::Command;

use common::child::{ChildServer, serve_args};
use common::socket::Socket;
use common::{TestApp, TestDb, create_token};
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_store-monitor");

fn data() -> std::path::PathBuf {
    common::examples_dir().join("prompt-example")
}

/// A server that needs tokens, with one token of each role.
struct Protected {
    app: TestApp,
    db: TestDb,
    admin: String,
    operator: String,
    viewer: String,
}

impl Protected {
    async fn start() -> Protected {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut store_monitor::settings::Settings)) -> Protected {
        let db = TestDb::new().await;
        let admin = create_token(&db, "admin", "test admin");
        let app = TestApp::spawn_adjusted(&db, &data(), 1, true, None, |s| {
            s.auth = Some(store_monitor::settings::AuthMode::Required);
            adjust(s);
        })
        .await;
        let mut server = Protected {
            app,
            db,
            admin,
            operator: String::new(),
            viewer: String::new(),
        };
        server.operator = server.token_by_graphql("OPERATOR", "test operator").await;
        server.viewer = server.token_by_graphql("VIEWER", "test viewer").await;
        server
    }

    /// A token `createToken` made, as the admin.
    async fn token_by_graphql(&self, role: &str, name: &str) -> String {
        let (status, body) = self
            .gql(
                Some(&self.admin),
                "mutation($name: String!, $role: Role!) { createToken(input: { name: $name, role: $role }) { secret token { id role active } } }",
                json!({ "name": name, "role": role }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["createToken"]["token"]["role"], role);
        body["data"]["createToken"]["secret"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn token_id(&self, name: &str) -> String {
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db.pool)
            .await
            .unwrap();
        id.to_string()
    }

    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.gql_full(token, query, variables).await;
        (status, body)
    }

    async fn gql_full(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/graphql", self.app.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }

    async fn rest(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// What a refused call must leave as it was.
    async fn counts(&self) -> (i64, i64, i64, i64) {
        let count = |table: &'static str| {
            let pool = self.db.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let revoked: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL")
            .fetch_one(&self.db.pool)
            .await
            .unwrap();
        (
            count("reports").await,
            count("api_tokens").await,
            count("data_loads").await,
            revoked,
        )
    }

    /// A report, triggered as the admin and waited for until COMPLETE.
    async fn complete_report(&self) -> String {
        let (_, body) = self
            .gql(Some(&self.admin), "mutation { triggerReport { id } }", json!({}))
            .await;
        let id = body["data"]["triggerReport"]["id"].as_str().unwrap().to_string();
        let mut socket = Socket::open(
            &self.app.address,
            json!({ "Authorization": format!("Bearer {}", self.viewer) }),
        )
        .await;
        socket.expect_ack().await;
        socket
            .subscribe(
                "1",
                "subscription($id: ID!) { report(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
        loop {
            let message = socket.next().await.expect("the subscription answers");
            if message["type"] == "complete" {
                break;
            }
            assert_eq!(message["type"], "next", "{message}");
        }
        id
    }
}

const READ: &str = "{ dataset { dataVersion } }";
const INTROSPECT: &str = "{ __schema { queryType { name } } }";
const TOKENS: &str = "{ tokens { id name } }";
const TRIGGER: &str = "mutation { triggerReport { id status } }";
const RELOAD: &str = "mutation { reloadData(force: true) { changed } }";
const CREATE: &str = "mutation { createToken(input: { name: \"made in a test\", role: VIEWER }) { secret } }";
const REVOKE: &str = "mutation($id: ID!) { revokeToken(id: $id) { revokedAt } }";

#[tokio::test]
async fn each_role_against_each_graphql_operation() {
    let server = Protected::start().await;
    let garbage = format!("sm_{}", "0".repeat(64));
    // (the role a caller has: 0 none, 1 viewer, 2 operator, 3 admin; the token it sends)
    let callers: [(&str, u8, Option<&str>); 6] = [
        ("no token", 0, None),
        ("an unknown token", 0, Some(&garbage)),
        ("not a token", 0, Some("hunter2")),
        ("viewer", 1, Some(&server.viewer)),
        ("operator", 2, Some(&server.operator)),
        ("admin", 3, Some(&server.admin)),
    ];
    // (the operation, the least role that may run it)
    let operations = [
        (INTROSPECT, 0),
        (READ, 1),
        (TRIGGER, 2),
        (RELOAD, 3),
        (TOKENS, 3),
        (CREATE, 3),
        (REVOKE, 3),
        // One field the caller may not use stops the whole document: never half of it.
        ("mutation { triggerReport { id } reloadData { changed } }", 3),
        (
            "mutation { ...M } fragment M on Mutation { triggerReport { id } ... on Mutation { createToken(input: { name: \"x\", role: ADMIN }) { secret } } }",
            3,
        ),
    ];
    for (who, rank, token) in callers {
        for (query, needs) in operations {
            // Each revocation has a victim of its own.
            server
                .token_by_graphql("VIEWER", &format!("victim {who} {query}"))
                .await;
            let variables = json!({ "id": server.token_id(&format!("victim {who} {query}")).await });
            let before = server.counts().await;
            let (status, headers, body) = server.gql_full(token, query, variables).await;
            let context = format!("{who} running {query}: {status} {body}");
            // A token that does not work is refused whatever it asks, introspection included.
            let bad_token = rank == 0 && token.is_some();
            if rank >= needs && !bad_token {
                assert_eq!(status, 200, "{context}");
                assert!(body["errors"].is_null(), "{context}");
                continue;
            }
            let code = body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or_default();
            if rank == 0 {
                assert_eq!(status, 401, "{context}");
                assert_eq!(code, "UNAUTHENTICATED", "{context}");
                let challenge = headers[reqwest::header::WWW_AUTHENTICATE].to_str().unwrap();
                assert!(
                    challenge.starts_with("Bearer realm=\"store-monitor\""),
                    "{challenge}"
                );
                assert_eq!(
                    token.is_some(),
                    challenge.contains("invalid_token"),
                    "{challenge}"
                );
            } else {
                assert_eq!(status, 403, "{context}");
                assert_eq!(code, "FORBIDDEN", "{context}");
            }
            assert!(body.get("data").is_none(), "nothing ran: {context}");
            assert_eq!(
                server.counts().await,
                before,
                "a refused call changed something: {context}"
            );
        }
    }
}

#[tokio::test]
async fn each_role_against_the_rest_routes_and_the_csv_link() {
    let server = Protected::start().await;
    let id = server.complete_report().await;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let callers = [
        (None, 0),
        (Some(&server.viewer), 1),
        (Some(&server.operator), 2),
        (Some(&server.admin), 3),
    ];
    for (token, rank) in callers {
        let token = token.map(String::as_str);
        for (method, path, needs) in [
            (&post, "/trigger_report".to_string(), 2),
            (&get, format!("/get_report?report_id={id}"), 1),
            (&get, format!("/reports/{id}.csv"), 1),
        ] {
            let before = server.counts().await;
            let response = server.rest(method.clone(), &path, token).await;
            let status = response.status();
            let challenge = response.headers().get(reqwest::header::WWW_AUTHENTICATE).cloned();
            let body = response.text().await.unwrap();
            let context = format!("{method} {path} with role {rank}: {status} {body}");
            match (rank >= needs, rank) {
                (true, _) => assert_eq!(status, 200, "{context}"),
                (false, 0) => {
                    assert_eq!(status, 401, "{context}");
                    assert!(challenge.is_some(), "{context}");
                    assert!(body.contains("UNAUTHENTICATED"), "{context}");
                }
                (false, _) => {
                    assert_eq!(status, 403, "{context}");
                    assert!(body.contains("FORBIDDEN"), "{context}");
                }
            }
            if rank < needs {
                assert_eq!(server.counts().await, before, "{context}");
            }
        }
    }

    // csvUrl works without a header, for a browser's link or curl -O.
    let (_, body) = server
        .gql(
            Some(&server.viewer),
            "query($id: ID!) { report(id: $id) { csv csvUrl } }",
            json!({ "id": id }),
        )
        .await;
    let (csv, link) = (
        body["data"]["report"]["csv"].as_str().unwrap(),
        body["data"]["report"]["csvUrl"].as_str().unwrap(),
    );
    assert!(link.starts_with(&format!("/reports/{id}.csv?expires=")), "{link}");
    let download = server.rest(get.clone(), link, None).await;
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()[reqwest::header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("private"),
        "a file that needed a token is not for shared caches"
    );
    assert_eq!(download.text().await.unwrap(), csv);

    // Tampered: another report, another expiry, another signature, a missing part.
    let tampered_signature = {
        let last = link.chars().last().unwrap();
        format!(
            "{}{}",
            &link[..link.len() - 1],
            if last == '0' { '1' } else { '0' }
        )
    };
    let params: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(link.split_once('?').unwrap().1).unwrap();
    let expires: i64 = params["expires"].parse().unwrap();
    let later = link.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    let other = server.complete_report().await;
    let other_report = link.replace(&id, &other);
    let unsigned = link.split("&signature=").next().unwrap().to_string();
    for bad in [tampered_signature, later, other_report, unsigned] {
        let response = server.rest(get.clone(), &bad, None).await;
        assert_eq!(response.status(), 401, "{bad}");
        assert!(response.text().await.unwrap().contains("UNAUTHENTICATED"));
    }

    // Expired: signed with the server's own key, an expiry a second past.
    let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM signing_keys")
        .fetch_one(&server.db.pool)
        .await
        .unwrap();
    let by = &params["by"];
    let sign = |expires: i64, by: &str| {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("store-monitor report link\n{id}\n{expires}\n{by}").as_bytes());
        format!(
            "/reports/{id}.csv?expires={expires}&by={by}&signature={}",
            hex::encode(mac.finalize().into_bytes())
        )
    };
    // The test's own signature of a live link is accepted: what it signs is what the server does.
    assert_eq!(
        server.rest(get.clone(), &sign(expires, by), None).await.status(),
        200
    );
    let past = chrono::Utc::now().timestamp() - 1;
    let response = server.rest(get.clone(), &sign(past, by), None).await;
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("expired"));
    // A link given out without a token is no good on a server that needs one.
    assert_eq!(
        server.rest(get.clone(), &sign(expires, "-"), None).await.status(),
        401
    );

    // Revoking the token kills its links at once.
    let viewer_id = server.token_id("test viewer").await;
    let (status, _) = server
        .gql(Some(&server.admin), REVOKE, json!({ "id": viewer_id }))
        .await;
    assert_eq!(status, 200);
    let response = server.rest(get.clone(), link, None).await;
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("not usable"));
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused_at_once() {
    let server = Protected::start().await;
    let second = server.token_by_graphql("VIEWER", "second viewer").await;
    // A token that expires in two seconds.
    let expiry = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    let (_, body) = server
        .gql(
            Some(&server.admin),
            "mutation($at: DateTime!) { createToken(input: { name: \"third\", role: OPERATOR, expiresAt: $at }) { secret } }",
            json!({ "at": expiry }),
        )
        .await;
    let third = body["data"]["createToken"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for token in [&server.viewer, &second, &third] {
        assert_eq!(server.gql(Some(token), READ, json!({})).await.0, 200);
    }

    // By GraphQL: the very next call is refused.
    let id = server.token_id("test viewer").await;
    let (_, body) = server.gql(Some(&server.admin), REVOKE, json!({ "id": id })).await;
    assert!(body["data"]["revokeToken"]["revokedAt"].is_string(), "{body}");
    let (status, body) = server.gql(Some(&server.viewer), READ, json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // By the command line, another process: the server hears of it through PostgreSQL, and
    // forgets the token it had read a moment ago. The first refused call is counted.
    let id = server.token_id("second viewer").await;
    common::cli(&server.db, ["token", "revoke", &id]);
    let mut calls = 1;
    while server.gql(Some(&second), READ, json!({})).await.0 == 200 {
        calls += 1;
        assert!(calls < 20, "a token revoked by the command line still works");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    eprintln!("refused at call {calls} after the command line's revocation");

    // Expired since its last use: refused from its expiry on, never before.
    loop {
        let (status, body) = server.gql(Some(&third), READ, json!({})).await;
        let now = chrono::Utc::now();
        if status == 200 {
            assert!(
                now < expiry + chrono::TimeDelta::seconds(1),
                "an expired token still works"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(status, 401, "{body}");
        assert!(now >= expiry, "refused before its expiry: {body}");
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains("expired"),
            "{body}"
        );
        break;
    }

    // The list tells them apart, and never shows a secret.
    let (_, body) = server
        .gql(
            Some(&server.admin),
            "{ tokens { name role active revokedAt expiresAt lastUsedAt } }",
            json!({}),
        )
        .await;
    let tokens = body["data"]["tokens"].as_array().unwrap();
    let active = |name: &str| {
        tokens.iter().find(|t| t["name"] == name).unwrap()["active"]
            .as_bool()
            .unwrap()
    };
    assert!(active("test admin") && active("test operator"));
    assert!(!active("test viewer") && !active("second viewer") && !active("third"));
    assert!(!body.to_string().contains("sm_"), "{body}");
    let list = common::cli(&server.db, ["token", "list"]);
    assert_eq!(
        list.lines().filter(|l| l.contains(" revoked ")).count(),
        2,
        "{list}"
    );
    assert_eq!(
        list.lines().filter(|l| l.contains(" expired ")).count(),
        1,
        "{list}"
    );
    assert!(!list.contains("sm_"));

    // A bad request to createToken is the client's fault.
    let (_, body) = server
        .gql(
            Some(&server.admin),
            "mutation { createToken(input: { name: \"old\", role: ADMIN, expiresAt: \"2020-01-01T00:00:00Z\" }) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
}

#[tokio::test]
async fn websocket_tokens_go_in_connection_init() {
    let server = Protected::start().await;
    let bearer = |token: &str| json!({ "Authorization": format!("Bearer {token}") });

    // No token: 4401; a bad one: 4403, as graphql-transport-ws says.
    let mut socket = Socket::open(&server.app.address, json!({})).await;
    let close = socket.next().await.unwrap();
    assert_eq!(
        (close["type"].as_str(), close["code"].as_u64()),
        (Some("close"), Some(4401)),
        "{close}"
    );
    let mut socket = Socket::open(&server.app.address, bearer(&format!("sm_{}", "1".repeat(64)))).await;
    let close = socket.next().await.unwrap();
    assert_eq!(close["code"], 4403, "{close}");

    // A viewer follows a report; other shapes of connectionParams work too.
    let id = server.complete_report().await;
    for payload in [
        bearer(&server.viewer),
        json!({ "authorization": format!("Bearer {}", server.viewer) }),
        json!({ "headers": { "Authorization": format!("Bearer {}", server.viewer) } }),
    ] {
        let mut socket = Socket::open(&server.app.address, payload).await;
        socket.expect_ack().await;
        socket
            .subscribe(
                "1",
                "subscription($id: ID!) { report(id: $id) { status csvUrl } }",
                json!({ "id": id }),
            )
            .await;
        let next = socket.next().await.unwrap();
        assert_eq!(next["payload"]["data"]["report"]["status"], "COMPLETE", "{next}");
        let link = next["payload"]["data"]["report"]["csvUrl"].as_str().unwrap();
        assert_eq!(server.rest(reqwest::Method::GET, link, None).await.status(), 200);
    }

    // Each role against each operation over the socket: what it may do runs, the rest is
    // the protocol's `error` with FORBIDDEN and changes nothing.
    let follow = "subscription($id: ID!) { report(id: $id) { status } }";
    let operations = [
        (follow, 1),
        (READ, 1),
        (TRIGGER, 2),
        (RELOAD, 3),
        (TOKENS, 3),
        (CREATE, 3),
    ];
    for (token, rank) in [(&server.viewer, 1), (&server.operator, 2), (&server.admin, 3)] {
        let mut socket = Socket::open(&server.app.address, bearer(token)).await;
        socket.expect_ack().await;
        for (n, (query, needs)) in operations.into_iter().enumerate() {
            let before = server.counts().await;
            socket.subscribe(&n.to_string(), query, json!({ "id": id })).await;
            let answer = socket.next().await.unwrap();
            let context = format!("role {rank} running {query}: {answer}");
            if rank >= needs {
                assert_eq!(answer["type"], "next", "{context}");
                assert!(answer["payload"]["errors"].is_null(), "{context}");
                assert_eq!(socket.next().await.unwrap()["type"], "complete", "{context}");
            } else {
                assert_eq!(answer["type"], "error", "{context}");
                assert_eq!(
                    answer["payload"][0]["extensions"]["code"], "FORBIDDEN",
                    "{context}"
                );
                assert_eq!(server.counts().await, before, "{context}");
            }
        }
    }
    let mut socket = Socket::open(&server.app.address, bearer(&server.viewer)).await;
    socket.expect_ack().await;

    // Revoked while the socket is open: the socket is closed without waiting for a message.
    let viewer_id = server.token_id("test viewer").await;
    server
        .gql(Some(&server.admin), REVOKE, json!({ "id": viewer_id }))
        .await;
    let close = loop {
        let message = socket.next().await.unwrap();
        if message["type"] == "close" {
            break message;
        }
    };
    assert_eq!(close["code"], 4403, "{close}");
    assert!(close["reason"].as_str().unwrap().contains("revoked"), "{close}");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_token_or_address() {
    // Open: each client address has its own allowance.
    let db = TestDb::new().await;
    let app = TestApp::spawn_adjusted(&db, &data(), 1, true, None, |s| {
        s.trigger_rate = 3;
        s.reload_rate = 1;
    })
    .await;
    let post = |query: &'static str| {
        let address = app.address.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{address}/graphql"))
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            let retry = response.headers().get(reqwest::header::RETRY_AFTER).cloned();
            (response.status(), retry, response.json::<Value>().await.unwrap())
        }
    };
    for _ in 0..3 {
        let (status, _, body) = post(TRIGGER).await;
        assert_eq!(status, 200, "{body}");
    }
    let reports = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM reports")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let before = reports().await;
    let (status, retry, body) = post(TRIGGER).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "TOO_MANY_REQUESTS",
        "{body}"
    );
    let seconds: u64 = retry.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&seconds), "{seconds}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], seconds, "{body}");
    assert_eq!(reports().await, before, "a refused trigger queues nothing");
    // The REST trigger counts against the same allowance.
    let response = app.post("/trigger_report").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key(reqwest::header::RETRY_AFTER));

    assert_eq!(post(RELOAD).await.0, 200);
    let (status, retry, body) = post(RELOAD).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());
    app.stop().await;

    // With tokens: each token has its own allowance.
    let server = Protected::start_with(|s| s.trigger_rate = 2).await;
    let other = server.token_by_graphql("OPERATOR", "second operator").await;
    for _ in 0..2 {
        assert_eq!(
            server.gql(Some(&server.operator), TRIGGER, json!({})).await.0,
            200
        );
    }
    assert_eq!(
        server.gql(Some(&server.operator), TRIGGER, json!({})).await.0,
        429
    );
    assert_eq!(server.gql(Some(&other), TRIGGER, json!({})).await.0, 200);
}

#[tokio::test]
async fn protected_mode_needs_a_token_off_loopback() {
    let db = TestDb::new().await;
    let reports = tempfile::tempdir().unwrap();
    let args = serve_args(&db.url, &data(), reports.path());

    // Bound to every address with no token: refuses to start, and says how to make one.
    let output = Command::new(BINARY)
        .args(["serve", "--bind", "0.0.0.0:0"])
        .args(&args)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("store-monitor token create --role admin --name NAME"),
        "{stderr}"
    );
    assert!(stderr.contains("--auth off"), "{stderr}");

    // --auth off: it starts, open, and says so.
    let mut off_args = args.clone();
    off_args.extend(["--auth".into(), "off".into()]);
    let open = ChildServer::start_at(BINARY, "0.0.0.0:0", &off_args, []);
    let body = open.graphql(READ).await;
    assert!(body["data"]["dataset"]["dataVersion"].is_number(), "{body}");
    assert!(open.log.lock().unwrap().iter().any(|l| l.contains("--auth off")));
    open.terminate();

    // With a token it starts, and needs it; the audit log names the token, never its secret.
    let secret = create_token(&db, "operator", "audited operator");
    let protected = ChildServer::start_at(BINARY, "0.0.0.0:0", &args, []);
    let post = |token: Option<&str>, query: &str| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/graphql", protected.address))
            .json(&json!({ "query": query }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(post(None, READ).await, 401);
    assert_eq!(post(Some(&secret), TRIGGER).await, 200);
    assert_eq!(post(Some(&secret), RELOAD).await, 403);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let log = protected.log.clone();
    protected.terminate();
    let log = log.lock().unwrap().join("\n");
    let named: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("audited operator") && l.contains(&id.to_string()))
        .collect();
    assert!(
        named
            .iter()
            .any(|l| l.contains("trigger report") && l.contains(": ok")),
        "{log}"
    );
    assert!(
        named
            .iter()
            .any(|l| l.contains("reload data") && l.contains("refused")),
        "{log}"
    );
    assert!(!log.contains(&secret), "the secret never reaches the log");
}
