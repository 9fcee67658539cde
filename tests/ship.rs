//! `weir ship` against a real Kafka-compatible broker (tansu) on loopback:
//! rotation of a file under write loses and repeats nothing, even two
//! rotations between two scans; multi-line
//! events are joined; a config reload adds and removes sources while running
//! and an invalid config keeps the old one; a 10 s broker outage is bridged
//! by the spool; TLS (through stunnel) and SCRAM work, wrong credentials stop
//! the agent with a clear error.

use crate::support;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::free_port;
use support::tansu::Broker;
use support::tls::{make_pki, Stunnel};

/// A running `weir ship`, killed when dropped; its stderr is collected.
struct Ship {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Ship {
    fn start(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Ship {
        std::fs::write(dir.join("ship.yaml"), yaml).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["ship", "--config"])
            .arg(dir.join("ship.yaml"))
            .env("WEIR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("weir ship starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("WEIR_TEST_VERBOSE").is_some() {
                    eprintln!("[ship] {line}");
                }
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Ship { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }

    fn exit_within(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "weir ship did not exit within {secs} s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ship {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event in `topic`, read from the start until `want` arrived or
/// `quiet` passed without a new one.
fn consume(client: &ClientConfig, topic: &str, want: usize, quiet: Duration) -> Vec<Value> {
    let c: BaseConsumer = client
        .clone()
        .set("group.id", format!("check-{}", free_port()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut last = Instant::now();
    let hard = Instant::now() + Duration::from_secs(120);
    while out.len() < want && last.elapsed() < quiet && Instant::now() < hard {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            if let Some(p) = m.payload() {
                out.push(serde_json::from_slice(p).unwrap_or(Value::Null));
                last = Instant::now();
            }
        }
    }
    out
}

fn plain(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// `seq` values of events, with how often each came.
fn seqs(events: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        if let Some(n) = e["seq"].as_u64() {
            *m.entry(n).or_insert(0) += 1;
        }
    }
    m
}

fn append(path: &Path, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(f, "{{\"seq\":{i},\"level\":\"info\",\"msg\":\"line {i}\"}}").unwrap();
    }
}

#[test]
fn rotation_under_write_loses_and_repeats_nothing() {
    let _timing = crate::support::timing_blocking();
    let broker = Broker::memory();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let yaml = format!(
        r#"
kafka: {{ brokers: "{}" }}
topic: logs
metrics: null
state_dir: state
sources:
  - name: app
    type: file
    paths: ["{}"]
    service: checkout
    environment: staging
    fields: {{ team: payments }}
"#,
        broker.bootstrap(),
        log.display()
    );
    append(&log, 0, 1000);
    let ship = Ship::start(dir.path(), &yaml, &[]);
    // Write 20,000 lines in bursts, rotating by rename every 5,000.
    let mut n = 1000;
    for round in 0..4 {
        for _ in 0..10 {
            append(&log, n, n + 400);
            n += 400;
            std::thread::sleep(Duration::from_millis(20));
        }
        append(&log, n, n + 1000);
        n += 1000;
        std::fs::rename(&log, dir.path().join(format!("app.log.{round}"))).unwrap();
        append(&log, n, n + 100);
        n += 100;
    }
    // Then a copytruncate once the agent has caught up. On a loaded
    // machine a produce request to the loopback broker can go unanswered
    // until librdkafka's request timeout (30 s) sends it again: waiting
    // longer than that tells a delay from a loss.
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        n as usize,
        Duration::from_secs(75),
    );
    assert_eq!(
        got.len(),
        n as usize,
        "caught up before the copytruncate; the shipper's log:\n{}",
        ship.log()
    );
    std::fs::copy(&log, dir.path().join("app.log.copy")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    append(&log, n, n + 500);
    n += 500;
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        n as usize,
        Duration::from_secs(15),
    );
    let s = seqs(&got);
    let missing: Vec<u64> = (0..n).filter(|i| !s.contains_key(i)).take(10).collect();
    let doubled: Vec<u64> = s
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, _)| *k)
        .take(10)
        .collect();
    assert!(missing.is_empty(), "lost lines, e.g. {missing:?}");
    assert!(doubled.is_empty(), "repeated lines, e.g. {doubled:?}");
    assert_eq!(got.len(), n as usize);
    // The schema.
    let e = &got[0];
    for k in [
        "timestamp",
        "service",
        "environment",
        "severity",
        "host",
        "message",
        "source",
    ] {
        assert!(e.get(k).is_some(), "missing {k} in {e}");
    }
    assert_eq!(e["service"], "checkout");
    assert_eq!(e["environment"], "staging");
    assert_eq!(e["severity"], "INFO");
    assert_eq!(e["team"], "payments");
    assert_eq!(e["source"], "app");

    // A restart resumes at the saved position: nothing twice.
    assert_eq!(ship.stop(), Some(0));
    append(&log, n, n + 200);
    n += 200;
    let _ship = Ship::start(dir.path(), &yaml, &[]);
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        n as usize,
        Duration::from_secs(10),
    );
    let s = seqs(&got);
    assert_eq!(s.len(), n as usize, "every line once after the restart");
    assert!(
        s.values().all(|c| *c == 1),
        "no line twice after the restart"
    );
}

/// Two rename rotations between two of the agent's scans: the middle
/// generation never sat at the path while the agent looked, and is read
/// from beside it (every line once).
#[test]
fn a_generation_rotated_away_unseen_is_read_too() {
    let broker = Broker::memory();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let yaml = format!(
        "kafka: {{ brokers: \"{}\" }}\ntopic: logs\nmetrics: null\nstate_dir: state\nsources:\n  - name: app\n    type: file\n    paths: [\"{}\"]\n",
        broker.bootstrap(),
        log.display()
    );
    append(&log, 0, 100);
    let _ship = Ship::start(dir.path(), &yaml, &[]);
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        100,
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), 100, "the first file shipped");
    // Old generations already there and read long ago are not read again.
    append(&dir.path().join("app.log.9"), 5000, 5010);
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("app.log.9"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // Both rotations take microseconds; the agent scans every 200 ms.
    append(&log, 100, 200);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, 200, 300);
    std::fs::rename(&log, dir.path().join("app.log.2")).unwrap();
    append(&log, 300, 400);
    // Compressed generations are never read.
    std::fs::write(dir.path().join("app.log.3.gz"), b"not text").unwrap();
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        410,
        Duration::from_secs(15),
    );
    let s = seqs(&got);
    let missing: Vec<u64> = (0..400).filter(|i| !s.contains_key(i)).take(10).collect();
    assert!(
        missing.is_empty(),
        "lost lines, e.g. {missing:?}:\n{}",
        _ship.log()
    );
    assert!(s.values().all(|c| *c == 1), "no line twice");
    assert_eq!(
        got.len(),
        400,
        "nothing else read: {:?}",
        s.keys().rev().take(3).collect::<Vec<_>>()
    );
}

#[test]
fn multiline_events_are_joined() {
    let broker = Broker::memory();
    broker.create_topic("java", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("java.log");
    std::fs::write(
        &log,
        "2026-01-01 12:00:00 ERROR boom\n  at a.B.c(B.java:1)\n  at d.E.f(E.java:2)\n2026-01-01 12:00:01 INFO ok\n",
    )
    .unwrap();
    let yaml = format!(
        "kafka: {{ brokers: \"{}\" }}\ntopic: java\nmetrics: null\nstate_dir: state\nsources:\n  - name: java\n    type: file\n    paths: [\"{}\"]\n    format: plain\n    multiline: {{ start: '^\\d{{4}}-', timeout: 500ms }}\n",
        broker.bootstrap(),
        log.display()
    );
    let _ship = Ship::start(dir.path(), &yaml, &[]);
    let got = consume(
        &plain(&broker.bootstrap()),
        "java",
        2,
        Duration::from_secs(15),
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["severity"], "ERROR");
    assert!(
        got[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("at d.E.f(E.java:2)"),
        "{}",
        got[0]
    );
    assert_eq!(got[1]["severity"], "INFO");
}

#[test]
fn reload_adds_and_removes_sources_and_rejects_a_bad_config() {
    let broker = Broker::memory();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let yaml = |sources: &str| {
        format!(
            "kafka: {{ brokers: \"{}\" }}\ntopic: logs\nmetrics: null\nstate_dir: state\nsources:\n{sources}",
            broker.bootstrap()
        )
    };
    let src = |name: &str, path: &Path| {
        format!(
            "  - name: {name}\n    type: file\n    paths: [\"{}\"]\n",
            path.display()
        )
    };
    append(&a, 0, 100);
    append(&b, 1000, 1100);
    let ship = Ship::start(dir.path(), &yaml(&src("a", &a)), &[]);
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        100,
        Duration::from_secs(15),
    );
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|e| e["source"] == "a"));

    // Replace a by b while running (the file watcher).
    std::fs::write(dir.path().join("ship.yaml"), yaml(&src("b", &b))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ship.log().contains("config reloaded") {
        assert!(Instant::now() < deadline, "no reload:\n{}", ship.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    append(&a, 100, 150); // a is no longer shipped
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        200,
        Duration::from_secs(5),
    );
    let by_source = |s: &str| got.iter().filter(|e| e["source"] == s).count();
    assert_eq!(by_source("b"), 100, "the added source ships");
    assert_eq!(by_source("a"), 100, "the removed source stopped");

    // An invalid config is rejected; b keeps running.
    std::fs::write(
        dir.path().join("ship.yaml"),
        "sources:\n  - name: b\n    type: fiel\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ship.log().contains("config rejected") {
        assert!(Instant::now() < deadline, "no rejection:\n{}", ship.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ship.log().contains("unknown variant `fiel`"),
        "{}",
        ship.log()
    );
    append(&b, 1100, 1150);
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        250,
        Duration::from_secs(10),
    );
    assert_eq!(got.iter().filter(|e| e["source"] == "b").count(), 150);

    // SIGHUP reloads too: a back.
    std::fs::write(
        dir.path().join("ship.yaml"),
        yaml(&(src("b", &b) + &src("a", &a))),
    )
    .unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &ship.child.id().to_string()])
        .status();
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        300,
        Duration::from_secs(15),
    );
    assert_eq!(
        got.iter().filter(|e| e["source"] == "a").count(),
        150,
        "a resumed where it stopped"
    );
    assert_eq!(ship.stop(), Some(0));
}

/// With the default, idempotent producer: after tansu restarts, the agent's
/// producer renewal gets it a new producer id (see docs/ship.md).
#[test]
fn a_broker_outage_is_bridged_by_the_spool() {
    let mut broker = Broker::durable();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let metrics = free_port();
    let yaml = format!(
        "kafka: {{ brokers: \"{}\" }}\ntopic: logs\nmetrics: \"127.0.0.1:{metrics}\"\ndelivery_timeout: 2s\nstate_dir: state\nsources:\n  - name: app\n    type: file\n    paths: [\"{}\"]\n",
        broker.bootstrap(),
        log.display()
    );
    append(&log, 0, 2000);
    let ship = Ship::start(dir.path(), &yaml, &[]);
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        2000,
        Duration::from_secs(15),
    );
    assert_eq!(got.len(), 2000);
    broker.stop();
    for k in 0..10 {
        append(&log, 2000 + k * 300, 2300 + k * 300);
        std::thread::sleep(Duration::from_secs(1));
    }
    // Kafka gives up on a message after delivery_timeout (2 s); on a busy
    // machine the first spool write can come a little after the outage.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spooled = reqwest_text(&format!("http://127.0.0.1:{metrics}/metrics"));
        if spooled.contains("weir_ship_spool_events_total{action=\"written\"}") {
            break;
        }
        assert!(Instant::now() < deadline, "the spool was used:\n{spooled}");
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.restart();
    let got = consume(
        &plain(&broker.bootstrap()),
        "logs",
        5000,
        Duration::from_secs(30),
    );
    let s = seqs(&got);
    let missing: Vec<u64> = (0..5000).filter(|i| !s.contains_key(i)).take(10).collect();
    assert!(
        missing.is_empty(),
        "lost during the outage, e.g. {missing:?}\n{}",
        ship.log()
    );
    let dups = got.len() - s.len();
    eprintln!("outage of 10 s: 5000 events, all delivered, {dups} delivered twice");
    let text = reqwest_text(&format!("http://127.0.0.1:{metrics}/metrics"));
    assert!(
        text.contains("weir_ship_spool_events_total{action=\"drained\"}"),
        "{text}"
    );
    assert!(
        text.contains("weir_ship_lines_read_total{source=\"app\"} 5000"),
        "{text}"
    );
    assert!(text.contains("weir_build_info{version="), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    support::promtool_check(&text);
    assert_eq!(ship.stop(), Some(0));
}

fn reqwest_text(url: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

#[test]
fn tls_and_scram_work_and_wrong_credentials_fail_clearly() {
    // TLS through stunnel.
    let dir = tempfile::tempdir().unwrap();
    let ca = make_pki(dir.path(), "good");
    let wrong = make_pki(dir.path(), "other");
    let (plain_port, tls) = (free_port(), free_port());
    let broker = Broker::behind(plain_port, tls);
    broker.create_topic("logs", 1);
    let _stunnel = Stunnel::start(dir.path(), "good", tls, plain_port);
    let log = dir.path().join("app.log");
    append(&log, 0, 300);
    let tls_yaml = |ca: &Path| {
        format!(
            "kafka:\n  brokers: \"127.0.0.1:{tls}\"\n  tls: {{ ca: \"{}\" }}\ntopic: logs\nmetrics: null\nstate_dir: state-{}\nsources:\n  - name: app\n    type: file\n    paths: [\"{}\"]\n",
            ca.display(),
            free_port(),
            log.display()
        )
    };
    let ship = Ship::start(dir.path(), &tls_yaml(&ca), &[]);
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", format!("127.0.0.1:{tls}"))
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.display().to_string());
    assert_eq!(
        consume(&client, "logs", 300, Duration::from_secs(20)).len(),
        300
    );
    assert_eq!(ship.stop(), Some(0));
    let mut bad = Ship::start(dir.path(), &tls_yaml(&wrong), &[]);
    assert_eq!(bad.exit_within(60), Some(1));
    let err = bad.log();
    assert!(
        err.contains("certificate verify failed") && err.contains("kafka.tls"),
        "{err}"
    );

    // SCRAM-SHA-512.
    let mut broker = Broker::durable();
    broker.create_topic("logs", 1);
    broker.create_user("shipper", "right-password");
    broker.restart_with_authentication();
    let scram_yaml = format!(
        "kafka:\n  brokers: \"{}\"\n  sasl: {{ mechanism: SCRAM-SHA-512, username: shipper, password_env: SHIP_PASSWORD }}\ntopic: logs\nmetrics: null\nstate_dir: scram-state\nsources:\n  - name: app\n    type: file\n    paths: [\"{}\"]\n",
        broker.bootstrap(),
        log.display()
    );
    let ship = Ship::start(
        dir.path(),
        &scram_yaml,
        &[("SHIP_PASSWORD", "right-password")],
    );
    let mut client = plain(&broker.bootstrap());
    client
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "shipper")
        .set("sasl.password", "right-password");
    assert_eq!(
        consume(&client, "logs", 300, Duration::from_secs(20)).len(),
        300
    );
    assert_eq!(ship.stop(), Some(0));
    std::fs::remove_dir_all(dir.path().join("scram-state")).unwrap();
    let mut bad = Ship::start(
        dir.path(),
        &scram_yaml,
        &[("SHIP_PASSWORD", "wrong-password")],
    );
    assert_eq!(bad.exit_within(60), Some(1));
    let err = bad.log();
    assert!(
        err.to_lowercase().contains("authentication") && err.contains("kafka.sasl"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password"),
        "the password is never printed: {err}"
    );
}

#[test]
fn the_tracing_layer_ships_structured_events_to_kafka() {
    use tracing_subscriber::prelude::*;
    let broker = Broker::memory();
    broker.create_topic("svc", 1);
    let kafka: weir_connectors::kafka::KafkaConfig =
        toml::from_str(&format!("brokers = \"{}\"", broker.bootstrap())).unwrap();
    let layer = weir_ship::layer::ShipLayer::kafka("checkout", "staging", &kafka, "svc").unwrap();
    let subscriber = tracing_subscriber::registry().with(layer.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(order = 42, amount = 19.99, "order paid");
        tracing::error!(order = 43, error = "gateway timeout", "payment failed");
    });
    layer.flush(Duration::from_secs(10));
    let got = consume(
        &plain(&broker.bootstrap()),
        "svc",
        2,
        Duration::from_secs(15),
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["message"], "order paid");
    assert_eq!(got[0]["severity"], "INFO");
    assert_eq!(got[0]["order"], 42);
    assert_eq!(got[0]["service"], "checkout");
    assert_eq!(got[0]["environment"], "staging");
    assert_eq!(got[1]["severity"], "ERROR");
    assert_eq!(got[1]["error"], "gateway timeout");
    assert!(got[1]["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
}
