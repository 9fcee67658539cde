//! The conventions people expect at the edges of the binary: `weir check
//! --format json` for editors and CI, `./weir.toml` found without
//! `--config`, `--log-format json`, `NO_COLOR`, JSON errors from every API
//! endpoint, and `/metrics` that passes `promtool check metrics` with
//! `weir_build_info` and the process metrics.

use crate::support;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::server::start_server;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_reports_json_with_located_diagnostics() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(root())
        .args([
            "check",
            "--format",
            "json",
            "rules/tests/broken_semantics.rules",
            "rules/examples/demo.rules",
            "rules/does-not-exist.rules",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = report.as_array().unwrap();
    assert_eq!(files.len(), 3, "{report:#}");
    let broken = &files[0];
    assert_eq!(broken["ok"], false);
    let unknown = broken["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "unknown_field")
        .unwrap_or_else(|| panic!("{broken:#}"));
    assert_eq!(unknown["line"], 18);
    assert_eq!(unknown["col"], 11);
    assert_eq!(unknown["hint"], "did you mean `severity`?");
    assert_eq!(files[1]["ok"], true, "{:#}", files[1]);
    assert!(files[1]["pipelines"].as_u64().unwrap() >= 1);
    assert_eq!(files[2]["ok"], false);
    assert!(files[2]["error"].as_str().unwrap().contains("cannot read"));
}

/// `weir serve` with no `--config` reads `./weir.toml` (relative paths in it
/// are relative to it), says so, and logs JSON objects with
/// `--log-format json`, never colour codes.
#[test]
fn serve_finds_weir_toml_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    std::fs::write(
        dir.path().join("weir.toml"),
        format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"from-toml\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(dir.path())
        .args(["--log-format", "json", "serve"])
        .env_remove("WEIR_CONFIG")
        .env_remove("WEIR_DATA_DIR")
        .env_remove("WEIR_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    support::wait_for_port(port);
    let health = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(health.is_ok());
    assert!(dir.path().join("from-toml").is_dir());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let lines = lines.join().unwrap();
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let read = events
        .iter()
        .find(|e| e["message"] == "configuration read")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(read["file"], "weir.toml");
    assert_eq!(read["level"], "INFO");
    let serving = events
        .iter()
        .find(|e| e["message"] == "serving")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(serving["address"], format!("http://127.0.0.1:{port}"));
    assert!(events.iter().any(|e| e["message"] == "stopped"));
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')));
}

/// Text logs carry no colour codes when NO_COLOR is set, even on a terminal
/// (`script` gives the child one).
#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    let run = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec"])
            .arg(format!(
                "{} check rules/does-not-exist.rules -v; {} query --archive /nonexistent 'SELECT 1' -v",
                env!("CARGO_BIN_EXE_weir"),
                env!("CARGO_BIN_EXE_weir")
            ))
            .arg("/dev/null")
            .current_dir(root())
            .env("TERM", "xterm");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run(false);
    assert!(
        coloured.contains('\u{1b}'),
        "a terminal gets colour: {coloured}"
    );
    let plain = run(true);
    assert!(!plain.contains('\u{1b}'), "NO_COLOR: {plain:?}");
    assert!(plain.contains("cannot read"), "{plain}");
}

/// Every API error is JSON with `error`, whatever failed: a body that is not
/// JSON, the wrong shape, an unknown id, a refused statement.
#[tokio::test]
async fn api_errors_are_json_and_metrics_pass_promtool() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &["--demo"]);
    let http = server.client();
    let url = |p: &str| format!("{}{p}", server.base);
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            http.post(url("/api/v1/silences"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (http.post(url("/api/v1/silences")).body("matchers=a"), 415),
        (
            http.post(url("/api/v1/silences"))
                .json(&serde_json::json!({ "matchers": 3 })),
            422,
        ),
        (
            http.post(url("/api/v1/silences"))
                .json(&serde_json::json!({ "matchers": ["a=~("], "duration": "1h" })),
            400,
        ),
        (http.delete(url("/api/v1/silences/nope")), 404),
        (http.delete(url("/api/v1/pipelines/nope")), 404),
        (
            http.post(url("/api/v1/query"))
                .json(&serde_json::json!({ "sql": "COPY (SELECT 1) TO '/tmp/x.csv'" })),
            403,
        ),
        (
            http.post(url("/api/v1/query"))
                .json(&serde_json::json!({ "sql": "SELECT FROM WHERE" })),
            400,
        ),
    ];
    for (req, want) in cases {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = r.text().await.unwrap();
        assert_eq!(status, want, "{text}");
        assert!(ctype.starts_with("application/json"), "{ctype}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{text}"
        );
    }

    // Metrics once the demo has moved some events.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = support::get_text(&http, &url("/metrics")).await;
        if text.contains("weir_archive_files_total") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        text.contains(&format!(
            "weir_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    for m in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "weir_source_events_total",
    ] {
        assert!(text.contains(m), "{m} missing:\n{text}");
    }
    support::promtool_check(&text);
}

/// A source that cannot start is reported once, with its reason, and `weir
/// run` exits non-zero.
#[test]
fn a_failed_source_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("missing.rules");
    std::fs::write(
        &rules,
        "source s = file(path: \"/nonexistent/weir-test.log\")\npipeline p { from s | to stdout }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--quiet", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg(&rules)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        err.matches("cannot open /nonexistent/weir-test.log")
            .count(),
        1,
        "{err}"
    );
}
