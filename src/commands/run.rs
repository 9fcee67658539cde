//! `weir run FILE.rules`: runs pipelines in the foreground, printing alerts and a
//! progress line.

use crate::config::Config;
use crate::engine_host::EngineHost;
use crate::rules;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_engine::alerting::notify::{alert_line, evidence_lines};
use weir_engine::HistoryEntry;

/// What `weir run` prints.
pub struct Display {
    /// Alerts as JSON lines instead of text.
    pub json: bool,
    /// No progress line.
    pub quiet: bool,
}

pub async fn run(
    file: &Path,
    config: Option<&Path>,
    data_dir: PathBuf,
    Display { json, quiet }: Display,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let name = file.display().to_string();
    let text = rules::read(file)?;
    let mut cfg = Config::discover(config)?;
    cfg.data_dir = data_dir;
    let mut host = EngineHost::new(&cfg, false)?;
    // Nothing attaches to a source later: decode only what pipelines read.
    host.project = true;
    let host = Arc::new(host);
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // Taken over before anything starts: a stop asked for from now on is
    // graceful.
    let signal = super::shutdown_signal();
    let mut alerts = host.alerts.subscribe();
    let metrics_server = match metrics {
        Some(addr) => Some(serve_metrics(addr, host.clone()).await?),
        None => None,
    };
    if let Err(e) = host.deploy(&name, &text, base, true, None).await {
        eprint!("{}", e.render());
        return Ok(ExitCode::from(1));
    }
    let (printed, mut done) = tokio::sync::oneshot::channel::<()>();
    let printer = tokio::spawn(async move {
        let print = |e: HistoryEntry| {
            if json {
                if let Ok(line) = serde_json::to_string(&e) {
                    println!("{line}");
                }
            } else if let Some(line) = describe(&e) {
                println!("{line}");
            }
        };
        loop {
            tokio::select! {
                biased;
                e = alerts.recv() => match e {
                    Ok(e) => print(e),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                // Everything is processed: print what was sent, then stop.
                _ = &mut done => {
                    loop {
                        match alerts.try_recv() {
                            Ok(e) => print(e),
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    break;
                }
            }
        }
    });
    let progress = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let host = host.clone();
        tokio::spawn(async move { progress_loop(&host).await })
    });
    // A signal stops the sources; waiting goes on until what was read is
    // processed, windows are emitted and the archive and outputs are flushed.
    let stopper = {
        let host = host.clone();
        tokio::spawn(async move {
            signal.await;
            eprintln!("\nstopping: flushing sinks; open windows are emitted, or saved for the next start when they read Kafka...");
            host.stop_all().await;
        })
    };
    let result = host.wait_all().await;
    stopper.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    if let Err(e) = host.alerts.save() {
        tracing::warn!(error = %e, "could not save the alert state");
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    // The printer prints what was already sent, then ends.
    let _ = printed.send(());
    let _ = printer.await;
    summary(&host);
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A history entry as a line of text: transitions and failed notifications
/// (successful sends are only in `--json`).
pub fn describe(e: &HistoryEntry) -> Option<String> {
    let a = &e.alert;
    match e.event.as_str() {
        "firing" | "resolved" | "pending" => {
            let mut text = format!(
                "{} {} [{}] {}",
                e.event.to_uppercase(),
                a.rule,
                a.severity,
                alert_line(a)
            );
            // A firing alert shows why: its samples and query.
            if e.event == "firing" {
                for l in evidence_lines(a) {
                    text.push_str("\n    ");
                    text.push_str(&l);
                }
            }
            Some(text)
        }
        "failed" | "rate_limited" | "queue_full" => Some(format!(
            "NOTIFY {} {} via {}: {}",
            e.event.to_uppercase(),
            a.rule,
            e.channel.as_deref().unwrap_or("?"),
            e.detail.as_deref().unwrap_or("")
        )),
        _ => None,
    }
}

fn total(c: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    c.collect()
        .iter()
        .flat_map(|mf| {
            mf.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
                .collect::<Vec<_>>()
        })
        .sum()
}

fn gauge_total(g: &prometheus::IntGaugeVec) -> i64 {
    use prometheus::core::Collector;
    g.collect()
        .iter()
        .flat_map(|mf| {
            mf.get_metric()
                .iter()
                .map(|m| m.get_gauge().get_value() as i64)
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Serves `GET /metrics` (Prometheus text) at `addr` until aborted.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    host: Arc<EngineHost>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve metrics at {addr}: {e}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let host = host.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    host.metrics_text(),
                )
            }
        }),
    );
    tracing::info!(%addr, "metrics at /metrics");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    }))
}

async fn progress_loop(host: &EngineHost) {
    let start = Instant::now();
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let events = total(&host.metrics.source_events);
        eprint!(
            "\r{:>6.0}s  {:>10} events  {:>9} events/s  {:>8} lag  {:>5} windows open  {:>4} firing  {:>4} dead letters  {:>5} late   ",
            start.elapsed().as_secs_f64(),
            events,
            events - last,
            gauge_total(&host.metrics.source_lag),
            gauge_total(&host.metrics.windows_open),
            gauge_total(&host.metrics.alerts_firing),
            total(&host.metrics.dead_letters),
            total(&host.metrics.late_dropped),
        );
        last = events;
    }
}

fn summary(host: &EngineHost) {
    eprintln!(
        "done: {} events, {} alert matches, {} dead letters, {} late events dropped, {} archive files",
        total(&host.metrics.source_events),
        total(&host.metrics.alerts),
        total(&host.metrics.dead_letters),
        total(&host.metrics.late_dropped),
        total(&host.metrics.archive_files),
    );
}
