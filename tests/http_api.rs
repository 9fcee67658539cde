//! The HTTP API end to end: starts the real `weir serve` binary on a free
//! loopback port and drives it over HTTP — submit (good, bad, clashing), list,
//! alerts from a finished pipeline, delete, health and Prometheus metrics.

use serde_json::Value;
use std::time::{Duration, Instant};

use crate::support;
use support::server::{get_json, start_server, RULES};

/// The names in a `GET /api/v1/pipelines` answer.
fn pipeline_names(list: &Value) -> Vec<&str> {
    list["pipelines"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default()
}

const GOOD: &str = r#"
source gen = generator(rate: 0, count: 20000, start: "2026-01-01T00:00:00Z", step: 10ms, burst_every: 10m)
pipeline api_errors {
  from gen
  | where service == "checkout" and severity >= warn
  | window tumbling 1m by service {
      errors = count()
    }
  | alert "api test burst" when errors > 50 severity critical
}
"#;

const BAD: &str = "source gen = generator(rate: 0)\n\
pipeline broken {\n  from gen\n  | where latency_msx > 5\n}\n";

#[tokio::test]
async fn api_submit_list_alerts_delete_metrics() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let http = server.client();
    let url = |p: &str| format!("{}{p}", server.base);

    // Health.
    let r = http.get(url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), "ok");

    // Bad rules: 422 with located diagnostics.
    let r = http
        .post(url("/api/v1/pipelines?name=bad.rules"))
        .header("content-type", RULES)
        .body(BAD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let d = &body["diagnostics"][0];
    assert_eq!(d["line"], 4, "{body}");
    assert_eq!(d["col"], 11, "{body}");
    assert!(
        d["message"].as_str().unwrap().contains("latency_msx"),
        "{body}"
    );
    assert!(body["text"].as_str().unwrap().contains("bad.rules:4:11"));

    // Good rules: 201 with the pipeline names; the same again: 409.
    let r = http
        .post(url("/api/v1/pipelines?name=good.rules"))
        .header("content-type", RULES)
        .body(GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["pipelines"], serde_json::json!(["api_errors"]));
    let r = http
        .post(url("/api/v1/pipelines"))
        .header("content-type", RULES)
        .body(GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Listed.
    let r: Value = http
        .get(url("/api/v1/pipelines"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = pipeline_names(&r);
    assert!(names.contains(&"api_errors"), "{r}");

    // The finite generator ends, windows flush, and the burst in the first
    // minute raises an alert, readable from the API.
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let r: Value = http
            .get(url("/api/v1/alerts?limit=10"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = r["alerts"].as_array().cloned().unwrap_or_default();
        if !list.is_empty() {
            break list;
        }
        assert!(Instant::now() < deadline, "no alert within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a = &alerts[0];
    assert_eq!(a["rule"], "api test burst", "{a}");
    assert_eq!(a["pipeline"], "api_errors", "{a}");
    assert!(a["values"]["errors"].as_i64().unwrap() > 50, "{a}");

    // Metrics carry the pipeline's counters.
    let text = support::get_text(&http, &url("/metrics")).await;
    assert!(text.contains("weir_"), "{text}");
    assert!(text.contains("api_errors"), "{text}");

    // The listing shows the window's event time: the generator's events
    // span 00:00 to 00:03:20 of its day, one partition.
    let r: Value = http
        .get(url("/api/v1/pipelines"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = r["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "api_errors")
        .cloned()
        .unwrap();
    let w = &p["windows"];
    assert!(
        w["watermark"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-01-01T00:0")),
        "{p}"
    );
    assert_eq!(
        w["partitions_active"].as_i64().unwrap() + w["partitions_idle"].as_i64().unwrap(),
        1,
        "{p}"
    );
    // The one partition's event time: at or past the watermark.
    let part = w["partitions"]["0"]
        .as_str()
        .unwrap_or_else(|| panic!("{p}"));
    assert!(
        part.starts_with("2026-01-01T00:0") && part >= w["watermark"].as_str().unwrap(),
        "{p}"
    );
    assert!(
        w["state_bytes"].is_null(),
        "a generator's windows are not checkpointed: {p}"
    );

    // Delete: 204, then 404.
    let r = http
        .delete(url("/api/v1/pipelines/api_errors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .delete(url("/api/v1/pipelines/api_errors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn demo_pipelines_are_listed() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &["--demo"]);
    let r: Value = server
        .client()
        .get(format!("{}/api/v1/pipelines", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = pipeline_names(&r);
    assert!(names.contains(&"checkout_errors"), "{r}");
    assert!(names.contains(&"slow_services"), "{r}");
}

/// `GET /healthz` answers `ok` within 5 s.
async fn healthy(http: &reqwest::Client, base: &str) {
    let r = http
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz does not answer: {e}"));
    assert_eq!(r.status(), 200);
}

/// Posts SQL to the query API: status and body.
async fn sql(http: &reqwest::Client, base: &str, sql: &str, timeout_ms: u64) -> (u16, Value) {
    let r = http
        .post(format!("{base}/api/v1/query"))
        .json(&serde_json::json!({ "sql": sql, "timeout_ms": timeout_ms }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("query failed to answer: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Everything a hostile or careless client sent in the probe that aborted
/// the server, wrote files or hung it: 10,000-term expressions in rules and
/// SQL, statements that write, a query that eats memory, more queries than
/// allowed at once, idle connections, oversized silences, and notification
/// URLs with secrets. The server refuses each with a clear error and keeps
/// answering `/healthz`.
#[tokio::test]
async fn hostile_requests_are_refused_and_the_server_keeps_answering() {
    let _timing = support::timing().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = support::free_port();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[query]
memory_limit = 67108864
max_concurrent = 1
queue_wait = "300ms"
[http]
header_timeout = "2s"
request_timeout = "3s"
max_connections = 64
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:{closed}/hook/PATHSECRET?token=QUERYSECRET"
[channels.slack]
type = "slack"
url = "http://127.0.0.1:{closed}/services/T0/B0/SLACKSECRET"
"#
        ),
    )
    .unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let base = server.base.clone();
    // Pooled connections are dropped before the server's 2 s header timeout
    // would close them under a request.
    let http = reqwest::Client::builder()
        .default_headers(support::server::auth_headers(&server.token))
        .pool_idle_timeout(Duration::from_millis(1_000))
        .build()
        .unwrap();
    healthy(&http, &base).await;

    // Rules: a 10,000-term `or` chain and 10,000 nested parentheses are
    // refused where the limit is reached.
    for cond in [
        vec!["severity == error"; 10_000].join(" or "),
        format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}true", "not ".repeat(10_000)),
    ] {
        let text = format!(
            "source gen = generator(rate: 0, count: 10)\npipeline deep {{\n  from gen\n  | where {cond}\n}}\n"
        );
        let r = http
            .post(format!("{base}/api/v1/pipelines"))
            .header("content-type", RULES)
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        let d = &body["diagnostics"][0];
        assert_eq!(d["kind"], "too_complex", "{body}");
        assert_eq!(d["line"], 4, "{body}");
        healthy(&http, &base).await;
    }

    // SQL: deep expressions are refused; a long one within the limit runs.
    let terms = |n: usize, op: &str| vec!["1"; n].join(op);
    let (status, body) = sql(
        &http,
        &base,
        &format!("SELECT {} AS n", terms(900, "+")),
        30_000,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["n"], 900, "{body}");
    for q in [
        format!("SELECT {}", terms(10_000, "+")),
        format!("SELECT 1 WHERE {}", vec!["1 = 1"; 10_000].join(" OR ")),
        format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000)),
    ] {
        let (status, body) = sql(&http, &base, &q, 30_000).await;
        assert_eq!(status, 400, "{body}");
        healthy(&http, &base).await;
    }

    // SQL that writes or changes state is refused before it runs.
    let target = dir.path().join("written.csv");
    let t = target.display();
    for q in [
        format!("COPY (SELECT 1 AS a) TO '{t}' STORED AS CSV"),
        format!("EXPLAIN COPY (SELECT 1 AS a) TO '{t}' STORED AS CSV"),
        format!("CREATE EXTERNAL TABLE ext (a INT) STORED AS CSV LOCATION '{t}'"),
        "CREATE TABLE made AS SELECT 1 AS a".to_string(),
        "CREATE VIEW seen AS SELECT 1 AS a".to_string(),
        "CREATE SCHEMA other".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
    ] {
        let (status, body) = sql(&http, &base, &q, 30_000).await;
        assert_eq!(status, 403, "{q}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains("read-only"),
            "{body}"
        );
    }
    for q in [
        "INSERT INTO made VALUES (1)",
        "DROP TABLE made",
        "DELETE FROM made",
        "BEGIN TRANSACTION",
    ] {
        let (status, body) = sql(&http, &base, q, 30_000).await;
        assert!(status == 400 || status == 403, "{q}: {status} {body}");
    }
    assert!(!target.exists(), "a query wrote {t}");
    let (status, body) = sql(&http, &base, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name IN ('made', 'seen', 'ext')", 30_000).await;
    assert_eq!(
        (status, &body["rows"][0]["n"]),
        (200, &Value::from(0)),
        "{body}"
    );

    // A query past the memory limit fails with a clear error; the server
    // stays up.
    let (status, body) = sql(
        &http,
        &base,
        "SELECT count(*) FROM generate_series(1, 20000000) a JOIN generate_series(1, 20000000) b ON a.value = b.value",
        60_000,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("memory"),
        "{body}"
    );
    healthy(&http, &base).await;

    // One query at a time here: a second one waits 300 ms, then is refused.
    let slow = {
        let (http, base) = (http.clone(), base.clone());
        tokio::spawn(async move {
            sql(
                &http,
                &base,
                "SELECT count(*) FROM generate_series(1, 5000000000)",
                // Under the server's 3 s request timeout: the query's own
                // limit answers first.
                1_500,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = sql(&http, &base, "SELECT 1 AS n", 30_000).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 400, "the slow query times out: {body}");
    let (status, _) = sql(&http, &base, "SELECT 1 AS n", 30_000).await;
    assert_eq!(status, 200, "a slot is free again");

    // 200 idle connections, three times the connection limit: they are
    // closed after the header timeout and /healthz keeps answering.
    let addr = base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut half = half;
        half.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        idle.push(half);
    }
    let t = Instant::now();
    let r = http
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz behind idle connections: {e}"));
    assert_eq!(r.status(), 200);
    eprintln!("/healthz behind 201 idle connections: {:?}", t.elapsed());
    tokio::time::sleep(Duration::from_secs(12)).await;
    for (i, c) in idle.iter_mut().enumerate() {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("idle connection {i} still open"))
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{i}: {text}");
    }
    healthy(&http, &base).await;

    // A body that never arrives in full is cut off with 408.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/pipelines HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\ncontent-type: {RULES}\r\ncontent-length: 1000\r\n\r\nsource",
            server.token
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), c.read_to_end(&mut reply))
            .await
            .expect("a half-sent body is cut off")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    }

    // Silences past the limits: 422 with the reason.
    for (body, needle) in [
        (
            serde_json::json!({ "matchers": ["service=a"], "duration": "150000years" }),
            "days",
        ),
        (
            serde_json::json!({ "matchers": vec!["service=a"; 40], "duration": "1h" }),
            "matchers",
        ),
        (
            serde_json::json!({ "matchers": [format!("service={}", "x".repeat(5_000))], "duration": "1h" }),
            "bytes",
        ),
        (
            serde_json::json!({ "matchers": ["service=a"], "duration": "1h", "comment": "c".repeat(100_000) }),
            "comment",
        ),
    ] {
        let r = http
            .post(format!("{base}/api/v1/silences"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }

    // Notifications that fail name their channel's URL without its secrets,
    // in the log and in the alert history.
    let rules = r#"
source gen = generator(rate: 0, count: 20000, start: "2026-01-01T00:00:00Z", step: 10ms, burst_every: 10m)
pipeline leaky {
  from gen
  | where service == "checkout" and severity >= warn
  | window tumbling 1m by service { errors = count() }
  | alert "leaky burst" when errors > 50 severity critical notify [hook, slack]
}
"#;
    let r = http
        .post(format!("{base}/api/v1/pipelines"))
        .header("content-type", RULES)
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    let history = loop {
        let text = http
            .get(format!("{base}/api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.matches("\"failed\"").count() >= 2 {
            break text;
        }
        assert!(Instant::now() < deadline, "no failed notifications: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(history.contains("127.0.0.1"), "{history}");
    for secret in ["PATHSECRET", "QUERYSECRET", "SLACKSECRET"] {
        assert!(!history.contains(secret), "{secret} in {history}");
        assert!(!server.log_text().contains(secret), "{secret} in the log");
    }
    healthy(&http, &base).await;
}

/// Deleting the last pipeline of a submitted text stops its sources at
/// once: an `http` source frees its port. Deleted pipelines leave the list.
#[tokio::test]
async fn deleting_a_pipeline_releases_its_source_and_leaves_the_list() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &[]);
    let http = server.client();
    let port = support::free_port();
    let rules = format!(
        "source web = http(listen: \"127.0.0.1:{port}\") format json\n\
         pipeline web_errors {{\n  from web\n  | where severity >= error\n  | window tumbling 1m by service {{ n = count() }}\n}}\n"
    );
    let r = http
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    support::wait_for_port(port);
    let r = http
        .delete(format!("{}/api/v1/pipelines/web_errors", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} still bound after the delete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list: Value = http
            .get(format!("{}/api/v1/pipelines", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !pipeline_names(&list).contains(&"web_errors") {
            break;
        }
        assert!(Instant::now() < deadline, "still listed: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET /readyz` until it answers `status` (30 s at most); its body.
async fn readyz_until(http: &reqwest::Client, base: &str, status: u16, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        if r.status().as_u16() == status {
            return r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An archive that cannot write makes `/readyz` answer 503 with its name
/// (and `weir_sink_healthy` 0) while `/healthz` stays ok; once it writes
/// again, ready again, and nothing was lost. A source that failed is named
/// too, until its pipeline is deleted.
#[tokio::test]
async fn readiness_follows_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    // Inside the data folder: rules from the API may only write there.
    let archive = dir.path().join("data").join("elsewhere");
    std::fs::create_dir_all(&archive).unwrap();
    // The stream's folder is a file: every upload fails until it is gone.
    let blocker = archive.join("stream=gen");
    std::fs::write(&blocker, "not a folder").unwrap();
    let server = start_server(&dir.path().join("data"), &[]);
    let http = server.client();
    let rules = format!(
        "source gen = generator(rate: 0, count: 1000, start: \"2026-01-01T00:00:00Z\") format json\n\
         archive gen to \"{}\" roll every 1s\n",
        archive.display()
    );
    let r = http
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let body: Value =
        serde_json::from_str(&readyz_until(&http, &server.base, 503, "never not-ready").await)
            .unwrap();
    assert_eq!(body["failing_sinks"][0], "archive:gen", "{body}");
    healthy(&http, &server.base).await;
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("weir_sink_healthy{sink=\"archive:gen\"} 0"),
        "{metrics}"
    );

    std::fs::remove_file(&blocker).unwrap();
    readyz_until(&http, &server.base, 200, "not ready again").await;
    let (rows, _) = support::archived(&archive);
    assert_eq!(rows.len(), 1000);

    // A source that fails makes the server not ready until its pipeline is
    // deleted.
    let rules = format!(
        "source missing = file(path: \"{}\") format json\npipeline reads_nothing {{\n  from missing\n  | to stdout\n}}\n",
        dir.path().join("data").join("no-such.log").display()
    );
    let r = http
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = serde_json::from_str(
        &readyz_until(&http, &server.base, 503, "a failed source is not reported").await,
    )
    .unwrap();
    assert_eq!(body["failing_sources"][0], "missing", "{body}");
    let r = http
        .delete(format!("{}/api/v1/pipelines/reads_nothing", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A pipeline stopped by an error (here an output whose folder is a file)
/// says why in the list and counts in `weir_pipeline_errors_total`; the
/// server keeps answering.
#[tokio::test]
async fn a_pipeline_stopped_by_an_error_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file, not a folder").unwrap();
    let port = support::free_port();
    std::fs::write(
        dir.path().join("fails.rules"),
        format!(
            "source web = http(listen: \"127.0.0.1:{port}\") format json\n\
             output out = file(path: \"{}\")\n\
             pipeline copies {{\n  from web\n  | to out\n}}\n",
            blocker.join("out.ndjson").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("weir.toml"), "rules = [\"fails.rules\"]\n").unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("weir.toml");
    let server = start_server(&data, &["--config", config.to_str().unwrap()]);
    let http = server.client();
    support::wait_for_port(port);
    let r = http
        .post(format!("http://127.0.0.1:{port}/"))
        .body("{\"message\":\"hello\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let list = get_json(&http, &format!("{}/api/v1/pipelines", server.base)).await;
        let p = list["pipelines"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "copies").cloned());
        if let Some(p) = p.filter(|p| p["error"].is_string()) {
            break p;
        }
        assert!(Instant::now() < deadline, "no error listed: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed["running"], false, "{listed}");
    let error = listed["error"].as_str().unwrap();
    assert!(
        error.contains("blocker"),
        "the error names what failed: {error}"
    );
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("weir_pipeline_errors_total{pipeline=\"copies\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("pipeline_errors"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    healthy(&http, &server.base).await;
}
