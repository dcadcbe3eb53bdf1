//! What HTTP clients get besides the data: compressed answers, downloads a cache can keep
//! (ETag, Last-Modified, 304), byte ranges, HEAD, and the headers a browser app may read.

mod common;

use std::io::Read;
use std::path::Path;

use common::{TestApp, TestDb};
use reqwest::header;
use serde_json::{Value, json};

/// A server whose one report is COMPLETE, on a generated data set large enough to be
/// worth compressing; its report id and CSV.
async fn finished_report(db: &TestDb, data: &Path) -> (TestApp, String, String) {
    common::generated_report(db, data, |s| {
        s.cors_origins = vec!["https://dashboard.example".into()];
    })
    .await
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_compressed_cached_ranged_and_described() {
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let (server, id, csv) = finished_report(&db, data.path()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/reports/{id}.csv", server.address);

    let plain = client.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    let headers = plain.headers().clone();
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let modified = headers[header::LAST_MODIFIED].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "a strong ETag: {etag}"
    );
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains(&format!("{id}.csv"))
    );
    assert_eq!(headers[header::CONTENT_LENGTH], csv.len().to_string().as_str());
    assert_eq!(plain.text().await.unwrap(), csv);

    // What a cache asks again.
    for (name, value) in [
        (header::IF_NONE_MATCH, etag.as_str()),
        (header::IF_MODIFIED_SINCE, modified.as_str()),
    ] {
        let again = client.get(&url).header(name.clone(), value).send().await.unwrap();
        assert_eq!(again.status(), 304, "{name}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let other = client
        .get(&url)
        .header(header::IF_NONE_MATCH, "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    // Byte ranges: a piece, the tail, and past the end.
    let piece = client
        .get(&url)
        .header(header::RANGE, "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(piece.status(), 206);
    assert_eq!(
        piece.headers()[header::CONTENT_RANGE],
        format!("bytes 10-19/{}", csv.len()).as_str()
    );
    assert_eq!(piece.text().await.unwrap(), &csv[10..20]);
    let tail = client
        .get(&url)
        .header(header::RANGE, "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.text().await.unwrap(), &csv[csv.len() - 5..]);
    let past = client
        .get(&url)
        .header(header::RANGE, format!("bytes={}-", csv.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 416);
    let stale = client
        .get(&url)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "a stale If-Range gets the whole file");

    // HEAD says how long the file is.
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        csv.len().to_string().as_str()
    );

    // Compressed as the client asks.
    let gzipped = client
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(
        gzipped.headers()[header::VARY]
            .to_str()
            .unwrap()
            .contains("accept-encoding")
    );
    let bytes = gzipped.bytes().await.unwrap();
    assert!(bytes.len() * 2 < csv.len(), "{} of {}", bytes.len(), csv.len());
    assert_eq!(gunzip(&bytes), csv);
    for (accepted, coding) in [
        ("gzip, deflate, br", "br"),
        ("gzip, br, zstd", "zstd"),
        ("br;q=0.5, gzip", "gzip"),
    ] {
        let response = client
            .get(&url)
            .header(header::ACCEPT_ENCODING, accepted)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()[header::CONTENT_ENCODING], coding, "{accepted}");
    }

    // The original API's CSV is the same download.
    let legacy = client
        .get(format!("{}/get_report?report_id={id}", server.address))
        .header(header::IF_NONE_MATCH, etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 304);
    let legacy = client
        .get(format!("{}/get_report?report_id={id}", server.address))
        .send()
        .await
        .unwrap();
    assert!(
        legacy.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains(&id)
    );
    assert_eq!(legacy.text().await.unwrap(), csv);

    // GraphQL's JSON is compressed too.
    let graphql = client
        .post(format!("{}/graphql", server.address))
        .header(header::ACCEPT_ENCODING, "gzip")
        .json(&json!({ "query": "query($id: ID!) { report(id: $id) { csv } }", "variables": { "id": id } }))
        .send()
        .await
        .unwrap();
    assert_eq!(graphql.headers()[header::CONTENT_ENCODING], "gzip");
    let body: Value = serde_json::from_str(&gunzip(&graphql.bytes().await.unwrap())).unwrap();
    assert_eq!(body["data"]["report"]["csv"], csv.as_str());

    // A browser app on another origin may read the download's name and validators.
    let cors = client
        .get(&url)
        .header(header::ORIGIN, "https://dashboard.example")
        .send()
        .await
        .unwrap();
    let exposed = cors.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("content-disposition") && exposed.contains("etag"),
        "{exposed}"
    );
    server.stop().await;
}

/// The number of reports the server holds.
async fn report_count(server: &TestApp) -> usize {
    let listed = server
        .graphql("{ reports(first: 1000) { edges { cursor } } }", json!({}))
        .await;
    listed["data"]["reports"]["edges"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_http_as_its_spec_writes_it() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &common::example_dirs()[0], 0).await;
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", server.address);
    const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
    let post = |accept: &'static str, body: Value| {
        client
            .post(&url)
            .header(header::ACCEPT, accept)
            .json(&body)
            .send()
    };
    let content_type =
        |r: &reqwest::Response| r.headers()[header::CONTENT_TYPE].to_str().unwrap().to_string();

    // The media type the client asks for; request errors are 400 without data in the new one.
    let ok = post(GRAPHQL_RESPONSE, json!({ "query": "{ dataset { stores } }" }))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(content_type(&ok).starts_with(GRAPHQL_RESPONSE));
    for bad in ["{ dataset { stores ", "{ dataset { weather } }"] {
        let refused = post(GRAPHQL_RESPONSE, json!({ "query": bad })).await.unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let body: Value = refused.json().await.unwrap();
        assert!(body.get("data").is_none() && body["errors"].is_array(), "{body}");
    }
    let legacy = post("application/json", json!({ "query": "{ dataset { weather } }" }))
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    assert!(content_type(&legacy).starts_with("application/json"));
    let html_only = post("text/html", json!({ "query": "{ dataset { stores } }" }))
        .await
        .unwrap();
    assert_eq!(html_only.status(), 406);
    let no_query = post("application/json", json!({ "variables": {} }))
        .await
        .unwrap();
    assert_eq!(no_query.status(), 400);
    let batch = post("application/json", json!([{ "query": "{ dataset { stores } }" }]))
        .await
        .unwrap();
    assert_eq!(batch.status(), 400);

    // CSRF: what a page on another site can send without a preflight runs nothing.
    let mutation = "mutation { triggerReport { id } }";
    for content in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let sent = client
            .post(&url)
            .header(header::CONTENT_TYPE, content)
            .body(json!({ "query": mutation }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 415, "{content}");
    }
    let get_mutation = client
        .get(&url)
        .query(&[("query", mutation)])
        .send()
        .await
        .unwrap();
    assert_eq!(get_mutation.status(), 405);
    assert_eq!(get_mutation.headers()[header::ALLOW], "POST");
    assert_eq!(
        report_count(&server).await,
        0,
        "no cross-site request ran the mutation"
    );

    // GET runs queries; a browser opening the URL gets GraphiQL.
    let got = client
        .get(&url)
        .header(header::ACCEPT, "application/json")
        .query(&[
            (
                "query",
                "query($n: Int) { reports(first: $n) { edges { cursor } } }",
            ),
            ("variables", "{\"n\": 1}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got: Value = got.json().await.unwrap();
    assert!(got["errors"].is_null(), "{got}");
    let page = client
        .get(&url)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert!(content_type(&page).starts_with("text/html"));

    // 60 aliases of a thousand reports' CSVs (181 MB once) are refused before anything runs.
    let aliases: String = (0..60)
        .map(|i| format!("r{i}: reports(first: 1000) {{ nodes {{ csv }} }} "))
        .collect();
    let costly = post(GRAPHQL_RESPONSE, json!({ "query": format!("{{ {aliases}}}") }))
        .await
        .unwrap();
    assert_eq!(costly.status(), 400);
    let costly: Value = costly.json().await.unwrap();
    assert_eq!(
        costly["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{costly}"
    );
    assert!(
        costly["errors"][0]["extensions"]["cost"].as_u64().unwrap() > 200_000,
        "{costly}"
    );

    // A body over the limit is refused before it is read whole.
    let huge = format!("{{\"query\": \"{}\"}}", " ".repeat(2 << 20));
    let too_big = client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries_run_by_hash_over_post_and_get() {
    use sha2::Digest;
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &common::example_dirs()[0], 0).await;
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", server.address);
    let query = "{ dataset { stores polledStores } }";
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let unknown: Value = client
        .post(&url)
        .json(&json!({ "extensions": extensions }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );

    let wrong = client
        .post(&url)
        .json(&json!({ "query": "{ dataset { stores } }", "extensions": extensions }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400, "a query whose hash is not the one given");

    let registered: Value = client
        .post(&url)
        .json(&json!({ "query": query, "extensions": extensions }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(registered["data"]["dataset"]["stores"].is_i64(), "{registered}");

    let by_post: Value = client
        .post(&url)
        .json(&json!({ "extensions": extensions }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_post["data"], registered["data"]);
    let by_get: Value = client
        .get(&url)
        .header(header::ACCEPT, "application/json")
        .query(&[("extensions", extensions.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_get["data"], registered["data"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_size_limit_is_replaced_by_the_error_that_says_so() {
    let db = TestDb::new().await;
    let limit = 4096;
    let server = TestApp::spawn_adjusted(&db, &common::example_dirs()[0], 0, true, None, |s| {
        s.max_response_bytes = limit
    })
    .await;
    // The whole schema is far over 4 KB; a count is far under.
    let big = server
        .graphql(
            "{ __schema { types { name description fields { name description } } } }",
            json!({}),
        )
        .await;
    assert!(big["data"].is_null(), "{big}");
    assert_eq!(
        big["errors"][0]["extensions"]["code"], "RESPONSE_TOO_LARGE",
        "{big}"
    );
    assert!(
        big["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("over the limit of 4096")
    );
    let small = server.graphql("{ dataset { stores } }", json!({})).await;
    assert!(small["data"]["dataset"]["stores"].is_i64(), "{small}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_every_file_it_names_are_served_under_a_strict_policy() {
    let db = TestDb::new().await;
    let server = TestApp::spawn(&db, &common::example_dirs()[0], 0).await;
    let page = server.get("/").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe"),
        "{policy}"
    );
    let html = page.text().await.unwrap();

    // Every file the page names, and every module those import, is there with its type.
    let mut files: Vec<String> = html
        .split("\"/dashboard/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    let mut seen = 0;
    while seen < files.len() {
        let name = files[seen].clone();
        seen += 1;
        let answer = server.get(&format!("/dashboard/{name}")).await;
        assert_eq!(answer.status(), 200, "{name}");
        let kind = answer.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = answer.text().await.unwrap();
        if name.ends_with(".js") {
            assert!(kind.starts_with("text/javascript"), "{name}: {kind}");
            for import in body.split("from './").skip(1) {
                let module = import.split('\'').next().unwrap().to_string();
                if !files.contains(&module) {
                    files.push(module);
                }
            }
        } else {
            assert!(kind.starts_with("text/css"), "{name}: {kind}");
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    assert_eq!(server.get("/dashboard/nothing.js").await.status(), 404);
    server.stop().await;
}
