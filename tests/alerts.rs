//! Alerts end to end against real peers on loopback: `weir serve` with an HTTP
//! source, a window and an alert rule notifying four channels — a Slack-style
//! and an HMAC-signed webhook receiver (in this test), email through aiosmtpd
//! (PyPI, installed by scripts/services/install-python-tools.sh) and Prometheus
//! Alertmanager (Debian's prometheus-alertmanager, installed by scripts/test.sh).
//!
//! A burst of errors fires the alert once (dedup while it keeps matching), a
//! reminder comes after the repeat interval, the end of the burst sends
//! `resolved` everywhere, a silence holds back another key's notifications,
//! and a restart keeps the firing alert without notifying it again.

use crate::support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::server::{get_json, start_server, Server};
use support::{free_port, wait_for_port};

const SECRET: &str = "test-hmac-secret";

/// What the in-test receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    path: String,
    pub(crate) body: Value,
    /// Wall-clock microseconds at arrival.
    at_us: i64,
    signature_ok: Option<bool>,
    team_header: Option<String>,
}

pub(crate) type Inbox = Arc<Mutex<Vec<Received>>>;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn receive(
    State((inbox, path)): State<(Inbox, &'static str)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at_us = now_us();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let signature_ok = header("x-weir-signature").map(|sig| {
        let ts = header("x-weir-timestamp").unwrap_or_default();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        let mut msg = ts.into_bytes();
        msg.push(b'.');
        msg.extend_from_slice(&body);
        let hex = sig.strip_prefix("sha256=").unwrap_or("");
        let raw: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        ring::hmac::verify(&key, &msg, &raw).is_ok()
    });
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inbox.lock().unwrap().push(Received {
        path: path.to_string(),
        body,
        at_us,
        signature_ok,
        team_header: header("x-team"),
    });
    StatusCode::OK
}

pub(crate) async fn start_receiver() -> (u16, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .route("/slack", post(receive).with_state((inbox.clone(), "slack")))
        .route("/hook", post(receive).with_state((inbox.clone(), "hook")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, inbox)
}

use support::Reaped as Peer;

fn start_alertmanager(dir: &Path) -> (u16, Peer) {
    let bin = "prometheus-alertmanager";
    assert!(
        Command::new(bin).arg("--version").output().is_ok(),
        "{bin} is not installed: run scripts/test.sh (it installs the Debian package)"
    );
    let port = free_port();
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager starts");
    let peer = Peer(child);
    wait_for_port(port);
    (port, peer)
}

fn start_smtp(maildir: &Path) -> (u16, Peer) {
    let bin = std::env::var("WEIR_PYTHON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/weir/venv/bin")
        });
    let python = bin.join("python");
    assert!(
        python.is_file(),
        "the test venv is missing at {}: run scripts/services/install-python-tools.sh (scripts/test.sh does)",
        bin.display()
    );
    let port = free_port();
    let child = Command::new(python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aiosmtpd starts");
    let peer = Peer(child);
    wait_for_port(port);
    (port, peer)
}

/// Every message in the maildir, as text.
fn mails(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(maildir.join(sub)) {
            for e in rd.flatten() {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// The four channels of these tests, `hook_extra` added to the webhook's table.
fn channels(recv_port: u16, smtp_port: u16, am_port: u16, hook_extra: &str) -> String {
    format!(
        r#"[channels.slack]
type = "slack"
url = "http://127.0.0.1:{recv_port}/slack"
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:{recv_port}/hook"
{hook_extra}[channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Weir <weir@example.com>"
to = ["oncall@example.com"]
[channels.am]
type = "alertmanager"
url = "http://127.0.0.1:{am_port}"
resend_every = "1s"
"#
    )
}

async fn post_events(server: &Server, port: u16, service: &str, n: usize) {
    post_env_events(server, port, service, "production", 0, n).await
}

async fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn of(inbox: &Inbox, path: &str, status: &str, repeat: Option<bool>) -> Vec<Received> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .filter(|r| {
            let st = if path == "hook" {
                r.body["status"].as_str().unwrap_or("")
            } else {
                r.body["text"]
                    .as_str()
                    .map(|t| {
                        if t.starts_with("[RESOLVED") {
                            "resolved"
                        } else {
                            "firing"
                        }
                    })
                    .unwrap_or("")
            };
            st == status && repeat.is_none_or(|rp| r.body["repeat"].as_bool() == Some(rp))
        })
        .cloned()
        .collect()
}

async fn am_alerts(port: u16) -> Vec<Value> {
    reqwest::get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_dedup_repeat_resolve_silence_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (recv_port, inbox) = start_receiver().await;
    let (am_port, _am) = start_alertmanager(dir.path());
    let maildir = dir.path().join("mail");
    let (smtp_port, _smtp) = start_smtp(&maildir);
    let src_port = free_port();
    std::fs::write(
        dir.path().join("alerts.rules"),
        format!(
            r#"
source app = http(listen: "127.0.0.1:{src_port}") format json
pipeline errors {{
  from app
  | where severity >= error
  | window tumbling 2s by service {{ errors = count() }}
  | alert "error burst" when errors >= 5 severity critical
      labels {{ team: "payments" }}
      annotations {{ summary: "{{{{errors}}}} errors in {{{{service}}}}" }}
      notify [slack, hook, mail, am]
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("weir.toml"),
        format!(
            r#"
rules = ["alerts.rules"]
[alerting]
repeat_interval = "4s"
{}"#,
            channels(
                recv_port,
                smtp_port,
                am_port,
                "hmac_secret_env = \"WEIR_TEST_HMAC\"\nheaders = { \"X-Team\" = \"payments\" }\n"
            )
        ),
    )
    .unwrap();
    std::env::set_var("WEIR_TEST_HMAC", SECRET);
    let data = dir.path().join("data");
    let config = dir.path().join("weir.toml");
    let server = start_server(&data, &["--config", config.to_str().unwrap()]);
    wait_for_port(src_port);

    // A burst: errors in checkout for ~10 s (windows of 2 s keep matching).
    let burst_end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < burst_end {
        post_events(&server, src_port, "checkout", 10).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Fired once on every channel, signed, with the summary filled in.
    let fired = until("the firing webhook", 10, || {
        let v = of(&inbox, "hook", "firing", Some(false));
        (!v.is_empty()).then_some(v)
    })
    .await;
    let first = &fired[0];
    assert_eq!(first.signature_ok, Some(true), "HMAC signature verifies");
    assert_eq!(first.team_header.as_deref(), Some("payments"));
    let alert = &first.body["alerts"][0];
    assert_eq!(alert["labels"]["service"], "checkout", "{alert}");
    assert_eq!(alert["labels"]["team"], "payments");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("errors in checkout"),
        "{alert}"
    );
    let raised =
        chrono::DateTime::parse_from_rfc3339(first.body["raised_at"].as_str().unwrap()).unwrap();
    let latency_ms = (first.at_us - raised.timestamp_micros()) as f64 / 1000.0;
    eprintln!("window evaluation → webhook received: {latency_ms:.1} ms");
    let slack = until("the Slack message", 10, || {
        let v = of(&inbox, "slack", "firing", None);
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert!(
        slack[0].body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("[FIRING:1] error burst"),
        "{:?}",
        slack[0].body
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = am_alerts(am_port).await;
        if list.iter().any(|a| {
            a["labels"]["alertname"] == "error burst" && a["labels"]["service"] == "checkout"
        }) {
            let a = list
                .iter()
                .find(|a| a["labels"]["service"] == "checkout")
                .unwrap();
            assert_eq!(a["labels"]["severity"], "critical");
            assert_eq!(a["status"]["state"], "active", "{a}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never showed the alert: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mail = until("the firing email", 15, || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("Subject: [FIRING:1] error burst"))
    })
    .await;
    assert!(mail.contains("To: oncall@example.com"), "{mail}");
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "multipart body: {mail}"
    );

    // The burst kept matching for several windows: still exactly one firing
    // notification (dedup); a reminder came after the 4 s repeat interval.
    assert_eq!(of(&inbox, "hook", "firing", Some(false)).len(), 1);
    let repeats = until("the repeat notification", 10, || {
        let v = of(&inbox, "hook", "firing", Some(true));
        (!v.is_empty()).then_some(v)
    })
    .await;
    let gap_s = (repeats[0].at_us - first.at_us) as f64 / 1e6;
    assert!(
        gap_s >= 3.9,
        "repeat after {gap_s:.1} s, before the 4 s interval"
    );

    // The burst is over: resolved on every channel.
    let resolved = until("the resolved webhook", 15, || {
        let v = of(&inbox, "hook", "resolved", None);
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(
        resolved[0].body["alerts"][0]["labels"]["service"],
        "checkout"
    );
    assert!(resolved[0].body["alerts"][0]["resolved_at"].is_string());
    until("the resolved Slack message", 10, || {
        (!of(&inbox, "slack", "resolved", None).is_empty()).then_some(())
    })
    .await;
    until("the resolved email", 15, || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("Subject: [RESOLVED:1] error burst"))
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while am_alerts(am_port)
        .await
        .iter()
        .any(|a| a["labels"]["service"] == "checkout")
    {
        assert!(
            Instant::now() < deadline,
            "Alertmanager still shows the resolved alert"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        of(&inbox, "hook", "firing", Some(false)).len(),
        1,
        "still one firing notification"
    );

    // A silence on search: the alert fires (in the history) but no channel hears of it.
    let http = server.client();
    let r = http
        .post(format!("{}/api/v1/silences", server.base))
        .json(&serde_json::json!({ "matchers": ["service=search"], "duration": "1h", "comment": "deploy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let silence: Value = r.json().await.unwrap();
    let bad = http
        .post(format!("{}/api/v1/silences", server.base))
        .json(&serde_json::json!({ "matchers": ["service"], "duration": "1h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    for _ in 0..12 {
        post_events(&server, src_port, "search", 10).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let history = loop {
        let v: Value = http
            .get(format!("{}/api/v1/alerts?limit=1000", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let h = v["history"].as_array().cloned().unwrap_or_default();
        if h.iter()
            .any(|e| e["event"] == "silenced" && e["alert"]["labels"]["service"] == "search")
        {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "no silenced entry in the history: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(history
        .iter()
        .any(|e| e["event"] == "firing" && e["alert"]["labels"]["service"] == "search"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        inbox
            .lock()
            .unwrap()
            .iter()
            .all(|r| !r.body.to_string().contains("\"service\":\"search\"")),
        "a silenced alert reached a channel"
    );
    let listed: Value = http
        .get(format!("{}/api/v1/silences", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["silences"][0]["id"], silence["id"]);
    assert_eq!(listed["silences"][0]["status"], "active");
    let metrics = support::get_text(&http, &format!("{}/metrics", server.base)).await;
    for want in [
        "weir_notifications_total{channel=\"hook\",result=\"sent\"}",
        "weir_notifications_total{channel=\"hook\",result=\"silenced\"}",
        "weir_alert_transitions_total{rule=\"error burst\",state=\"resolved\"} 1",
        "weir_alerts_firing{rule=\"error burst\",severity=\"critical\"} 1",
        "weir_notification_latency_seconds_count",
    ] {
        assert!(metrics.contains(want), "missing {want} in /metrics");
    }

    // Restart while search is firing: the alert is still firing afterwards and
    // no channel is told about it again.
    let before = inbox.lock().unwrap().len();
    server.terminate();
    let server = start_server(&data, &["--config", config.to_str().unwrap()]);
    wait_for_port(src_port);
    let v: Value = http
        .get(format!("{}/api/v1/alerts", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let open = v["alerts"].as_array().unwrap();
    assert!(
        open.iter()
            .any(|a| a["labels"]["service"] == "search" && a["state"] == "firing"),
        "the firing alert survived the restart: {v}"
    );
    for _ in 0..8 {
        post_events(&server, src_port, "search", 10).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Expire the silence: the still-firing alert is now notified, once.
    let r = http
        .delete(format!(
            "{}/api/v1/silences/{}",
            server.base,
            silence["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    until("the notification after the silence ended", 10, || {
        inbox
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.path == "hook" && r.body.to_string().contains("\"service\":\"search\""))
            .then_some(())
    })
    .await;
    let after: Vec<Received> = inbox.lock().unwrap()[before..].to_vec();
    assert!(
        after
            .iter()
            .all(|r| !r.body.to_string().contains("\"service\":\"checkout\"")),
        "nothing about the resolved checkout alert after the restart"
    );
    drop(server);
}

/// Posts `n` error events of `service` in `environment`, numbered from `first`.
async fn post_env_events(
    server: &Server,
    port: u16,
    service: &str,
    environment: &str,
    first: usize,
    n: usize,
) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body: String = (first..first + n)
        .map(|i| {
            format!(
                "{{\"timestamp\":\"{now}\",\"service\":\"{service}\",\"environment\":\"{environment}\",\"severity\":\"error\",\"message\":\"boom {service} {i}\"}}\n"
            )
        })
        .collect();
    let r = server
        .client()
        .post(format!("http://127.0.0.1:{port}/"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// Every alert carries its evidence — sample events of its key and window,
/// the SQL that reproduces the window, a console link — on each channel and
/// in the API; the SQL, run through the API, gives the window's count; a
/// scoped caller sees only the samples inside its scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_carry_their_evidence_on_every_channel_and_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (recv_port, inbox) = start_receiver().await;
    let (am_port, _am) = start_alertmanager(dir.path());
    let maildir = dir.path().join("mail");
    let (smtp_port, _smtp) = start_smtp(&maildir);
    let src_port = free_port();
    std::fs::write(
        dir.path().join("alerts.rules"),
        format!(
            r#"
source app = http(listen: "127.0.0.1:{src_port}") format json
archive app
pipeline errors {{
  from app
  | where severity >= error
  | window tumbling 3s by environment {{ errors = count(), services = count_distinct(service) }}
  | alert "error burst" when errors >= 20 severity critical evidence 4
      notify [slack, hook, mail, am]
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("weir.toml"),
        format!(
            r#"
rules = ["alerts.rules"]
[alerting]
console_url = "https://weir.example.com/"
{}"#,
            channels(recv_port, smtp_port, am_port, "")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("weir.toml");
    let server = start_server(&data, &["--config", config.to_str().unwrap()]);
    wait_for_port(src_port);

    // Production: checkout and search errors, enough to fire; staging: a few
    // (another key, below the threshold) whose events must not be samples.
    let mut n = 0;
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        post_env_events(&server, src_port, "checkout", "production", n, 10).await;
        post_env_events(&server, src_port, "search", "production", n, 10).await;
        post_env_events(&server, src_port, "checkout", "staging", n, 1).await;
        n += 10;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let fired = until("the firing webhook", 15, || {
        let v = of(&inbox, "hook", "firing", Some(false));
        (!v.is_empty()).then_some(v)
    })
    .await;
    let alert = fired[0].body["alerts"][0].clone();
    assert_eq!(alert["labels"]["environment"], "production", "{alert}");
    let evidence = &alert["evidence"];
    let samples = evidence["samples"].as_array().cloned().unwrap_or_default();
    assert_eq!(samples.len(), 4, "evidence 4: {evidence}");
    let bound = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(alert[k].as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    let (start, end) = (bound("window_start"), bound("window_end"));
    for s in &samples {
        assert_eq!(
            s["environment"], "production",
            "a sample of another key: {s}"
        );
        assert!(s["message"].as_str().unwrap().starts_with("boom "), "{s}");
        assert!(s.get("_raw").is_none(), "{s}");
        let t = chrono::DateTime::parse_from_rfc3339(s["timestamp"].as_str().unwrap())
            .unwrap()
            .timestamp_micros();
        assert!(t >= start && t < end, "a sample outside its window: {s}");
    }
    let sql = evidence["sql"].as_str().unwrap().to_string();
    assert!(sql.contains("\"environment\" = 'production'"), "{sql}");
    let url = evidence["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://weir.example.com/#/search?stream=app&range=abs&start="),
        "{url}"
    );

    // The query reproduces the window: its count, once the archive has
    // committed the window's events (at most 5 s behind).
    let errors = alert["values"]["errors"].as_i64().unwrap();
    let http = server.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = http
            .post(format!("{}/api/v1/query", server.base))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["rows"][0]["errors"].as_i64() == Some(errors) {
            assert_eq!(v["rows"][0]["services"], alert["values"]["services"], "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the evidence query never gave the window's {errors} errors: {v}\n{sql}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Slack, email and Alertmanager show the samples and the query.
    let slack = until("the Slack message", 10, || {
        let v = of(&inbox, "slack", "firing", None);
        (!v.is_empty()).then_some(v)
    })
    .await;
    let text = slack[0].body["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.contains("```") && text.contains("boom ") && text.contains("SELECT "),
        "{text}"
    );
    assert!(
        text.contains("|Search the window in the console>"),
        "{text}"
    );
    let mail = until("the firing email", 15, || {
        mails(&maildir)
            .into_iter()
            .find(|m| m.contains("Subject: [FIRING:1] error burst"))
    })
    .await;
    let flat = mail.replace("=\r\n", "").replace("=\n", "");
    assert!(
        flat.contains("sample events (4)")
            && flat.contains("boom ")
            && flat.contains("query: SELECT"),
        "{mail}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = am_alerts(am_port).await;
        if let Some(a) = list
            .iter()
            .find(|a| a["labels"]["environment"] == "production")
        {
            assert_eq!(a["annotations"]["evidence_query"], sql.as_str(), "{a}");
            let lines = a["annotations"]["evidence_samples"].as_str().unwrap_or("");
            assert_eq!(lines.lines().count(), 4, "{a}");
            assert_eq!(a["annotations"]["evidence_url"], url, "{a}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never showed the alert: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The API: everything for an unscoped caller; a caller scoped to
    // checkout (and events without a service) sees the alert, whose labels
    // have no service, with only checkout's samples.
    let fired = |v: &Value| -> Vec<Value> {
        v["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e["event"] == "firing" && e["alert"]["labels"]["environment"] == "production"
            })
            .map(|e| e["alert"].clone())
            .collect()
    };
    let alerts_url = format!("{}/api/v1/alerts", server.base);
    let all = get_json(&http, &alerts_url).await;
    let scoped = crate::support::server::create_token(
        &data,
        "checkout-only",
        "viewer",
        &["--scope", "service=~\"checkout|\""],
    );
    let mine = get_json(&crate::support::server::client_with(&scoped), &alerts_url).await;
    let (all, mine) = (fired(&all), fired(&mine));
    assert_eq!((all.len(), mine.len()), (1, 1), "{all:?} {mine:?}");
    let services = |a: &Value| -> Vec<String> {
        a["evidence"]["samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| s["service"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let everyone = services(&all[0]);
    assert_eq!(everyone.len(), 4);
    assert_eq!(
        services(&mine[0]),
        everyone
            .iter()
            .filter(|s| *s == "checkout")
            .cloned()
            .collect::<Vec<_>>(),
        "the scoped caller sees checkout's samples only"
    );
}

/// Posts bursts of errors for `secs` seconds: `many` of `loud` and `few`
/// of `quiet` every 300 ms.
async fn bursts(server: &Server, port: u16, secs: u64, loud: (&str, usize), quiet: (&str, usize)) {
    let mut n = 0;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if loud.1 > 0 {
            post_env_events(server, port, loud.0, "production", n, loud.1).await;
        }
        post_env_events(server, port, quiet.0, "production", n, quiet.1).await;
        n += 10;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The services of the alerts the webhook was sent as firing.
fn notified_services(inbox: &Inbox) -> Vec<String> {
    of(inbox, "hook", "firing", None)
        .iter()
        .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["labels"]["service"].as_str().map(String::from))
        .collect()
}

/// A shadow of a live pipeline with a lower threshold runs on the same
/// source: its extra alerts are in its report and notify nobody; promoted,
/// it replaces the live pipeline and its alerts notify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_with_a_lower_threshold_reports_extra_alerts_notifies_nothing_and_promotes() {
    let dir = tempfile::tempdir().unwrap();
    let (recv_port, inbox) = start_receiver().await;
    let src_port = free_port();
    let rules = |threshold: u32| {
        format!(
            r#"source app = http(listen: "127.0.0.1:{src_port}") format json
pipeline errors {{
  from app
  | where severity >= error
  | window tumbling 2s by service {{ errors = count() }}
  | alert "error burst" when errors >= {threshold} severity critical notify [hook]
}}
"#
        )
    };
    std::fs::write(dir.path().join("alerts.rules"), rules(20)).unwrap();
    std::fs::write(
        dir.path().join("weir.toml"),
        format!(
            "rules = [\"alerts.rules\"]\n[channels.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{recv_port}/hook\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("weir.toml");
    let server = start_server(&data, &["--config", config.to_str().unwrap()]);
    wait_for_port(src_port);
    let http = server.client();
    let base = server.base.clone();

    // A shadow must be the new version of a running pipeline.
    let r = http
        .post(format!("{base}/api/v1/pipelines?shadow_of=nope"))
        .header("content-type", "application/x-weir-rules")
        .body(rules(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    let r = http
        .post(format!(
            "{base}/api/v1/pipelines?shadow_of=errors&name=errors-v2.rules"
        ))
        .header("content-type", "application/x-weir-rules")
        .body(rules(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // checkout: about 60 errors a window (both fire); search: about 7 (only
    // the shadow's threshold of 5).
    bursts(&server, src_port, 7, ("checkout", 10), ("search", 1)).await;
    until("the live alert's notification", 15, || {
        notified_services(&inbox)
            .contains(&"checkout".to_string())
            .then_some(())
    })
    .await;
    let mut report = Value::Null;
    for _ in 0..50 {
        report = get_json(&http, &format!("{base}/api/v1/pipelines/errors/shadow")).await;
        if report["alerts"]["only_shadow"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let labels = |k: &str| -> Vec<String> {
        report["alerts"][k]
            .as_array()
            .unwrap_or_else(|| panic!("{report}"))
            .iter()
            .map(|a| a["labels"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(labels("only_shadow"), vec!["service=search"], "{report}");
    assert_eq!(labels("both"), vec!["service=checkout"], "{report}");
    assert!(labels("only_live").is_empty(), "{report}");
    assert_eq!(report["running"], true, "{report}");
    assert!(report["history"]
        .as_array()
        .is_some_and(|h| h.iter().all(|e| e["shadow"] == true)));
    // The shadow notified nobody.
    assert!(
        !notified_services(&inbox).contains(&"search".to_string()),
        "{:?}",
        notified_services(&inbox)
    );

    // The pipelines list sums it up on the live pipeline.
    let listed = get_json(&http, &format!("{base}/api/v1/pipelines")).await;
    let errors = listed["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "errors")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            errors["shadow"]["only_shadow"].as_u64(),
            errors["shadow"]["both"].as_u64()
        ),
        (Some(1), Some(1)),
        "{errors}"
    );

    // A scoped caller may not read it: it holds alerts of every service.
    let scoped = crate::support::server::create_token(
        &data,
        "checkout-viewer",
        "viewer",
        &["--scope", "service=\"checkout\""],
    );
    let r = crate::support::server::client_with(&scoped)
        .get(format!("{base}/api/v1/pipelines/errors/shadow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The same through the CLI.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("pipeline")
            .args(args)
            .args(["--server", &base, "--token", &server.token])
            .output()
            .unwrap()
    };
    let out = cli(&["shadow", "errors"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("only the shadow fired: 1\n  error burst {service=search}"),
        "{text}"
    );

    // Promoted: the shadow's rule is live, and its alerts notify.
    let out = cli(&["promote", "errors"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = get_json(&http, &format!("{base}/api/v1/pipelines")).await;
    assert!(
        listed["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "errors" && p["running"] == true),
        "{listed}"
    );
    let r = http
        .get(format!("{base}/api/v1/pipelines/errors/shadow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the shadow is gone once promoted");
    wait_for_port(src_port);
    bursts(&server, src_port, 6, ("checkout", 0), ("search", 1)).await;
    until("the promoted rule's notification", 15, || {
        notified_services(&inbox)
            .contains(&"search".to_string())
            .then_some(())
    })
    .await;
}
