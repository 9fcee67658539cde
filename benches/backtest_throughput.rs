//! `weir backtest` over an archive against the live engine on the same
//! events, in the same run, both on one core (`taskset -c 0`).
//!
//! WEIR_BENCH_EVENTS (default 2,000,000) JSON events of six services are
//! written as NDJSON; `weir run` reads them through a file source with the
//! demo's two pipelines (windows, quantiles, an alert) and archives them —
//! the live peer; then `weir backtest` runs the same pipelines over that
//! archive. Prints both rates (the live one is wall time of the whole run,
//! archiving included; the backtest's is its own summary line, which
//! excludes process start and planning; the median of three runs) and
//! each process's peak RSS.
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

#[path = "../tests/support/mod.rs"]
mod support;

/// Runs weir on core 0; its output and peak RSS (MiB, sampled every 10 ms).
fn one_core(args: &[&str], dir: &std::path::Path) -> (std::process::Output, f64) {
    let child = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_weir")])
        .args(args)
        .current_dir(dir)
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("taskset (util-linux) and weir run");
    // taskset execs weir: the same process.
    let pid = child.id().to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let now = support::peak_rss_mib_of(&pid);
                if now.is_finite() {
                    peak = peak.max(now);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, sampler.join().unwrap())
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
    let (live, live_mib) = one_core(
        &["run", "bench.rules", "--quiet", "--data-dir", "data"],
        dir.path(),
    );
    let live_secs = t.elapsed().as_secs_f64();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );

    // The backtest is short and its figure swings with the machine (first
    // touches of memory): the median of three runs.
    let mut runs: Vec<(f64, f64, String)> = (0..3)
        .map(|_| {
            let (back, mib) = one_core(
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
                .unwrap_or_else(|| panic!("no summary in {stderr}"))
                .to_string();
            let rate: f64 = summary
                .split('(')
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            (rate, mib, summary)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rate, back_mib, summary) = runs.swap_remove(1);
    println!(
        "live (NDJSON file → decode → 2 pipelines + archive), one core: {:.0} events/s, peak RSS {live_mib:.0} MiB",
        n as f64 / live_secs
    );
    println!(
        "backtest (archive → 2 pipelines), one core: {rate:.0} events/s, peak RSS {back_mib:.0} MiB (median of 3; target >= 5,000,000)"
    );
    println!("{summary}");
}
