//! Scaling out over a keyed Kafka topic: the same events read by 1, 2 and
//! 3 `weir run` processes in one consumer group, their windows keeping
//! state per partition in a shared state folder (`keyed_by`), against a
//! bare rdkafka consumer of the same group size in the same run.
//!
//! WEIR_BENCH_EVENTS (default 1,000,000) JSON events, keyed by service
//! (12 services, 6 partitions), are produced to tansu on loopback; a
//! window `tumbling 10m by service, user` holds about 100,000 keys (the
//! users) open. Each run is timed from its start until the group has
//! committed every offset (group joins included); every checkpoint's
//! state write is read from the processes' debug log (per-partition
//! snapshots: time and bytes). On this 2-core machine the point is the
//! overhead and the cost of snapshots, not a speed-up.
//!
//! A second table runs the same window without `keyed_by`, behind
//! `repartition by service` (as for a topic not keyed by the window's
//! fields): every event then also crosses the repartition topic (one more
//! produce and consume, as JSON), timed until the receiving group has
//! committed every row — with one process only: tansu 0.6 cannot serve a
//! fetch from inside a record batch, where a partition moved by a
//! rebalance between processes resumes, so a batched repartition topic
//! (or input) can stall there; the repartition test runs several
//! processes with one record per batch instead, for correctness.
//!
//! `cargo bench --bench scale_out` (WEIR_TANSU names the broker binary).
// Benchmark code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::tansu::Broker;

const PARTITIONS: i32 = 6;
const USERS: usize = 100_000;

/// Event `i`: one a millisecond, user `i * 7919 % USERS`, its service
/// derived from the user (so a window key lives in one partition).
fn event(i: usize) -> (String, String) {
    let user = i * 7919 % USERS;
    let service = format!("svc{}", user % 12);
    let ms = i as i64;
    let t = chrono::DateTime::from_timestamp_millis(1_772_323_200_000 + ms).unwrap();
    let line = format!(
        r#"{{"timestamp":"{}","service":"{service}","user":"u{user}","severity":"{}","message":"request {i}"}}"#,
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        if i.is_multiple_of(10) {
            "error"
        } else {
            "info"
        }
    );
    (service, line)
}

async fn fill(bootstrap: &str, n: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(20_000) {
        let events: Vec<(String, String)> = chunk.iter().map(|&i| event(i)).collect();
        let sends = events.iter().map(|(key, line)| {
            p.send(
                FutureRecord::to("scale").key(key).payload(line),
                Duration::from_secs(60),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e).unwrap();
        }
    }
}

fn committed(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .map(|got| {
            got.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The peer: `members` bare consumers of one group, polling and counting,
/// timed until they saw every message.
fn raw(bootstrap: &str, members: usize, n: usize) -> f64 {
    let t = Instant::now();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let group = format!("raw-{members}");
    let threads: Vec<_> = (0..members)
        .map(|_| {
            let (bootstrap, group, seen) = (bootstrap.to_string(), group.clone(), seen.clone());
            std::thread::spawn(move || {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", &group)
                    .set("auto.offset.reset", "earliest")
                    .set("enable.auto.commit", "false")
                    .set("partition.assignment.strategy", "cooperative-sticky")
                    .create()
                    .unwrap();
                c.subscribe(&["scale"]).unwrap();
                let deadline = Instant::now() + Duration::from_secs(600);
                while seen.load(std::sync::atomic::Ordering::Relaxed) < n {
                    if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    assert!(Instant::now() < deadline, "the raw consumers stalled");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// One checkpoint's state write, from a process's debug log.
struct Saved {
    bytes: u64,
    ms: u64,
}

fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `members` processes of one group over the topic (the window behind
/// `repartition by service` with `repartition`); returns events/s and the
/// state writes they logged.
fn weir(
    bootstrap: &str,
    members: usize,
    n: usize,
    dir: &Path,
    repartition: bool,
) -> (f64, Vec<Saved>) {
    let group = format!("weir-{members}{}", if repartition { "-r" } else { "" });
    let (keyed, stage) = if repartition {
        ("", "| repartition by service\n  ")
    } else {
        (", keyed_by: \"service\"", "")
    };
    let run = dir.join(&group);
    std::fs::create_dir_all(&run).unwrap();
    let config = run.join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n",
            run.join("state").display().to_string()
        ),
    )
    .unwrap();
    let rules = run.join("scale.rules");
    std::fs::write(
        &rules,
        format!(
            r#"source app = kafka(brokers: "{bootstrap}", topic: "scale", group: "{group}"{keyed}, commit_every: 2s) format json fields {{ user: string }}
pipeline per_user {{
  from app
  {stage}| window tumbling 10m by service, user lateness 10s max_keys 200000 {{ n = count() }}
}}
"#
        ),
    )
    .unwrap();
    let t = Instant::now();
    let children: Vec<_> = (0..members)
        .map(|m| {
            let log = run.join(format!("member-{m}.log"));
            Command::new(env!("CARGO_BIN_EXE_weir"))
                .arg("run")
                .arg(&rules)
                .arg("--quiet")
                .arg("--data-dir")
                .arg(run.join(format!("data-{m}")))
                .arg("--config")
                .arg(&config)
                .env("WEIR_LOG", "warn,weir_engine::runtime=debug")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .map(support::Reaped)
                .unwrap()
        })
        .collect();
    let deadline = t + Duration::from_secs(900);
    // With a repartition, until the receiving group has read every row.
    let (reader, topic) = if repartition {
        let t = format!("{group}-per_user-repartition");
        (t.clone(), t)
    } else {
        (group.clone(), "scale".to_string())
    };
    while committed(bootstrap, &reader, &topic) < n as i64 {
        assert!(
            Instant::now() < deadline,
            "{group} did not read every event"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let secs = t.elapsed().as_secs_f64();
    for mut c in children {
        assert!(c.terminate(Duration::from_secs(120)).success());
    }
    let mut saved = Vec::new();
    for m in 0..members {
        let f = std::fs::File::open(run.join(format!("member-{m}.log"))).unwrap();
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            if line.contains("window state saved") {
                if let (Some(bytes), Some(ms)) = (field(&line, "bytes"), field(&line, "took_ms")) {
                    saved.push(Saved { bytes, ms });
                }
            }
        }
    }
    (n as f64 / secs, saved)
}

fn main() {
    let n: usize = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = Broker::memory();
    broker.create_topic("scale", PARTITIONS as u32);
    let bootstrap = broker.bootstrap();
    rt.block_on(fill(&bootstrap, n));
    println!("topic: {n} events keyed by service, {PARTITIONS} partitions, {USERS} users");
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<f64> = (1..=3).map(|m| raw(&bootstrap, m, n)).collect();
    for repartition in [false, true] {
        println!();
        println!(
            "{}",
            if repartition {
                "not keyed_by: `repartition by service` before the window (one process: see the top)"
            } else {
                "keyed_by: \"service\""
            }
        );
        table(&bootstrap, n, dir.path(), repartition, &peers);
    }
}

fn table(bootstrap: &str, n: usize, dir: &Path, repartition: bool, peers: &[f64]) {
    println!("| processes | weir events/s | bare consumers events/s | ratio | checkpoints | state per checkpoint (median) | write time (median, max) |");
    println!("|---|---|---|---|---|---|---|");
    let most = if repartition { 1 } else { 3 };
    for members in 1..=most {
        let peer = peers[members - 1];
        let (rate, mut saved) = weir(bootstrap, members, n, dir, repartition);
        assert!(!saved.is_empty(), "no state write logged");
        saved.sort_by_key(|s| s.bytes);
        let bytes = saved[saved.len() / 2].bytes;
        saved.sort_by_key(|s| s.ms);
        let (ms, max) = (saved[saved.len() / 2].ms, saved[saved.len() - 1].ms);
        println!(
            "| {members} | {rate:.0} | {peer:.0} | {:.2} | {} | {:.1} MiB | {ms} ms, {max} ms |",
            rate / peer,
            saved.len(),
            bytes as f64 / 1048576.0
        );
    }
}
