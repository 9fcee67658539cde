//! Exactly-once archiving from Kafka across crashes: `weir run` is killed
//! with SIGKILL at seeded random moments while events are produced to four
//! partitions and restarted each time; at the end the archive's table holds
//! every produced (partition, offset) exactly once, each with the content
//! that was produced.
//!
//! Bounded by default (200,000 events, 5 kills); `WEIR_CHAOS_EVENTS`,
//! `WEIR_CHAOS_KILLS` and `WEIR_CHAOS_SEED` scale it (the issue's run is
//! 1,000,000 events and 10 kills).
//!
//! The events are produced one per record batch: tansu 0.6 does not serve a
//! fetch from an offset inside a record batch (it answers with the next
//! batch, or nothing), so a consumer resuming mid-batch would skip records
//! — a broker bug, seen here as lost ranges right after a restart. Apache
//! Kafka returns the batch holding the offset and librdkafka drops the
//! records before it.

use crate::kafka::{produce, wait_until, Weir};
use crate::support::tansu::Broker;
use crate::support::{archived, data_files};
use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small seeded generator (xorshift64*): the kill moments repeat for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"timestamp":"2026-03-01T{:02}:{:02}:{:02}Z","service":"svc{}","severity":"info","message":"event {i}"}}"#,
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        i % 7
    )
    .into_bytes()
}

/// (partition, offset) → `message` of every row in the archive's table.
fn archived_messages(dir: &Path) -> BTreeMap<(i64, i64), String> {
    let mut out = BTreeMap::new();
    for p in data_files(dir) {
        let f = std::fs::File::open(&p).unwrap();
        for b in ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.build())
            .unwrap()
        {
            let b = b.unwrap();
            let int = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .clone()
            };
            let (part, off) = (int("_partition"), int("_offset"));
            let msg = arrow::compute::cast(
                b.column_by_name("message").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let msg = msg.as_string::<i32>();
            for i in 0..b.num_rows() {
                let prior = out.insert((part.value(i), off.value(i)), msg.value(i).to_string());
                assert!(
                    prior.is_none(),
                    "({}, {}) archived twice",
                    part.value(i),
                    off.value(i)
                );
                assert!(msg.is_valid(i));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_archives_every_event_exactly_once() {
    let n = env_or("WEIR_CHAOS_EVENTS", 200_000) as usize;
    let kills = env_or("WEIR_CHAOS_KILLS", 5);
    let mut rng = Rng(env_or("WEIR_CHAOS_SEED", 20261201) | 1);
    let broker = Broker::memory();
    broker.create_topic("logs", 4);
    let dir = tempfile::tempdir().unwrap();
    // WEIR_CHAOS_KEEP=1 keeps the data folder (archive, logs) to look at.
    let dir_path = if std::env::var_os("WEIR_CHAOS_KEEP").is_some() {
        let kept = dir.keep();
        eprintln!("data kept in {}", kept.display());
        kept
    } else {
        dir.path().to_path_buf()
    };
    let rules = format!(
        r#"source app = kafka(brokers: "{}", topic: "logs", group: "chaos", commit_every: 500ms, options: ["session.timeout.ms=6000", "max.poll.interval.ms=10000"]) format json
archive app roll every 1h
"#,
        broker.bootstrap()
    );
    // Produce in the background while the engine is killed and restarted.
    let bootstrap = broker.bootstrap();
    let producing = tokio::spawn(async move {
        // One record per batch (see the module doc).
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap();
        let mut produced = BTreeMap::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(20_000) {
            let payloads: Vec<Vec<u8>> = chunk.iter().map(|&i| event(i)).collect();
            let at = produce(&p, "logs", 4, &payloads).await;
            for (i, pos) in chunk.iter().zip(at) {
                produced.insert(pos, format!("event {i}"));
            }
        }
        produced
    });
    let started = Instant::now();
    for k in 0..kills {
        let weir = Weir::start(&rules, &dir_path, "engine");
        let archive = weir.archive();
        // Kill while it works: once it has archived something new (after
        // the group gave it partitions), at a random moment after that.
        let before = archived(&archive).0.len();
        let progress = Instant::now();
        while archived(&archive).0.len() == before && progress.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wait_ms = rng.next() % 2_000;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        weir.kill();
        eprintln!(
            "kill {} of {kills} {wait_ms} ms after it archived (at {:.1} s): {} rows in the table",
            k + 1,
            started.elapsed().as_secs_f64(),
            archived(&archive).0.len()
        );
    }
    let produced = producing.await.unwrap();
    assert_eq!(produced.len(), n);
    let weir = Weir::start(&rules, &dir_path, "engine");
    let archive = weir.archive();
    wait_until(240, "every produced event archived", || {
        archived(&archive).0.len() >= n
    })
    .await;
    assert!(weir.terminate().success());
    let got = archived_messages(&archive);
    let expected_keys: BTreeSet<_> = produced.keys().copied().collect();
    let got_keys: BTreeSet<_> = got.keys().copied().collect();
    assert_eq!(got.len(), n, "exactly {n} rows in the table");
    assert_eq!(got_keys, expected_keys, "every (partition, offset) once");
    assert!(got == produced, "every event's content is the produced one");
    eprintln!(
        "{n} events, {kills} kills: exactly once in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_group_resumes_where_the_table_ends() {
    // The table, not the group's offsets, says where archiving resumes: a
    // renamed group starting at `latest` still archives what was produced
    // while Weir was down, and nothing twice.
    let broker = Broker::memory();
    broker.create_topic("logs", 2);
    let dir = tempfile::tempdir().unwrap();
    let rules = |group: &str, start: &str| {
        format!(
            r#"source app = kafka(brokers: "{}", topic: "logs", group: "{group}", start: {start}, commit_every: 300ms) format json
archive app roll every 1h
"#,
            broker.bootstrap()
        )
    };
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let first: Vec<Vec<u8>> = (0..2_000).map(event).collect();
    produce(&p, "logs", 2, &first).await;
    let weir = Weir::start(&rules("before", "earliest"), dir.path(), "engine");
    let archive = weir.archive();
    wait_until(120, "the first events archived", || {
        archived(&archive).0.len() >= 2_000
    })
    .await;
    assert!(weir.terminate().success());
    let second: Vec<Vec<u8>> = (2_000..3_000).map(event).collect();
    produce(&p, "logs", 2, &second).await;
    let weir = Weir::start(&rules("renamed", "latest"), dir.path(), "engine");
    wait_until(120, "the events produced while down archived", || {
        archived(&archive).0.len() >= 3_000
    })
    .await;
    assert!(weir.terminate().success());
    let (rows, _) = archived(&archive);
    let unique: BTreeSet<(i64, i64)> = rows.iter().copied().collect();
    assert_eq!(rows.len(), 3_000, "nothing twice");
    assert_eq!(unique.len(), 3_000, "nothing missing");
}
