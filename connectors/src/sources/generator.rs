//! `generator(...)`: realistic logs of a small shop (checkout, payments, search,
//! auth, inventory, frontend) with an error burst in checkout every
//! `burst_every`, for demos, tests and benchmarks. Deterministic for a seed; with
//! `start` and `step` its event times are too.

use super::lines::now_us;
use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use weir_engine::{LineBatch, LineSender, Result, Source};

/// Settings of the generator.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Events per second; 0 = as fast as possible.
    pub rate: u64,
    /// Stop after this many; 0 = never.
    pub count: u64,
    pub seed: u64,
    /// Event time of the first event (µs); `None` = wall clock.
    pub start_us: Option<i64>,
    /// Event-time step (µs) between events when `start_us` is set.
    pub step_us: i64,
    /// Every this much event time, checkout errors burst for a minute.
    pub burst_every_us: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            rate: 1000,
            count: 0,
            seed: 42,
            start_us: None,
            step_us: 1000,
            burst_every_us: 300_000_000,
        }
    }
}

const SERVICES: [(&str, u32, f64); 6] = [
    // name, weight, base latency ms
    ("frontend", 30, 40.0),
    ("search", 20, 80.0),
    ("checkout", 15, 120.0),
    ("payments", 10, 200.0),
    ("auth", 15, 25.0),
    ("inventory", 10, 60.0),
];

const INFO: [&str; 6] = [
    "request completed",
    "cache hit for product page",
    "user session refreshed",
    "order placed",
    "search results served",
    "health check ok",
];
const WARN: [&str; 4] = [
    "slow response from upstream",
    "retrying request to payment provider",
    "cache miss ratio above threshold",
    "connection pool nearly exhausted",
];
const ERROR: [&str; 4] = [
    "upstream timeout after 3000ms",
    "payment declined: gateway error",
    "database connection refused",
    "unhandled exception in request handler",
];
const DEBUG: [&str; 2] = ["query plan selected", "feature flag evaluated"];

/// Produces events as JSON lines.
pub struct Generator {
    cfg: GeneratorConfig,
    rng: SmallRng,
    n: u64,
    ts_prefix_secs: i64,
    ts_prefix: String,
    total_weight: u32,
}

impl Generator {
    pub fn new(cfg: GeneratorConfig) -> Generator {
        Generator {
            rng: SmallRng::seed_from_u64(cfg.seed),
            cfg,
            n: 0,
            ts_prefix_secs: i64::MIN,
            ts_prefix: String::new(),
            total_weight: SERVICES.iter().map(|s| s.1).sum(),
        }
    }

    /// Events produced so far.
    pub fn produced(&self) -> u64 {
        self.n
    }

    fn done(&self) -> bool {
        self.cfg.count > 0 && self.n >= self.cfg.count
    }

    /// Appends up to `max` events to `batch`; returns how many.
    pub fn fill(&mut self, batch: &mut LineBatch, max: usize) -> usize {
        let mut line = Vec::with_capacity(320);
        let mut made = 0;
        while made < max && !self.done() {
            line.clear();
            self.event(&mut line);
            batch.push(&line);
            made += 1;
        }
        made
    }

    fn timestamp(&mut self, ts_us: i64, out: &mut Vec<u8>) {
        let secs = ts_us.div_euclid(1_000_000);
        if secs != self.ts_prefix_secs {
            self.ts_prefix_secs = secs;
            self.ts_prefix = chrono::DateTime::from_timestamp(secs, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                .unwrap_or_else(|| "1970-01-01T00:00:00".into());
        }
        let millis = ts_us.rem_euclid(1_000_000) / 1000;
        out.extend_from_slice(self.ts_prefix.as_bytes());
        let _ = write!(out, ".{millis:03}Z");
    }

    fn event(&mut self, out: &mut Vec<u8>) {
        let ts = match self.cfg.start_us {
            Some(start) => start + self.n as i64 * self.cfg.step_us,
            None => now_us(),
        };
        self.n += 1;
        let mut pick = self.rng.random_range(0..self.total_weight);
        let mut svc = SERVICES[0];
        for s in SERVICES {
            if pick < s.1 {
                svc = s;
                break;
            }
            pick -= s.1;
        }
        let (service, _, base) = svc;
        let in_burst = service == "checkout"
            && self.cfg.burst_every_us > 0
            && ts.rem_euclid(self.cfg.burst_every_us) < 60_000_000;
        let roll: f64 = self.rng.random();
        let severity = if in_burst {
            if roll < 0.6 {
                "ERROR"
            } else {
                "WARN"
            }
        } else if roll < 0.04 {
            "ERROR"
        } else if roll < 0.12 {
            "WARN"
        } else if roll < 0.20 {
            "DEBUG"
        } else {
            "INFO"
        };
        let message = match severity {
            "ERROR" => ERROR[self.rng.random_range(0..ERROR.len())],
            "WARN" => WARN[self.rng.random_range(0..WARN.len())],
            "DEBUG" => DEBUG[self.rng.random_range(0..DEBUG.len())],
            _ => INFO[self.rng.random_range(0..INFO.len())],
        };
        let status = match severity {
            "ERROR" => 500 + self.rng.random_range(0..4u32),
            "WARN" if roll < 0.10 => 429,
            _ if roll > 0.97 => 404,
            _ => 200,
        };
        // A long-tailed latency: mostly near the base, sometimes ten times it.
        let u: f64 = self.rng.random();
        let mut latency = base
            * (0.5 + u)
            * if self.rng.random::<f64>() < 0.02 {
                10.0
            } else {
                1.0
            };
        if severity == "ERROR" {
            latency *= 5.0;
        }
        let env = if self.rng.random::<f64>() < 0.8 {
            "production"
        } else {
            "staging"
        };
        let host = self.rng.random_range(1..=4u32);
        let ip = (
            self.rng.random_range(1..=223u8),
            self.rng.random::<u8>(),
            self.rng.random::<u8>(),
            self.rng.random_range(1..=254u8),
        );
        let user = self.rng.random_range(1..=5000u32);
        let trace: u64 = self.rng.random();
        out.extend_from_slice(b"{\"timestamp\":\"");
        self.timestamp(ts, out);
        let _ = write!(
            out,
            "\",\"service\":\"{service}\",\"environment\":\"{env}\",\"host\":\"{service}-{host}\",\"severity\":\"{severity}\",\"message\":\"{message}\",\"latency_ms\":{latency:.1},\"status\":{status},\"client_ip\":\"{}.{}.{}.{}\",\"user_id\":\"u{user}\",\"trace_id\":\"{trace:016x}\"}}",
            ip.0, ip.1, ip.2, ip.3
        );
    }
}

/// `count` events as NDJSON in memory (benchmarks and tests).
pub fn generate_ndjson(cfg: GeneratorConfig, count: usize) -> Vec<u8> {
    let mut g = Generator::new(GeneratorConfig { count: 0, ..cfg });
    let mut batch = LineBatch::with_capacity(count * 300, count);
    g.fill(&mut batch, count);
    batch.data
}

pub struct GeneratorSource {
    pub cfg: GeneratorConfig,
}

impl GeneratorSource {
    /// `generator(rate:, count:, seed:, start:, step:, burst_every:)`.
    pub fn from_decl(
        _: &crate::LocalFactory,
        source: &weir_dsl::CheckedSource,
    ) -> Result<Box<dyn Source>> {
        let args = crate::args::Args(&source.decl.connector);
        let d = GeneratorConfig::default();
        let us = |n: &str| args.duration(n).map(|d| d.as_micros() as i64);
        Ok(Box::new(GeneratorSource {
            cfg: GeneratorConfig {
                rate: args.int("rate").unwrap_or(d.rate),
                count: args.int("count").unwrap_or(d.count),
                seed: args.int("seed").unwrap_or(d.seed),
                start_us: args.time("start")?.map(|t| t.timestamp_micros()),
                step_us: us("step").unwrap_or(d.step_us),
                burst_every_us: us("burst_every").unwrap_or(d.burst_every_us),
            },
        }))
    }
}

#[async_trait]
impl Source for GeneratorSource {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        let rate = self.cfg.rate;
        let per_batch = if rate == 0 {
            8192
        } else {
            (rate / 20).clamp(1, 8192) as usize
        };
        let mut g = Generator::new(self.cfg);
        let started = Instant::now();
        while !g.done() && !shutdown.is_cancelled() {
            let mut batch = LineBatch::with_capacity(per_batch * 300, per_batch);
            batch.first_offset = g.produced() as i64;
            g.fill(&mut batch, per_batch);
            batch.received_at_us = now_us();
            if out.send(batch).await.is_err() {
                break;
            }
            if rate > 0 {
                let due = Duration::from_secs_f64(g.produced() as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            } else {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_valid_json_with_bursts() {
        let cfg = GeneratorConfig {
            start_us: Some(0),
            step_us: 10_000,
            ..Default::default()
        };
        let a = generate_ndjson(cfg.clone(), 2000);
        let b = generate_ndjson(cfg, 2000);
        assert_eq!(a, b);
        let mut burst_errors = 0;
        for line in a.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value =
                serde_json::from_slice(line).unwrap_or_else(|e| panic!("{e}"));
            if v["service"] == "checkout" && v["severity"] == "ERROR" {
                burst_errors += 1;
            }
            assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        }
        // 2000 events 10ms apart = the first 20s, inside the burst.
        assert!(burst_errors > 100, "{burst_errors}");
    }
}
