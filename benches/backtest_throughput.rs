//! `weir backtest` over an archive against the live engine on the same
//! events, in the same run, both on one core (`taskset -c 0`).
//!
//! WEIR_BENCH_EVENTS (default 2,000,000) JSON events of six services are
//! written as NDJSON; `weir run` reads them through a file source with the
//! demo's two pipelines (windows, quantiles, an alert) and archives them —
//! the live peer; then `weir backtest` runs the same pipelines over that
//! archive. Prints both rates (the live one is wall time of the whole run,
//! archiving included; the backtest's is its own summary line, which
//! excludes process start and planning).
//!
//! `cargo bench --bench backtest_throughput`
// Benchmark code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

const RULES: &str = r#"
source shop = file(path: "events.jsonl") format json fields { latency_ms: float, status: int }
archive shop partition by hour

pipeline checkout_errors {
  from shop
  | where service == "checkout" and severity >= warn
  | window tumbling 30s by service, environment lateness 5s {
      errors = count(), p99_ms = quantile(latency_ms, 0.99)
    }
  | alert "checkout error burst" when errors > 50 severity critical
}

pipeline slow_services {
  from shop
  | where status < 500
  | window sliding 5m every 1m by service lateness 10s { p95 = quantile(latency_ms, 0.95), n = count() }
  | alert "slow service" when p95 > 400 severity warn
}
"#;

fn one_core(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_weir")])
        .args(args)
        .current_dir(dir)
        .env("WEIR_LOG", "warn")
        .output()
        .expect("taskset (util-linux) and weir run")
}

fn main() {
    let n: u64 = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let services = [
            "checkout",
            "payments",
            "search",
            "frontend",
            "auth",
            "inventory",
        ];
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(dir.path().join("events.jsonl")).unwrap(),
        );
        let start = 1_772_323_200_000_000i64; // 2026-03-01T00:00:00Z
        for i in 0..n {
            let t = chrono::DateTime::from_timestamp_micros(start + i as i64 * 5_000).unwrap();
            let service = services[(i % 6) as usize];
            let severity = ["info", "info", "info", "warn", "error"][(i % 5) as usize];
            writeln!(
                f,
                "{{\"timestamp\":\"{}\",\"service\":\"{service}\",\"environment\":\"prod\",\"severity\":\"{severity}\",\"message\":\"request {i}\",\"latency_ms\":{:.1},\"status\":{}}}",
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                (i * 7919 % 1000) as f64 / 2.0,
                if i % 50 == 0 { 503 } else { 200 }
            )
            .unwrap();
        }
    }
    std::fs::write(dir.path().join("bench.rules"), RULES).unwrap();

    let t = Instant::now();
    let live = one_core(
        &["run", "bench.rules", "--quiet", "--data-dir", "data"],
        dir.path(),
    );
    let live_secs = t.elapsed().as_secs_f64();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );

    let back = one_core(
        &[
            "backtest",
            "bench.rules",
            "--from",
            "2026-02-28T00:00:00Z",
            "--to",
            "2026-03-02T00:00:00Z",
            "--data-dir",
            "data",
        ],
        dir.path(),
    );
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let stderr = String::from_utf8_lossy(&back.stderr);
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("backtest:"))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let rate: f64 = summary
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    println!(
        "live (NDJSON file → decode → 2 pipelines + archive), one core: {:.0} events/s",
        n as f64 / live_secs
    );
    println!(
        "backtest (archive → 2 pipelines), one core: {rate:.0} events/s (target >= 5,000,000)"
    );
    println!("{summary}");
}
