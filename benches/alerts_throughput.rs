//! Alert evaluation and notification latency.
//!
//! 1. 100,000 group keys: events → tumbling window → `alert` (every key fires,
//!    then resolves, window after window), against the same pipeline without
//!    the alert stage in the same run. Prints events/s of both and the alert
//!    evaluations per second the alert stage and lifecycle sustain.
//! 2. Latency from window evaluation to a webhook receiver on loopback
//!    accepting the notification (real HTTP, the default 100 ms group_wait),
//!    p50 and p99 over 200 alerts.
//!
//! 3. The cost of checkpointing window state: encoding, size and restoring
//!    the state of 100,000 open keys (count, count_distinct, p99).
//! 4. Silences at that scale: the same 100,000 open alerts with 100 silences
//!    (regex matchers; one of them silencing a tenth of the keys), against
//!    none, in the same run.
//! 5. Distinct counts on a high-cardinality field: 1-minute windows counting
//!    the distinct users (100,000 a window) exactly and approximately,
//!    against a plain count.
//!
//! `cargo bench --bench alerts_throughput` (WEIR_BENCH_KEYS sets the key count).
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_engine::alerting::{AlertRule, AlertSink, Evaluation, Hit};
use weir_engine::decode::LineDecoder;
use weir_engine::functions::TableCache;
use weir_engine::pipeline::compile_pipelines;
use weir_engine::{AlertManager, LineBatch, Metrics};

const WINDOW_ONLY: &str = r#"
source app = generator() format json fields { user: string }
pipeline keys {
  from app
  | window tumbling 1m by user { errors = count() }
}
"#;

const WITH_ALERT: &str = r#"
source app = generator() format json fields { user: string }
pipeline keys {
  from app
  | window tumbling 1m by user { errors = count() }
  | alert "per user" when errors >= 2 severity warning
}
"#;

/// The same alert without evidence (no sample events kept, no query built).
const WITHOUT_EVIDENCE: &str = r#"
source app = generator() format json fields { user: string }
pipeline keys {
  from app
  | window tumbling 1m by user { errors = count() }
  | alert "per user" when errors >= 2 severity warning evidence 0
}
"#;

/// One window over all users: `AGG` of the user field.
const DISTINCT: &str = r#"
source app = generator() format json fields { user: string }
pipeline users {
  from app
  | window tumbling 1m { v = AGG }
}
"#;

/// A manager like the one `weir serve` runs (metrics, history), with
/// `silences` silences: regexes on `user` that match none of the bench's
/// keys, and, when there are any, one silencing every key ending in 7.
fn manager_with_silences(silences: usize) -> anyhow::Result<Arc<AlertManager>> {
    let m = AlertManager::new(
        Arc::new(weir_engine::alerting::SystemClock),
        weir_engine::AlertSettings {
            log_unrouted: false,
            ..Default::default()
        },
        Some(Metrics::new(&prometheus::Registry::new())?),
    )
    .map_err(anyhow::Error::msg)?;
    for i in 0..silences {
        let pattern = if i == 0 {
            "user=~u[0-9]*7".to_string()
        } else {
            format!("user=~x{i}-[0-9]+")
        };
        let matcher =
            weir_engine::alerting::Matcher::parse(&pattern).map_err(anyhow::Error::msg)?;
        m.add_silence(
            vec![
                matcher,
                weir_engine::alerting::Matcher::parse("alertname=per user")
                    .map_err(anyhow::Error::msg)?,
            ],
            None,
            Duration::from_secs(3600),
            "bench".into(),
            String::new(),
        )?;
    }
    Ok(m)
}

/// `windows` minutes; in even minutes every key has 2 events (fires), in odd
/// minutes 1 (does not match, so the alert resolves).
fn input(keys: usize, windows: usize) -> Vec<LineBatch> {
    let mut out = Vec::new();
    let mut batch = LineBatch::with_capacity(1 << 20, 8192);
    let mut offset = 0i64;
    for w in 0..windows {
        let per_key = if w % 2 == 0 { 2 } else { 1 };
        for k in 0..keys {
            for _ in 0..per_key {
                let line = format!(
                    "{{\"timestamp\":\"2026-01-01T00:{w:02}:{:02}Z\",\"user\":\"u{k}\"}}",
                    (k % 60)
                );
                batch.push(line.as_bytes());
                offset += 1;
                if batch.ends.len() == 8192 {
                    let next_first = offset;
                    out.push(std::mem::replace(
                        &mut batch,
                        LineBatch::with_capacity(1 << 20, 8192),
                    ));
                    batch.first_offset = next_first;
                }
            }
        }
    }
    if !batch.ends.is_empty() {
        out.push(batch);
    }
    out
}

fn run(rules: &str, input: &[LineBatch], alerts: Arc<AlertManager>) -> anyhow::Result<f64> {
    let program = weir_dsl::compile(rules).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let source = &program.sources[0];
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry)?;
    let mut tables = TableCache::new(".");
    let outputs = Default::default();
    let mut pipelines = compile_pipelines(&program, &mut tables, &outputs, alerts, &metrics)?;
    let mut decoder = LineDecoder::new("app", &source.format, &source.schema)?;
    support::run_pipelines(&mut decoder, &mut pipelines, input).map_err(|e| anyhow::anyhow!("{e}"))
}

/// What saving and restoring the window state of `keys` open keys costs
/// at a checkpoint (the pipeline is in the middle of its first window):
/// (encode ms, bytes, restore ms).
fn snapshot_cost(keys: usize) -> anyhow::Result<(f64, usize, f64)> {
    let rules = r#"
source app = generator() format json fields { user: string, latency_ms: float }
pipeline keys {
  from app
  | window tumbling 1m by user { n = count(), users = count_distinct(user), p99 = p99(latency_ms) }
}
"#;
    let program = weir_dsl::compile(rules).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let source = &program.sources[0];
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry)?;
    let mut tables = TableCache::new(".");
    let outputs = Default::default();
    let alerts: Arc<dyn AlertSink> = AlertManager::in_memory();
    let compile = |tables: &mut TableCache| {
        compile_pipelines(&program, tables, &outputs, alerts.clone(), &metrics)
    };
    let mut pipelines = compile(&mut tables)?;
    let mut decoder = LineDecoder::new("app", &source.format, &source.schema)?;
    // Three events per key, all in the first minute: every key open.
    let mut batch = LineBatch::with_capacity(1 << 20, 8192);
    let mut input = Vec::new();
    for i in 0..keys * 3 {
        let line = format!(
            "{{\"timestamp\":\"2026-01-01T00:00:{:02}Z\",\"user\":\"u{}\",\"latency_ms\":{}.5}}",
            i % 60,
            i % keys,
            i % 997
        );
        batch.push(line.as_bytes());
        if batch.ends.len() == 8192 {
            input.push(std::mem::replace(
                &mut batch,
                LineBatch::with_capacity(1 << 20, 8192),
            ));
        }
    }
    input.push(batch);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for b in &input {
            if let Some(batch) = decoder.decode(b)?.batch {
                pipelines[0].push(batch).await?;
            }
        }
        Ok::<_, weir_engine::EngineError>(())
    })?;
    let t = Instant::now();
    let snap = pipelines[0].snapshot()?;
    let encode = t.elapsed().as_secs_f64() * 1000.0;
    let bytes = snap.size();
    let mut fresh = compile(&mut tables)?;
    let t = Instant::now();
    let restored = fresh[0].restore(snap)?;
    let restore = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(restored == 1, "the window was not restored");
    Ok((encode, bytes, restore))
}

async fn latency(samples: usize) -> anyhow::Result<Vec<f64>> {
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let a2 = arrivals.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let a2 = a2.clone();
            async move {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let rule = v["rule"].as_str().unwrap_or_default().to_string();
                a2.lock().map(|mut a| a.push((rule, Instant::now()))).ok();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let cfg: weir_connectors::notify::ChannelConfig = toml::from_str(&format!(
        "type = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nrate_limit = \"none\""
    ))?;
    let (notifier, settings) = weir_connectors::notify::build("hook", &cfg)?;
    let manager = AlertManager::in_memory();
    if let Some(n) = notifier {
        manager.add_channel("hook", n, settings);
    }
    let mut sent = Vec::with_capacity(samples);
    for i in 0..samples {
        let rule = Arc::new(AlertRule {
            name: format!("rule-{i}"),
            pipeline: "bench".into(),
            severity: "critical".into(),
            labels: vec![],
            annotations: vec![],
            notify: vec!["hook".into()],
            for_us: 0,
            resolve_after_us: 60_000_000,
        });
        let hit = Hit {
            group: BTreeMap::from([("service".to_string(), "checkout".to_string())]),
            values: Default::default(),
            window_start_us: 0,
            window_end_us: 60_000_000,
            evidence: None,
        };
        sent.push((format!("rule-{i}"), Instant::now()));
        manager.evaluate(Evaluation {
            rule,
            hits: vec![hit],
            closed_until_us: Some(60_000_000),
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arrived = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for (rule, t0) in sent {
        if let Some((_, t1)) = arrived.iter().find(|(r, _)| *r == rule) {
            out.push(t1.duration_since(t0).as_secs_f64() * 1000.0);
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let keys: usize = std::env::var("WEIR_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let windows = 6;
    let data = input(keys, windows);
    let events: usize = data.iter().map(|b| b.ends.len()).sum();
    let base = run(WINDOW_ONLY, &data, AlertManager::in_memory())?;
    let registry = prometheus::Registry::new();
    let alert_metrics = Metrics::new(&registry)?;
    let manager = AlertManager::new(
        Arc::new(weir_engine::alerting::SystemClock),
        weir_engine::AlertSettings {
            log_unrouted: false,
            ..Default::default()
        },
        Some(alert_metrics.clone()),
    )
    .map_err(anyhow::Error::msg)?;
    let with = run(WITH_ALERT, &data, manager.clone())?;
    // The same kind of manager (metrics, history), so only evidence differs.
    let bare = run(WITHOUT_EVIDENCE, &data, manager_with_silences(0)?)?;
    let evaluated = keys * windows;
    let transitions = |state: &str| {
        alert_metrics
            .alert_transitions
            .with_label_values(&["per user", state])
            .get()
    };
    let (fired, resolved) = (transitions("firing"), transitions("resolved"));
    println!("alert evaluation, {keys} group keys, {windows} windows, {events} events:");
    println!(
        "baseline  window only:        {:>12.0} events/s",
        events as f64 / base
    );
    println!(
        "weir      window + alert:     {:>12.0} events/s  ({:.2}x of baseline)",
        events as f64 / with,
        base / with
    );
    println!(
        "          window + alert, evidence 0: {:>8.0} events/s  (evidence 3 costs {:.0} %: every key fires, so nearly every event is sampled)",
        events as f64 / bare,
        (with / bare - 1.0) * 100.0
    );
    println!(
        "          alert stage: {evaluated} window rows evaluated, {fired} fired, {resolved} resolved; {:.0} rows/s of added time",
        evaluated as f64 / (with - base).max(1e-6)
    );
    println!("          peak RSS {:.0} MiB", support::peak_rss_mib());
    let (encode, bytes, restore) = snapshot_cost(keys)?;
    println!(
        "checkpoint of the window state, {keys} open keys (count, count_distinct, p99): {encode:.1} ms to encode, {:.1} MiB, {restore:.1} ms to restore",
        bytes as f64 / (1 << 20) as f64
    );

    let quiet = run(WITH_ALERT, &data, manager_with_silences(0)?)?;
    let silenced_manager = manager_with_silences(100)?;
    let silenced = run(WITH_ALERT, &data, silenced_manager.clone())?;
    let held = silenced_manager
        .open()
        .iter()
        .filter(|a| a.silenced_by.is_some())
        .count();
    println!(
        "silences: {keys} open alerts, no silence {:.0} events/s; 100 regex silences {:.0} events/s ({:+.1} %), {held} alerts held by one",
        events as f64 / quiet,
        events as f64 / silenced,
        (quiet / silenced - 1.0) * 100.0
    );

    // Distinct counts: every key's events again, one window a minute.
    let distinct = |agg: &str| {
        run(
            &DISTINCT.replace("AGG", agg),
            &data,
            AlertManager::in_memory(),
        )
    };
    distinct("count()")?; // warm-up: the first run grows the heap
    let count = distinct("count()")?;
    let exact = distinct("count_distinct(user)")?;
    let approx = distinct("approx_count_distinct(user)")?;
    println!(
        "distinct users ({keys} a window): count() {:.0} events/s; count_distinct {:.0} events/s ({:.2}x the time); approx_count_distinct {:.0} events/s ({:.2}x)",
        events as f64 / count,
        events as f64 / exact,
        exact / count,
        events as f64 / approx,
        approx / count
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut lat = rt.block_on(latency(200))?;
    lat.sort_by(|a, b| a.total_cmp(b));
    if lat.is_empty() {
        anyhow::bail!("no notification arrived");
    }
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "notification latency (evaluation → webhook received, group_wait 100 ms): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of 200)",
        q(0.5),
        q(0.99),
        q(1.0),
        lat.len()
    );
    Ok(())
}
