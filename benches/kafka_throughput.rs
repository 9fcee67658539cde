//! Kafka → engine → archive throughput against a baseline in the same run, on
//! the same topic of the same broker (tansu on loopback, memory storage): a
//! minimal rdkafka consumer that polls and counts, nothing else. (Debian's
//! `kcat` is built on librdkafka 2.0, which cannot parse tansu's ApiVersions
//! response, so the baseline is the raw client Weir itself uses.)
//!
//! `cargo bench --bench kafka_throughput` (WEIR_BENCH_EVENTS sets the count,
//! default 500,000; WEIR_TANSU the broker binary). Prints events/s for both,
//! the ratio, the cost of one archive commit (a Delta Lake commit adding a
//! file with its `txn` position, as the log grows past checkpoints) and
//! peak RSS.
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/mod.rs"]
mod support;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};
use support::tansu::Broker;
use weir_connectors::sources::generator::{generate_ndjson, GeneratorConfig};
use weir_connectors::LocalFactory;
use weir_engine::runtime::{deploy, DeployOptions};
use weir_engine::{AlertManager, Metrics};

const PARTITIONS: i32 = 3;

async fn fill(bootstrap: &str, n: usize) -> Result<usize, Box<dyn std::error::Error>> {
    let data = generate_ndjson(
        GeneratorConfig {
            start_us: Some(1_772_323_200_000_000),
            ..Default::default()
        },
        n,
    );
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for (c, chunk) in lines.chunks(20_000).enumerate() {
        let sends = chunk.iter().enumerate().map(|(i, l)| {
            p.send(
                FutureRecord::<(), _>::to("bench")
                    .partition(((c * 20_000 + i) as i32) % PARTITIONS)
                    .payload(*l),
                Duration::from_secs(60),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e)?;
        }
    }
    Ok(data.len())
}

/// The baseline: poll and count.
fn raw_consume(bootstrap: &str, n: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    c.subscribe(&["bench"])?;
    let t = Instant::now();
    let mut seen = 0;
    let deadline = t + Duration::from_secs(600);
    while seen < n {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m?;
            seen += 1;
        }
        if Instant::now() > deadline {
            return Err(format!("baseline saw {seen} of {n}").into());
        }
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Weir: kafka source → decode → archive (Parquet) and a windowed pipeline;
/// timed until the last event is archived and offsets committed.
async fn weir_consume(bootstrap: &str, n: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let rules = format!(
        r#"source app = kafka(brokers: "{bootstrap}", topic: "bench", group: "bench-weir", commit_every: 1s) format json
  fields {{ latency_ms: float, status: int }}
archive app roll every 1h
pipeline errors {{
  from app
  | where severity >= warn
  | window tumbling 1m by service lateness 1m {{ n = count(), p99 = quantile(latency_ms, 0.99) }}
}}
"#
    );
    let program = weir_dsl::compile(&rules).map_err(|e| format!("{e:?}"))?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry)?;
    let factory = LocalFactory::in_folder(dir.path(), metrics.clone());
    let t = Instant::now();
    let deployment = deploy(
        &program,
        &factory,
        AlertManager::in_memory(),
        &metrics,
        DeployOptions {
            base_dir: dir.path().to_path_buf(),
            idle_advance: false,
            state: None,
            project: false,
        },
    )?;
    let events = metrics.source_events.with_label_values(&["app"]);
    let deadline = t + Duration::from_secs(600);
    while (events.get() as usize) < n {
        if Instant::now() > deadline {
            return Err(format!("weir saw {} of {n}", events.get()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    deployment.stop();
    deployment.wait().await?;
    let secs = t.elapsed().as_secs_f64();
    let (rows, files) = support::archived(&dir.path().join("archive"));
    if rows.len() != n {
        return Err(format!("archived {} of {n}", rows.len()).into());
    }
    println!("weir archived {n} events in {files} Parquet files");
    Ok(n as f64 / secs)
}

/// Milliseconds per archive commit (one file and one `txn` each, what a
/// flush of one partition costs beyond its upload), over `n` commits to a
/// local table.
async fn commit_cost(n: usize) -> Result<f64, Box<dyn std::error::Error>> {
    use weir_connectors::delta::{app_id, NewFile, Operation, StreamTable};
    let dir = tempfile::tempdir()?;
    let loc = weir_connectors::store::open(None, dir.path(), dir.path(), &Default::default())?;
    let mut table = StreamTable::new(&loc, "bench")?;
    let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "_offset",
        arrow::datatypes::DataType::Int64,
        true,
    )]);
    let part = vec![
        ("date".to_string(), "2026-03-01".to_string()),
        ("hour".to_string(), "00".to_string()),
    ];
    let t = Instant::now();
    for i in 0..n {
        let file = NewFile {
            path: format!("date=2026-03-01/hour=00/part-{i}.parquet"),
            size: 100_000,
            partition: part.clone(),
            rows: 1_000,
            time: None,
        };
        table
            .commit(
                &schema,
                true,
                &[file],
                &[],
                &[(app_id("bench", 0), i as i64)],
                Operation::Append,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let broker = Broker::memory();
    broker.create_topic("bench", PARTITIONS as u32);
    let bootstrap = broker.bootstrap();
    let bytes = rt.block_on(fill(&bootstrap, n))?;
    println!(
        "topic: {n} events, {:.1} MiB, {PARTITIONS} partitions",
        bytes as f64 / 1048576.0
    );
    let raw = raw_consume(&bootstrap, n)?;
    println!("baseline  raw rdkafka consumer:    {raw:>12.0} events/s");
    let weir = rt.block_on(weir_consume(&bootstrap, n))?;
    println!(
        "weir      kafka→decode→archive+window: {weir:>9.0} events/s  ({:.2}x of baseline)",
        weir / raw
    );
    let commits = 300;
    let ms = rt.block_on(commit_cost(commits))?;
    println!("archive commit (Delta, one file + txn, {commits} commits): {ms:.2} ms each");
    println!("peak RSS: {:.1} MiB", support::peak_rss_mib());
    Ok(())
}
