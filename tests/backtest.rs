//! `weir backtest`: the same events run live (a file source, archived) and
//! then backtested from their archive give the same window rows and alert
//! transitions.

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const RULES: &str = r#"
source app = file(path: "events.jsonl") format json fields { latency_ms: float }
archive app
output rows = file(path: "rows.jsonl")

pipeline per_minute {
  from app
  | window tumbling 1m by service lateness 10s { n = count(), p90 = quantile(latency_ms, 0.9) }
  | to rows
}

pipeline bursts {
  from app
  | where severity >= error
  | window tumbling 1m by service { errors = count() }
  | alert "burst" when errors > 20 severity critical
}
"#;

/// An event a second for ten minutes from two services; `b` has error
/// bursts in minutes 2 and 6, a few events arrive out of order, and a few
/// too late (90 s behind): live drops those, and so must a backtest (read
/// in event-time order they would be counted).
fn events() -> String {
    let mut lines = Vec::new();
    for i in 0..1200u32 {
        let mut t = i / 2;
        if i % 97 == 0 && t >= 5 {
            t -= 5; // late, within the lateness
        }
        if i % 150 == 75 && t >= 120 {
            t -= 90; // too late for its window
        }
        let service = if i % 2 == 0 { "a" } else { "b" };
        let burst = service == "b" && ((120..180).contains(&t) || (360..420).contains(&t));
        let severity = if burst { "error" } else { "info" };
        lines.push(format!(
            "{{\"timestamp\":\"2026-03-01T10:{:02}:{:02}Z\",\"service\":\"{service}\",\"severity\":\"{severity}\",\"latency_ms\":{}}}",
            t / 60,
            t % 60,
            (i * 37) % 500
        ));
    }
    lines.join("\n") + "\n"
}

fn transitions(lines: impl Iterator<Item = Value>) -> BTreeSet<String> {
    lines
        .filter(|v| matches!(v["event"].as_str(), Some("firing" | "resolved" | "pending")))
        .map(|v| {
            let a = if v["alert"].is_object() {
                &v["alert"]
            } else {
                &v
            };
            format!(
                "{} {} {} {}",
                v["event"], a["rule"], a["labels"]["service"], a["window_start"]
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_of_the_archive_equals_the_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("events.jsonl"), events()).unwrap();
    let rules = dir.path().join("live.rules");
    std::fs::write(&rules, RULES).unwrap();

    let live = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--json", "--quiet", "--data-dir"])
        .arg(&data)
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let live_alerts = transitions(
        String::from_utf8_lossy(&live.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap()),
    );
    let mut live_rows: Vec<String> = std::fs::read_to_string(dir.path().join("rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            // A backtest reports no sample events (it reads only the
            // columns the pipelines use).
            let mut v = serde_json::from_str::<Value>(l).unwrap();
            v.as_object_mut().unwrap().remove("_evidence");
            v.to_string()
        })
        .collect();
    live_rows.sort();
    assert!(live_rows.len() >= 20, "{live_rows:?}");
    assert!(!live_alerts.is_empty(), "the bursts fire live");
    let live_summary = String::from_utf8_lossy(&live.stderr);
    let dropped: u64 = live_summary
        .split(" late events dropped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "events too late live: {live_summary}");

    let report = dir.path().join("backtest.ndjson");
    let back = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "backtest",
            "--from",
            "2026-03-01T09:00:00Z",
            "--to",
            "2026-03-01T11:00:00Z",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--report")
        .arg(&report)
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let stderr = String::from_utf8_lossy(&back.stderr);
    assert!(stderr.contains("1200 archived events"), "{stderr}");
    let lines: Vec<Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        String::from_utf8_lossy(&back.stdout).lines().count()
    );
    let mut rows: Vec<String> = lines
        .iter()
        .filter(|v| v["kind"] == "window" && v["pipeline"] == "per_minute")
        .map(|v| {
            let mut v = v.clone();
            let o = v.as_object_mut().unwrap();
            o.remove("kind");
            o.remove("pipeline");
            v.to_string()
        })
        .collect();
    rows.sort();
    assert_eq!(rows, live_rows, "the same window rows");
    let alerts = transitions(lines.into_iter().filter(|v| v["kind"] == "alert"));
    assert_eq!(alerts, live_alerts, "the same alert transitions");

    // The same through the API; a caller scoped to service `a` backtests
    // only a's events: no burst of b, no row of b.
    let server = crate::support::server::start_server(&data, &[]);
    let scoped = crate::support::server::create_token(
        &data,
        "only-a",
        "viewer",
        &["--scope", "service=\"a\""],
    );
    let url = format!(
        "{}/api/v1/backtest?from=2026-03-01T09:00:00Z&to=2026-03-01T11:00:00Z",
        server.base
    );
    let ask = |client: reqwest::Client| {
        let url = url.clone();
        async move {
            let r = client
                .post(url)
                .header("content-type", crate::support::server::RULES)
                .body(RULES)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/x-ndjson");
            r.text()
                .await
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<Value>>()
        }
    };
    let all = ask(server.client()).await;
    let mut api_rows: Vec<String> = all
        .iter()
        .filter(|v| v["kind"] == "window" && v["pipeline"] == "per_minute")
        .map(|v| {
            let mut v = v.clone();
            let o = v.as_object_mut().unwrap();
            o.remove("kind");
            o.remove("pipeline");
            v.to_string()
        })
        .collect();
    api_rows.sort();
    assert_eq!(api_rows, rows, "the API's backtest equals the CLI's");
    let only_a = ask(crate::support::server::client_with(&scoped)).await;
    assert!(only_a.iter().any(|v| v["kind"] == "window"));
    for v in &only_a {
        assert_ne!(v["service"], "b", "{v}");
        assert_ne!(v["labels"]["service"], "b", "{v}");
    }
}
