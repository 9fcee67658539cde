//! `weir ship` throughput: lines/s from a file to the broker (tansu on
//! loopback, memory storage), against a baseline in the same run: a bare
//! rdkafka producer sending the same lines unchanged with the same producer
//! settings (idempotent, zstd, linger 20 ms). Debian's `kcat -P` cannot be the
//! baseline: it is built on librdkafka 2.0, which cannot parse tansu's
//! ApiVersions response (see docs/ship.md).
//!
//! The agent runs as the real `weir ship` process, pinned to one core with
//! `taskset` when available; the count comes from its `/metrics`. The
//! baseline is pinned to the same core (this benchmark re-run as a child).
//!
//! `cargo bench --bench ship_throughput` (WEIR_BENCH_LINES sets the count,
//! default 500,000).
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/mod.rs"]
mod support;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::tansu::Broker;
use weir_connectors::sources::generator::{generate_ndjson, GeneratorConfig};

async fn baseline(bootstrap: &str, lines: &[&[u8]]) -> Result<f64, Box<dyn std::error::Error>> {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set("compression.type", "zstd")
        .create()?;
    let t = Instant::now();
    for chunk in lines.chunks(50_000) {
        let sends = chunk.iter().map(|l| {
            p.send(
                FutureRecord::<(), _>::to("base").payload(*l),
                Duration::from_secs(60),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e)?;
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

fn shipped(port: u16) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut body);
    body.lines()
        .filter(|l| l.starts_with("weir_ship_events_shipped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The baseline alone, in this process (run pinned by `main`): prints its
/// seconds.
fn baseline_child(bootstrap: &str, file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let data = std::fs::read(file)?;
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let rt = tokio::runtime::Runtime::new()?;
    println!("{}", rt.block_on(baseline(bootstrap, &lines))?);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let (Ok(b), Ok(f)) = (
        std::env::var("WEIR_BENCH_BASELINE_BROKER"),
        std::env::var("WEIR_BENCH_BASELINE_FILE"),
    ) {
        return baseline_child(&b, &f);
    }
    let n: usize = std::env::var("WEIR_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let broker = Broker::memory();
    broker.create_topic("base", 1);
    broker.create_topic("ship", 1);
    let data = generate_ndjson(
        GeneratorConfig {
            start_us: Some(1_772_323_200_000_000),
            ..Default::default()
        },
        n,
    );
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("app.log");
    std::fs::write(&file, &data)?;

    // The agent's own work, without a broker: line → event → JSON, one thread.
    let cfg = weir_ship::ShipConfig::parse(
        "topic: logs\nsources:\n  - { name: app, type: stdin, service: checkout, environment: production }\n",
    )?;
    let shape = weir_ship::event::EventShape::new(&cfg.sources[0], Some("logs"), "bench-host");
    let t = Instant::now();
    let now = chrono::Utc::now();
    let mut bytes = 0usize;
    for l in &lines {
        if let Some(e) = shape.line(std::str::from_utf8(l).unwrap_or(""), now) {
            bytes += e.json().len();
        }
    }
    let build_s = t.elapsed().as_secs_f64();

    // The baseline on one core too, when taskset is there: this benchmark
    // run again as a child that only runs the baseline.
    let pinned = Command::new("taskset").arg("--version").output().is_ok();
    let base_s = if pinned {
        let out = Command::new("taskset")
            .args(["-c", "0"])
            .arg(std::env::current_exe()?)
            .env("WEIR_BENCH_BASELINE_BROKER", broker.bootstrap())
            .env("WEIR_BENCH_BASELINE_FILE", &file)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err("the pinned baseline failed".into());
        }
        String::from_utf8_lossy(&out.stdout).trim().parse::<f64>()?
    } else {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(baseline(&broker.bootstrap(), &lines))?
    };

    let port = support::free_port();
    std::fs::write(
        dir.path().join("ship.yaml"),
        format!(
            "kafka: {{ brokers: \"{}\" }}\ntopic: ship\nmetrics: \"127.0.0.1:{port}\"\nstate_dir: state\nsources:\n  - name: app\n    type: file\n    paths: [\"{}\"]\n",
            broker.bootstrap(),
            file.display()
        ),
    )?;
    let weir = env!("CARGO_BIN_EXE_weir");
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", weir]);
        c
    } else {
        Command::new(weir)
    };
    cmd.args(["ship", "--config"])
        .arg(dir.path().join("ship.yaml"))
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let t = Instant::now();
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while shipped(port) < n as u64 {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("weir ship did not ship everything within 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ship_s = t.elapsed().as_secs_f64();
    let rss = support::peak_rss_mib_of(&child.id().to_string());
    let _ = child.kill();
    let _ = child.wait();
    let mib = data.len() as f64 / (1 << 20) as f64;
    println!("ship: {n} lines ({mib:.0} MiB) from a file to the broker");
    println!(
        "weir ship event building (line → event → JSON, one thread, no broker): {:>10.0} lines/s ({:.0} MiB of events)",
        n as f64 / build_s,
        bytes as f64 / (1 << 20) as f64
    );
    println!(
        "baseline  bare rdkafka producer{}: {:>10.0} lines/s",
        if pinned { " (one core)" } else { "" },
        n as f64 / base_s
    );
    println!(
        "weir ship{}:        {:>10.0} lines/s  ({:.2}x of baseline; peak RSS {rss:.0} MiB; includes start-up)",
        if pinned { " (one core)" } else { "           " },
        n as f64 / ship_s,
        base_s / ship_s
    );
    Ok(())
}
