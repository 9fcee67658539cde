//! One million generated events through filter + enrich + tumbling window + alert,
//! with the archive read back: exact window counts, the alerts fired, and every
//! input event in the Parquet archive exactly once.

use crate::support;

use std::collections::BTreeMap;
use weir_connectors::sources::generator::{generate_ndjson, GeneratorConfig};
use weir_connectors::LocalFactory;
use weir_engine::{deploy, AlertManager, DeployOptions, Metrics};

const EVENTS: usize = 1_000_000;
const START: &str = "2026-03-01T00:00:00Z";

fn rules() -> String {
    format!(
        r#"
source app = generator(rate: 0, count: {EVENTS}, start: "{START}", step: 1ms, seed: 7)
  format json fields {{ latency_ms: float, status: int, user_id: string }}
archive app partition by hour roll at 16MB
output windows = file(path: "windows.ndjson")
pipeline checkout_errors {{
  from app
  | where service == "checkout" and severity >= warn
  | set team = lookup("teams.csv", service, "team")
  | window tumbling 1m by service, team {{ errors = count() }}
  | alert "checkout error burst" when errors > 3000 severity critical labels {{ runbook: "rb-1" }}
  | to windows
}}
"#
    )
}

/// Error counts per minute, computed from the raw events without the engine.
fn expected_counts() -> BTreeMap<String, u64> {
    let cfg = GeneratorConfig {
        start_us: Some(
            chrono::DateTime::parse_from_rfc3339(START)
                .map(|t| t.timestamp_micros())
                .unwrap_or_default(),
        ),
        step_us: 1000,
        seed: 7,
        ..Default::default()
    };
    let data = generate_ndjson(cfg, EVENTS);
    let mut counts = BTreeMap::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        let sev = v["severity"].as_str().unwrap_or("");
        if v["service"] == "checkout" && matches!(sev, "WARN" | "ERROR" | "FATAL") {
            let ts = v["timestamp"].as_str().unwrap_or("");
            // "2026-03-01T00:07:12.345Z" -> minute start.
            let minute = format!("{}:00Z", &ts[..16]);
            *counts.entry(minute).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_million_events_windows_alerts_and_archive() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("teams.csv"),
        "service,team\ncheckout,payments-team\nsearch,discovery\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let program = weir_dsl::compile(&rules()).unwrap_or_else(|e| panic!("{e:?}"));
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
    let alerts = AlertManager::in_memory();
    let factory = LocalFactory::in_folder(dir.path(), metrics.clone());
    let deployment = deploy(
        &program,
        &factory,
        alerts.clone(),
        &metrics,
        DeployOptions {
            base_dir: dir.path().to_path_buf(),
            idle_advance: false,
            state: None,
            project: false,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    deployment.wait().await.unwrap_or_else(|e| panic!("{e}"));

    // Window results: exactly the independently computed counts.
    let expected = expected_counts();
    let text = std::fs::read_to_string(dir.path().join("windows.ndjson")).unwrap_or_default();
    let mut got = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["team"], "payments-team");
        assert_eq!(v["service"], "checkout");
        let start = v["window_start"].as_str().unwrap_or_default().to_string();
        got.insert(start, v["errors"].as_u64().unwrap_or(0));
    }
    assert_eq!(got.len(), 17, "1,000,000 events 1ms apart span 17 minutes");
    assert_eq!(got, expected);

    // Alerts: the burst minutes (every 5 minutes), and only those.
    let want: Vec<&String> = expected
        .iter()
        .filter(|(_, &n)| n > 3000)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(want.len(), 4, "{expected:?}");
    // Each burst minute fires (and the quiet minute after it resolves).
    let mut fired: Vec<weir_engine::Alert> = alerts
        .history(1000)
        .into_iter()
        .filter(|e| e.event == "firing")
        .map(|e| (*e.alert).clone())
        .collect();
    fired.sort_by(|a, b| a.window_start.cmp(&b.window_start));
    let fired_starts: Vec<&String> = fired.iter().map(|a| &a.window_start).collect();
    assert_eq!(fired_starts, want);
    for a in &fired {
        assert_eq!(a.rule, "checkout error burst");
        assert_eq!(a.severity, "critical");
        assert_eq!(
            a.labels.get("service").map(String::as_str),
            Some("checkout")
        );
        assert_eq!(a.labels.get("runbook").map(String::as_str), Some("rb-1"));
        assert_eq!(
            a.values["errors"].as_u64(),
            expected.get(&a.window_start).copied()
        );
    }

    // Archive: every input event exactly once, partitioned by hour.
    let archive = dir.path().join("archive");
    let (rows, files) = support::archived(&archive);
    let offsets: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(offsets.len(), EVENTS);
    assert!(
        offsets.iter().enumerate().all(|(i, &o)| o == i as i64),
        "offsets not 0..N exactly once"
    );
    assert!(
        files >= 2,
        "16MB roll size should give several files, got {files}"
    );
    assert!(archive.join("stream=app/date=2026-03-01/hour=00").is_dir());
    // SQL over the archive counts every event exactly once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "query",
            "SELECT count(*) AS n, count(DISTINCT _offset) AS d, min(_offset) AS lo, max(_offset) AS hi FROM app",
            "--format",
            "json",
            "--archive",
        ])
        .arg(&archive)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let row = &v["rows"][0];
    assert_eq!(row["n"], EVENTS as i64);
    assert_eq!(row["d"], EVENTS as i64);
    assert_eq!(row["lo"], 0);
    assert_eq!(row["hi"], EVENTS as i64 - 1);
    assert!(
        !dir.path().join("deadletter").exists(),
        "no event should be dead-lettered"
    );
}
