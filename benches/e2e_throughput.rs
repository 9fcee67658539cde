//! End-to-end throughput: generated NDJSON → decode → filter → enrich (lookup) →
//! tumbling window → alert, on one core (a current-thread runtime), against a
//! baseline in the same run: decoding alone. Then decoding dirty input: the
//! same lines with 0.1 %, 1 % and 10 % of them cut in half (spread evenly),
//! against the clean rate (#16's goals: at most 5 %, 10 % and 35 % slower),
//! every cut line counted as a dead letter. Prints events/s and peak RSS.
//!
//! `cargo bench --bench e2e_throughput` (WEIR_BENCH_EVENTS sets the count,
//! default 2,000,000).
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;
use weir_connectors::sources::generator::{generate_ndjson, GeneratorConfig};
use weir_engine::decode::LineDecoder;
use weir_engine::functions::TableCache;
use weir_engine::pipeline::compile_pipelines;
use weir_engine::{AlertManager, LineBatch, Metrics};

const RULES: &str = r#"
source app = generator() format json
  fields { latency_ms: float, status: int, user_id: string }
pipeline checkout_errors {
  from app
  | where service == "checkout" and severity >= warn
  | set team = lookup("teams.csv", service, "team")
  | window tumbling 1m by service, environment, team lateness 5s {
      errors = count(), users = count_distinct(user_id), p99 = quantile(latency_ms, 0.99)
    }
  | alert "checkout error burst" when errors > 50 severity critical
}
pipeline all_services {
  from app
  | where severity >= info
  | window tumbling 1m by service { events = count(), avg_ms = avg(latency_ms) }
}
"#;

fn batches(data: &[u8], per_batch: usize) -> Vec<LineBatch> {
    let mut out = Vec::new();
    let mut cur = LineBatch::with_capacity(per_batch * 300, per_batch);
    for (i, line) in data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        cur.push(line);
        if cur.len() == per_batch {
            let next_first = i as i64 + 1;
            out.push(std::mem::replace(
                &mut cur,
                LineBatch::with_capacity(per_batch * 300, per_batch),
            ));
            cur.first_offset = next_first;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Decodes every batch, three times: the best time, and the rows and dead
/// letters of one pass. (One pass swung by a third from run to run on the
/// development VM, whose kernel pages out memory it finds cold.)
fn decode_best(
    decoder: &mut LineDecoder,
    input: &[LineBatch],
) -> Result<(f64, usize, usize), Box<dyn std::error::Error>> {
    let mut best = f64::MAX;
    let (mut rows, mut dead) = (0, 0);
    for _ in 0..3 {
        (rows, dead) = (0, 0);
        let t = Instant::now();
        for b in input {
            let out = decoder.decode(b)?;
            rows += out.batch.map(|b| b.num_rows()).unwrap_or(0);
            dead += out.dead.len();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((best, rows, dead))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let cfg = GeneratorConfig {
        start_us: Some(1_767_225_600_000_000),
        step_us: 1_000,
        ..Default::default()
    };
    let data = generate_ndjson(cfg, n);
    let input = batches(&data, 8192);
    println!(
        "input: {n} events, {:.1} MiB NDJSON, {} batches",
        data.len() as f64 / (1 << 20) as f64,
        input.len()
    );
    let program = weir_dsl::compile(RULES).map_err(|d| format!("{d:?}"))?;
    let source = &program.sources[0];

    // Baseline: decoding alone.
    let mut decoder = LineDecoder::new("app", &source.format, &source.schema)?;
    let (base_secs, rows, _) = decode_best(&mut decoder, &input)?;
    assert_eq!(rows, n);
    let base_rate = n as f64 / base_secs;
    println!("baseline  decode only:            {base_rate:>12.0} events/s");

    // The full pipelines, on one thread.
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry)?;
    let alerts = AlertManager::in_memory();
    let mut tables = TableCache::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/examples"));
    let outputs = Default::default();
    let mut pipelines =
        compile_pipelines(&program, &mut tables, &outputs, alerts.clone(), &metrics)?;
    let mut decoder = LineDecoder::new("app", &source.format, &source.schema)?;
    let secs = support::run_pipelines(&mut decoder, &mut pipelines, &input)?;
    let rate = n as f64 / secs;
    let fired = alerts
        .history(100_000)
        .iter()
        .filter(|e| e.event == "firing")
        .count();
    println!(
        "weir      decode+2 pipelines:     {rate:>12.0} events/s  ({:.2}x of baseline)",
        rate / base_rate
    );
    println!("alerts fired: {fired}");

    // Dirty input: every k-th line cut in half.
    for (label, every) in [("0.1%", 1000usize), ("1%", 100), ("10%", 10)] {
        let dirty: Vec<u8> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
            .flat_map(|(i, l)| {
                let keep = if i % every == every / 2 {
                    l.len() / 2
                } else {
                    l.len()
                };
                l[..keep].iter().copied().chain(std::iter::once(b'\n'))
            })
            .collect();
        let input = batches(&dirty, 8192);
        let mut decoder = LineDecoder::new("app", &source.format, &source.schema)?;
        let (secs, rows, dead) = decode_best(&mut decoder, &input)?;
        let rate = n as f64 / secs;
        assert_eq!(rows + dead, n);
        assert_eq!(dead, (0..n).filter(|i| i % every == every / 2).count());
        println!(
            "weir      decode, {label:>4} cut lines:  {rate:>12.0} events/s  ({:.2}x of clean decode, {dead} dead letters)",
            rate / base_rate
        );
    }
    println!("peak RSS: {:.1} MiB", support::peak_rss_mib());
    assert!(fired > 0, "the benchmark pipeline should fire alerts");
    Ok(())
}
