//! The HTTP API end to end: starts the real `weir serve` binary on a free
//! loopback port and drives it over HTTP — submit (good, bad, clashing), list,
//! alerts from a finished pipeline, delete, health and Prometheus metrics.

use serde_json::Value;
use std::time::{Duration, Instant};

mod support;
use support::server::start_server;

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
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);

    // Health.
    let r = http.get(url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), "ok");

    // Bad rules: 422 with located diagnostics.
    let r = http
        .post(url("/api/v1/pipelines?name=bad.rules"))
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
        .body(GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["pipelines"], serde_json::json!(["api_errors"]));
    let r = http
        .post(url("/api/v1/pipelines"))
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
    let text = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("weir_"), "{text}");
    assert!(text.contains("api_errors"), "{text}");

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
    let r: Value = reqwest::get(format!("{}/api/v1/pipelines", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = pipeline_names(&r);
    assert!(names.contains(&"checkout_errors"), "{r}");
    assert!(names.contains(&"slow_services"), "{r}");
}
