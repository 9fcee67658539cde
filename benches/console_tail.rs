//! The console's live tail (`GET /api/v1/tail`, a WebSocket) under load,
//! against a real `weir serve` on loopback.
//!
//! 1. Latency: events posted to an `http` source at WEIR_BENCH_RATE events/s
//!    (default 10,000) for WEIR_BENCH_SECS seconds (default 10), each
//!    carrying its send time; one tail client. p50 and p99 from the POST to
//!    the event's arrival at the client (the server batches messages every
//!    100 ms and sends each client at most 500 events/s, sampled).
//! 2. Fan-out: WEIR_BENCH_EVENTS events (default 1,000,000) posted as fast
//!    as the server takes them, with no tail client and with 20; the
//!    engine's ingest rate both ways (the peer is the same server without
//!    clients) and the server's peak memory.
//!
//! `cargo bench --bench console_tail`
// Benchmark code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/mod.rs"]
mod support;

use futures::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::server::{create_token, start_server, RULES};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tail client: counts events and records latencies until `stop`.
async fn client(
    base: String,
    token: String,
    latencies: Arc<Mutex<Vec<i64>>>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/v1/tail?source=web",
        base.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => break,
            Err(_) => continue,
        };
        let at = now_us();
        let Ok(text) = msg.into_text() else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let events = v["events"].as_array().cloned().unwrap_or_default();
        received.fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut l = latencies.lock().unwrap();
        for e in events {
            if let Some(sent) = e["sent_us"].as_i64() {
                l.push(at - sent);
            }
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, token: &str, from: u64, n: u64) {
    let sent = now_us();
    let body: String = (from..from + n)
        .map(|i| {
            format!(
                "{{\"service\":\"svc{}\",\"severity\":\"info\",\"message\":\"event {i}\",\"sent_us\":{sent}}}\n",
                i % 5
            )
        })
        .collect();
    let r = http
        .post(url)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

async fn source_events(http: &reqwest::Client, base: &str) -> u64 {
    let text = support::get_text(http, &format!("{base}/metrics")).await;
    text.lines()
        .find(|l| l.starts_with("weir_source_events_total{source=\"web\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Posts `n` events as fast as the server takes them (4 posters); returns
/// events/s until the engine counted them all.
async fn flood(http: &reqwest::Client, base: &str, url: &str, token: &str, n: u64) -> f64 {
    let before = source_events(http, base).await;
    let t = Instant::now();
    let per = n / 4;
    let mut posters = Vec::new();
    for p in 0..4u64 {
        let (http, url, token) = (http.clone(), url.to_string(), token.to_string());
        posters.push(tokio::spawn(async move {
            let mut i = 0;
            while i < per {
                let k = 2000.min(per - i);
                post(&http, &url, &token, p * per + i, k).await;
                i += k;
            }
        }));
    }
    for p in posters {
        p.await.unwrap();
    }
    while source_events(http, base).await < before + per * 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (per * 4) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = env("WEIR_BENCH_RATE", 10_000);
    let secs = env("WEIR_BENCH_SECS", 10);
    let total = env("WEIR_BENCH_EVENTS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &[]);
    let pid = server.child.id().to_string();
    let port = support::free_port();
    let http = server.client();
    let rules = format!(
        "source web = http(listen: \"127.0.0.1:{port}\") format json fields {{ sent_us: int }}\n\
         pipeline quiet {{\n  from web\n  | where service == \"none\"\n}}\n"
    );
    let r = http
        .post(format!("{}/api/v1/pipelines", server.base))
        .header("content-type", RULES)
        .body(rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    support::wait_for_port(port);
    let shipper = create_token(dir.path(), "bench-shipper", "shipper", &[]);
    let url = format!("http://127.0.0.1:{port}/");

    // 1. Latency at a steady rate.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let c = tokio::spawn(client(
        server.base.clone(),
        server.token.clone(),
        latencies.clone(),
        received.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut i = 0;
    while Instant::now() < end {
        tick.tick().await;
        post(&http, &url, &shipper, i, per_tick).await;
        i += per_tick;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    c.await.unwrap();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "tail latency at {rate} events/s for {secs} s: {} events posted, {} shown to the client; p50 {:.1} ms, p99 {:.1} ms (target p99 < 250 ms)",
        i,
        received.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99)
    );

    // 2. Ingest with no client, then with 20.
    let alone = flood(&http, &server.base, &url, &shipper, total).await;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(tokio::spawn(client(
            server.base.clone(),
            server.token.clone(),
            Arc::new(Mutex::new(Vec::new())),
            received.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watched = flood(&http, &server.base, &url, &shipper, total).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    println!(
        "ingest of {total} events: {alone:.0} events/s with no tail client, {watched:.0} with 20 ({:.2}x; target >= 0.90x); the clients got {} events; server peak RSS {:.0} MiB",
        watched / alone,
        received.load(Ordering::Relaxed),
        support::peak_rss_mib_of(&pid)
    );
}
