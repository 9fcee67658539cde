//! The Kafka connectors against a real broker (tansu on loopback): produce →
//! consume → archive with exact counts and a dead-letter topic; two processes
//! in one group splitting partitions; a consumer killed mid-stream and
//! restarted without loss; the broker stopped for 10 s mid-stream; an engine
//! stalled past `max.poll.interval.ms` keeping its partitions; a Kafka
//! output. Every offset is accounted for in the archive or the dead letters.

use crate::support;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::tansu::Broker;
use support::{archived, dead_letters};

/// A `weir run` child process, killed when dropped.
pub(crate) struct Weir {
    child: Child,
    data: PathBuf,
}

impl Weir {
    pub(crate) fn start(rules: &str, dir: &Path, data: &str) -> Weir {
        Weir::start_with(rules, dir, data, None)
    }

    /// [`Weir::start`] with a config file (an archive on S3, say).
    pub(crate) fn start_with(rules: &str, dir: &Path, data: &str, config: Option<&Path>) -> Weir {
        Weir::spawn(rules, dir, data, config, Stdio::inherit())
    }

    /// [`Weir::start_with`] writing its log (warnings and errors) to `log`.
    pub(crate) fn start_logging(
        rules: &str,
        dir: &Path,
        data: &str,
        config: Option<&Path>,
        log: &Path,
    ) -> Weir {
        let file = std::fs::File::create(log).unwrap();
        Weir::spawn(rules, dir, data, config, Stdio::from(file))
    }

    fn spawn(rules: &str, dir: &Path, data: &str, config: Option<&Path>, stderr: Stdio) -> Weir {
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join(format!("{data}.rules"));
        std::fs::write(&file, rules).unwrap();
        let data = dir.join(data);
        // WEIR_TEST_BIN: an optimised build for a test scaled up by hand.
        let bin =
            std::env::var("WEIR_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_weir").into());
        let child = Command::new(bin)
            .arg("run")
            .arg(&file)
            .arg("--quiet")
            .arg("--data-dir")
            .arg(&data)
            .args(config.iter().flat_map(|c| [Path::new("--config"), c]))
            .env(
                "WEIR_LOG",
                std::env::var("WEIR_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("weir starts");
        Weir { child, data }
    }

    pub(crate) fn archive(&self) -> PathBuf {
        self.data.join("archive")
    }

    /// SIGTERM, then waits: a graceful stop (flush, checkpoint, commit).
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "weir did not stop within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: a crash.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// A producer that sends each record in a batch of its own (tansu 0.6
/// cannot serve a fetch from inside a batch: see `exactly_once`).
pub(crate) fn one_per_batch(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// Produces `payloads` round-robin over `partitions`; returns each message's
/// (partition, offset).
pub(crate) async fn produce(
    p: &FutureProducer,
    topic: &str,
    partitions: i32,
    payloads: &[Vec<u8>],
) -> Vec<(i64, i64)> {
    produce_to(p, topic, |i| i as i32 % partitions, payloads).await
}

/// Produces each payload `i` to partition `partition(i)`; returns each
/// one's (partition, offset).
pub(crate) async fn produce_to(
    p: &FutureProducer,
    topic: &str,
    partition: impl Fn(usize) -> i32,
    payloads: &[Vec<u8>],
) -> Vec<(i64, i64)> {
    let sends = payloads.iter().enumerate().map(|(i, body)| {
        p.send(
            FutureRecord::<(), _>::to(topic)
                .partition(partition(i))
                .payload(body),
            Duration::from_secs(60),
        )
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| {
            let d = r.unwrap_or_else(|(e, _)| panic!("produce failed: {e}"));
            (d.partition as i64, d.offset)
        })
        .collect()
}

fn event(i: usize) -> Vec<u8> {
    let sev = if i.is_multiple_of(10) {
        "ERROR"
    } else {
        "INFO"
    };
    format!(
        r#"{{"timestamp":"2026-03-01T00:{:02}:{:02}Z","service":"svc{}","severity":"{sev}","message":"event {i}"}}"#,
        (i / 60) % 60,
        i % 60,
        i % 4
    )
    .into_bytes()
}

/// The distinct (partition, offset) pairs in an archive: what an
/// at-least-once check compares with what was produced.
fn unique_archived(archive: &Path) -> BTreeSet<(i64, i64)> {
    archived(archive).0.into_iter().collect()
}

/// Waits until `done()` holds, or fails after `secs`.
pub(crate) async fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

fn rules(bootstrap: &str, group: &str, extra: &str) -> String {
    format!(
        r#"source app = kafka(brokers: "{bootstrap}", topic: "logs", group: "{group}", commit_every: 300ms{extra}) format json
archive app roll every 1h
pipeline errors {{
  from app
  | where severity >= error
  | window tumbling 1m by service {{ n = count() }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_archive_exact_with_dead_letter_topic() {
    let broker = Broker::memory();
    broker.create_topic("logs", 3);
    broker.create_topic("logs.dlq", 1);
    let p = producer(&broker.bootstrap());
    const N: usize = 30_000;
    let mut payloads: Vec<Vec<u8>> = (0..N).map(event).collect();
    // Malformed messages among the good ones.
    let bad = [
        b"{not json".to_vec(),
        vec![0xff, 0xfe, b'{', b'}'],
        b"[1,2,3]".to_vec(),
    ];
    for (k, b) in bad.iter().enumerate() {
        payloads[5_000 * (k + 1)] = b.clone();
    }
    let produced = produce(&p, "logs", 3, &payloads).await;
    let bad_at: BTreeSet<(i64, i64)> = (1..=bad.len()).map(|k| produced[5_000 * k]).collect();

    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(
        &rules(&broker.bootstrap(), "g1", r#", dead_letters: "logs.dlq""#),
        dir.path(),
        "one",
    );
    let archive = weir.archive();
    wait_until(120, "all good events archived", || {
        archived(&archive).0.len() >= N - bad.len()
    })
    .await;
    // Give a last commit time, then stop gracefully.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let st = weir.terminate();
    assert!(st.success(), "weir exited with {st}");

    let (rows, _) = archived(&archive);
    let expected: Vec<(i64, i64)> = produced
        .iter()
        .copied()
        .filter(|k| !bad_at.contains(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(rows.len(), N - bad.len(), "exactly once in the archive");
    assert_eq!(rows, expected);

    // The dead-letter topic has the malformed ones, with their reasons.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&["logs.dlq"]).unwrap();
    let mut letters = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while letters.len() < bad.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let h = m.headers().expect("dead letters carry headers");
            let get = |k: &str| {
                h.iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            assert_eq!(get("weir.topic"), "logs");
            assert!(!get("weir.reason").is_empty());
            assert!(!get("weir.time").is_empty());
            letters.insert((
                get("weir.partition").parse::<i64>().unwrap(),
                get("weir.offset").parse::<i64>().unwrap(),
            ));
        }
    }
    assert_eq!(
        letters, bad_at,
        "every malformed message is in the DLQ topic"
    );

    // Offsets were committed up to the end of every partition.
    let ends: Vec<i64> = (0..3)
        .map(|part| {
            produced
                .iter()
                .filter(|(p, _)| *p == part)
                .map(|(_, o)| o + 1)
                .max()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(committed(&broker.bootstrap(), "g1", "logs", 3), ends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_in_one_group_split_the_partitions() {
    let broker = Broker::memory();
    broker.create_topic("logs", 4);
    let dir = tempfile::tempdir().unwrap();
    let a = Weir::start(&rules(&broker.bootstrap(), "shared", ""), dir.path(), "a");
    let b = Weir::start(&rules(&broker.bootstrap(), "shared", ""), dir.path(), "b");
    const N: usize = 20_000;
    let payloads: Vec<Vec<u8>> = (0..N).map(event).collect();
    let p = producer(&broker.bootstrap());
    let (aa, ba) = (a.archive(), b.archive());
    // A trickle until both archive something (each owns partitions then;
    // the one that joins first may own all of them for a while, and gives
    // some up in a rebalance), then the rest at once.
    let mut produced = Vec::new();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while archived(&aa).0.is_empty() || archived(&ba).0.is_empty() {
        assert!(
            Instant::now() < deadline,
            "both processes consume within 120 s"
        );
        let to = (sent + 100).min(N / 2);
        produced.extend(produce(&p, "logs", 4, &payloads[sent..to]).await);
        sent = to;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    produced.extend(produce(&p, "logs", 4, &payloads[sent..]).await);
    wait_until(120, "all events archived by the two", || {
        let mut all: BTreeSet<(i64, i64)> = archived(&aa).0.into_iter().collect();
        all.extend(archived(&ba).0);
        all.len() >= N
    })
    .await;
    let ra = archived(&aa).0;
    let rb = archived(&ba).0;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    let pa: BTreeSet<i64> = ra.iter().map(|r| r.0).collect();
    let pb: BTreeSet<i64> = rb.iter().map(|r| r.0).collect();
    assert!(
        !ra.is_empty() && !rb.is_empty(),
        "both consumed: {pa:?} {pb:?}"
    );
    let all: Vec<(i64, i64)> = ra.into_iter().chain(rb).collect();
    let expected: BTreeSet<(i64, i64)> = produced.into_iter().collect();
    let unique: BTreeSet<(i64, i64)> = all.iter().copied().collect();
    assert_eq!(unique, expected, "every offset archived");
    assert_eq!(all.len(), N, "no offset archived twice: {pa:?} / {pb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_restarts_without_loss() {
    let broker = Broker::memory();
    broker.create_topic("logs", 2);
    let dir = tempfile::tempdir().unwrap();
    let rules = rules(&broker.bootstrap(), "crashy", "");
    let p = producer(&broker.bootstrap());
    const N: usize = 50_000;
    let payloads: Vec<Vec<u8>> = (0..N).map(event).collect();
    let first = produce(&p, "logs", 2, &payloads[..N / 2]).await;
    let weir = Weir::start(&rules, dir.path(), "crash");
    let archive = weir.archive();
    wait_until(120, "some events archived", || {
        !archived(&archive).0.is_empty()
    })
    .await;
    weir.kill();
    let second = produce(&p, "logs", 2, &payloads[N / 2..]).await;
    let weir = Weir::start(&rules, dir.path(), "crash");
    wait_until(120, "every offset archived after the restart", || {
        unique_archived(&archive).len() >= N
    })
    .await;
    assert!(weir.terminate().success());
    let (all, _) = archived(&archive);
    let got: BTreeSet<(i64, i64)> = all.iter().copied().collect();
    let expected: BTreeSet<(i64, i64)> = first.into_iter().chain(second).collect();
    assert_eq!(got, expected, "no offset lost across the crash");
    assert_eq!(all.len(), N, "no offset archived twice across the crash");
    assert!(dead_letters(&dir.path().join("crash/deadletter/app.ndjson")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_down_for_ten_seconds_loses_nothing() {
    let mut broker = Broker::durable();
    broker.create_topic("logs", 2);
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(
        &rules(&broker.bootstrap(), "outage", ""),
        dir.path(),
        "outage",
    );
    let archive = weir.archive();
    const N: usize = 6_000;
    let payloads: Vec<Vec<u8>> = (0..N).map(event).collect();
    let first = produce(
        &producer(&broker.bootstrap()),
        "logs",
        2,
        &payloads[..N / 2],
    )
    .await;
    wait_until(120, "the first half archived", || {
        archived(&archive).0.len() >= N / 2
    })
    .await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.restart();
    let second = produce(
        &producer(&broker.bootstrap()),
        "logs",
        2,
        &payloads[N / 2..],
    )
    .await;
    wait_until(180, "the second half archived after the outage", || {
        unique_archived(&archive).len() >= N
    })
    .await;
    assert!(weir.terminate().success());
    let got = unique_archived(&archive);
    let expected: BTreeSet<(i64, i64)> = first.into_iter().chain(second).collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_output_receives_window_results() {
    let broker = Broker::memory();
    broker.create_topic("logs", 1);
    broker.create_topic("counts", 1);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"source app = kafka(brokers: "{b}", topic: "logs", group: "out", commit_every: 300ms) format json
output counts = kafka(brokers: "{b}", topic: "counts", key: "service", compression: lz4)
pipeline per_service {{
  from app
  | window tumbling 1m by service {{ n = count() }}
  | to counts
}}
"#,
        b = broker.bootstrap()
    );
    // 4 services x 60 events in minute 0, then one event in minute 5 to close it.
    let mut payloads: Vec<Vec<u8>> = (0..240).map(event).collect();
    payloads.push(
        br#"{"timestamp":"2026-03-01T00:05:00Z","service":"svc0","severity":"INFO","message":"tick"}"#
            .to_vec(),
    );
    let weir = Weir::start(&text, dir.path(), "out");
    produce(&producer(&broker.bootstrap()), "logs", 1, &payloads).await;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "counts-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&["counts"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 4 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
            assert_eq!(v["service"], key.as_str());
            got.push((key, v["n"].as_i64().unwrap()));
        }
    }
    assert!(weir.terminate().success());
    got.sort();
    // i / 60 picks the minute, i % 4 the service: 240 events in minutes 0..3,
    // 15 per service per minute; minute 0 closes first.
    assert_eq!(
        got,
        vec![
            ("svc0".to_string(), 15),
            ("svc1".to_string(), 15),
            ("svc2".to_string(), 15),
            ("svc3".to_string(), 15)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_skips_older_messages_for_a_new_group() {
    let broker = Broker::memory();
    broker.create_topic("logs", 1);
    let p = producer(&broker.bootstrap());
    let old = produce(&p, "logs", 1, &(0..100).map(event).collect::<Vec<_>>()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut = chrono::Utc::now() - chrono::Duration::milliseconds(500);
    let new = produce(&p, "logs", 1, &(100..250).map(event).collect::<Vec<_>>()).await;
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(
        &rules(
            &broker.bootstrap(),
            "from-time",
            &format!(r#", start_at: "{}""#, cut.to_rfc3339()),
        ),
        dir.path(),
        "time",
    );
    let archive = weir.archive();
    wait_until(60, "the newer messages archived", || {
        archived(&archive).0.len() >= new.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(weir.terminate().success());
    let got = archived(&archive).0;
    assert_eq!(got, new, "only messages at or after the start time");
    assert!(!got.contains(&old[old.len() - 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_and_commits_are_on_the_metrics_endpoint() {
    let broker = Broker::memory();
    broker.create_topic("logs", 2);
    produce(
        &producer(&broker.bootstrap()),
        "logs",
        2,
        &(0..2000).map(event).collect::<Vec<_>>(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("k.rules");
    std::fs::write(&rules_file, rules(&broker.bootstrap(), "metered", "")).unwrap();
    let server = support::server::start_server(
        &dir.path().join("data"),
        &[rules_file.to_str().unwrap_or_default()],
    );
    let url = format!("{}/metrics", server.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let lag_zero = text.lines().any(|l| {
            l.starts_with("weir_source_lag_messages{")
                && l.contains("origin=\"logs\"")
                && l.ends_with(" 0")
        });
        let committed = text.lines().any(|l| {
            l.starts_with("weir_source_commits_total{source=\"app\"}") && !l.ends_with(" 0")
        });
        if lag_zero && committed {
            break text;
        }
        assert!(Instant::now() < deadline, "no lag/commit metrics: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The pipelines API lists the lag per partition: none once all is read.
    let pipelines = format!("{}/api/v1/pipelines", server.base);
    let lags = || async {
        let listed = support::server::get_json(&server.client(), &pipelines).await;
        listed["pipelines"][0]["lag"]
            .as_array()
            .map(|lag| {
                lag.iter()
                    .map(|l| {
                        (
                            l["origin"].as_str().unwrap_or_default().to_string(),
                            l["partition"].as_i64().unwrap_or(-1),
                            l["messages"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let caught_up = [("logs".to_string(), 0, 0), ("logs".to_string(), 1, 0)];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = lags().await;
        if got == caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "pipelines API lag: {got:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server);
    assert!(
        text.contains("weir_source_events_total{source=\"app\"} 2000"),
        "{text}"
    );
}

/// While every broker is down, `/readyz` names the Kafka source (and
/// `/healthz` stays ok); after the broker is back and messages flow, ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_source_whose_brokers_are_down() {
    let mut broker = Broker::durable();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("k.rules");
    std::fs::write(&rules_file, rules(&broker.bootstrap(), "ready", "")).unwrap();
    let server = support::server::start_server(
        &dir.path().join("data"),
        &[rules_file.to_str().unwrap_or_default()],
    );
    let base = server.base.clone();
    let ready = || async {
        let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    produce(&producer(&broker.bootstrap()), "logs", 1, &[event(0)]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready().await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    broker.stop();
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (status, body) = ready().await;
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "brokers down, still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(body.contains("\"failing_sources\":[\"app\"]"), "{body}");
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    broker.restart();
    produce(&producer(&broker.bootstrap()), "logs", 1, &[event(1)]).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = ready().await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after the broker returned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(server);
}

/// An engine reading `events` events (one per record batch: fetching
/// resumes after a pause at the next offset, which tansu cannot serve from
/// inside a batch, see `exactly_once`) of a 2-partition topic as group
/// `group` into `to stdout`, with `max.poll.interval.ms=6000`; its standard
/// output left unread, so the pipeline stalls once the pipe is full, and
/// its log collected.
struct Stalled {
    broker: Broker,
    _dir: tempfile::TempDir,
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    /// Where it serves `/metrics`.
    metrics: String,
}

async fn stalled_engine(events: usize, group: &str) -> Stalled {
    use std::io::{BufRead, BufReader};
    let broker = Broker::memory();
    broker.create_topic("logs", 2);
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..events).map(event).collect();
    produce(&one_per_batch(&broker.bootstrap()), "logs", 2, &payloads).await;
    let rules = format!(
        r#"source app = kafka(brokers: "{}", topic: "logs", group: "{group}", commit_every: 300ms, options: ["max.poll.interval.ms=6000", "session.timeout.ms=6000"]) format json
pipeline all {{
  from app
  | to stdout
}}
"#,
        broker.bootstrap()
    );
    std::fs::write(dir.path().join("stall.rules"), rules).unwrap();
    let metrics = format!("127.0.0.1:{}", crate::support::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "stall.rules", "--quiet", "--data-dir", "data"])
        .args(["--metrics", &metrics])
        .current_dir(dir.path())
        .env(
            "WEIR_LOG",
            std::env::var("WEIR_TEST_CHILD_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let logged = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut l) = logged.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    Stalled {
        broker,
        _dir: dir,
        child,
        log,
        metrics: format!("http://{metrics}/metrics"),
    }
}

/// The value of `weir_source_paused` for source `app` at `url` (None when
/// not served or not there yet).
async fn source_paused(url: &str) -> Option<i64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with("weir_source_paused{") && l.contains("source=\"app\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A consumer joins the group while the engine is stalled: the engine
/// gives one of its two partitions up within the rebalance (its callback
/// waits on the stalled pipeline at most a third of `max.poll.interval.ms`)
/// instead of blocking the poll thread until it is thrown out of the group
/// — the newcomer gets one partition, not both — and between them every
/// event is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_gives_a_partition_up_in_a_rebalance_and_stays() {
    use std::io::{BufRead, BufReader};
    // Alone: beside another broker and engine, the stall (buffers full,
    // then the poll thread's patience) was seen to take over a minute.
    let _heavy = crate::support::heavy().await;
    const N: usize = 30_000;
    let Stalled {
        broker,
        _dir,
        mut child,
        log,
        ..
    } = stalled_engine(N, "stall2").await;
    // Joined, both partitions, stalled and paused (patience 2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log
        .lock()
        .map(|l| l.contains("fetching paused"))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "never stalled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let newcomer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "stall2")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("max.poll.interval.ms", "6000")
        // The engine's protocol (a group agrees on one).
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create()
        .expect("consumer");
    newcomer.subscribe(&["logs"]).expect("subscribe");
    let mut from_newcomer = BTreeSet::new();
    let read = |m: &rdkafka::message::BorrowedMessage<'_>, into: &mut BTreeSet<String>| {
        let v: Option<serde_json::Value> = m.payload().and_then(|p| serde_json::from_slice(p).ok());
        if let Some(text) = v.as_ref().and_then(|v| v["message"].as_str()) {
            into.insert(text.to_string());
        }
    };
    let mut assigned = 0;
    // The engine stays stalled until the newcomer has had partitions for
    // 8 s (more than max.poll.interval.ms: an engine thrown out of the
    // group would have left them all to it by then).
    let started = Instant::now();
    let mut since: Option<Instant> = None;
    while since.is_none_or(|t| t.elapsed() < Duration::from_secs(8)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the newcomer got no partition within 60 s:\n{}",
            log.lock().map(|l| l.clone()).unwrap_or_default()
        );
        if let Some(Ok(m)) = newcomer.poll(Duration::from_millis(100)) {
            read(&m, &mut from_newcomer);
        }
        assigned = newcomer.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned > 0 && since.is_none() {
            since = Some(Instant::now());
        }
    }
    eprintln!("the newcomer had partitions after {:?}", started.elapsed());
    // The stall ends: what the engine writes is read.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(m) = v["message"].as_str() {
                    let _ = tx.send(m.to_string());
                }
            }
        }
    });
    let mut from_engine = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while from_engine.union(&from_newcomer).count() < N && Instant::now() < deadline {
        while let Ok(m) = rx.try_recv() {
            from_engine.insert(m);
        }
        if let Some(Ok(m)) = newcomer.poll(Duration::from_millis(50)) {
            read(&m, &mut from_newcomer);
        }
    }
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    if std::env::var_os("WEIR_TEST_VERBOSE").is_some() {
        eprintln!("{log}");
    }
    let lower = log.to_lowercase();
    assert!(
        !lower.contains("maximum poll interval") && !lower.contains("maxpoll"),
        "the engine left the group:\n{log}"
    );
    assert_eq!(
        assigned, 1,
        "the newcomer's partitions (the engine kept one):\n{log}"
    );
    assert!(lower.contains("partitions revoked"), "no rebalance:\n{log}");
    let all = from_engine.union(&from_newcomer).count();
    assert_eq!(
        all,
        N,
        "every event read once at least ({} by the engine, {} by the newcomer):\n{log}",
        from_engine.len(),
        from_newcomer.len()
    );
}

/// The engine stalled for twice `max.poll.interval.ms` (a `to stdout`
/// output whose reader reads nothing for 12 s): the poll thread pauses
/// fetching and keeps polling, so the consumer keeps its partitions — no
/// "maximum poll interval exceeded", no rebalance — and every event comes
/// out once when the stall ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_keeps_its_place_in_the_group() {
    use std::io::{BufRead, BufReader};
    // Alone: beside another broker and engine, the stall (buffers full,
    // then the poll thread's patience) was seen to take over a minute.
    let _heavy = crate::support::heavy().await;
    // More than every buffer between the consumer and stdout holds.
    const N: usize = 50_000;
    let Stalled {
        broker: _broker,
        _dir,
        mut child,
        log,
        metrics,
    } = stalled_engine(N, "stall").await;
    // Stalled: fetching paused, and the metric says so — once the
    // buffers before stdout are full and the poll thread's patience ran
    // out (on a loaded machine reading the 50,000 events that fill them
    // can take longer than the stall itself).
    let stalled_at = Instant::now();
    let mut paused = None;
    while stalled_at.elapsed() < Duration::from_secs(60) {
        paused = source_paused(&metrics).await;
        if paused == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(paused, Some(1), "weir_source_paused during the stall");
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(stalled_at.elapsed())).await;
    let stdout = child.stdout.take().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = progress.clone();
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        let mut lines = 0usize;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines += 1;
            counted.store(lines, std::sync::atomic::Ordering::Relaxed);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(m) = v["message"].as_str() {
                    seen.insert(m.to_string());
                }
            }
            if lines >= N {
                break;
            }
        }
        let _ = done_tx.send((lines, seen.len()));
    });
    let got = done_rx.recv_timeout(Duration::from_secs(120));
    let out = progress.load(std::sync::atomic::Ordering::Relaxed);
    // Everything went through: fetching resumed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while source_paused(&metrics).await != Some(0) {
        assert!(
            Instant::now() < deadline,
            "weir_source_paused stays 1 after the stall"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // What it logged while running (a stop revokes its partitions).
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    if std::env::var_os("WEIR_TEST_VERBOSE").is_some() {
        eprintln!("{log}");
    }
    let (lines, distinct) =
        got.unwrap_or_else(|_| panic!("{out} of {N} events came out within 120 s:\n{log}"));
    assert_eq!(distinct, N, "every event once:\n{log}");
    assert_eq!(lines, N, "no event twice:\n{log}");
    let lower = log.to_lowercase();
    assert!(
        !lower.contains("maximum poll interval") && !lower.contains("maxpoll"),
        "the consumer left the group:\n{log}"
    );
    assert!(
        !lower.contains("partitions revoked"),
        "a rebalance during the stall:\n{log}"
    );
}
