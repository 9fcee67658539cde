//! The agent: runs the configured sources, ships their batches through the
//! [`Producer`], drains the spool, serves `/metrics`, and applies config
//! changes without a restart — when the file changes (`notify`) or on SIGHUP.
//! Added sources start, removed ones stop after flushing, changed ones
//! restart; a config that does not validate is rejected with the reason and
//! the running one stays in force.

use crate::config::{ShipConfig, SourceConfig, SourceType};
use crate::error::ShipError;
use crate::event::{hostname, Event, EventShape};
use crate::metrics::ShipMetrics;
use crate::producer::Producer;
use crate::sources::{self, Batch, SourceCtx};
use notify::Watcher;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

struct Running {
    cfg: SourceConfig,
    topic: Option<String>,
    cancel: CancellationToken,
    handle: JoinHandle<Result<(), ShipError>>,
}

/// Everything sources need from the agent.
struct Shared {
    out: mpsc::Sender<Batch>,
    metrics: ShipMetrics,
    state_dir: PathBuf,
    host: String,
}

impl Shared {
    fn start(&self, cfg: &SourceConfig, default_topic: Option<&str>) -> Running {
        let shape = Arc::new(EventShape::new(cfg, default_topic, &self.host));
        let cancel = CancellationToken::new();
        let ctx = SourceCtx::new(
            cfg.clone(),
            shape,
            self.out.clone(),
            self.metrics.clone(),
            self.state_dir.clone(),
            cancel.clone(),
        );
        let name = cfg.name.clone();
        tracing::info!(source = %name, kind = ?cfg.kind, "source started");
        let handle = tokio::spawn(async move {
            let r = sources::run(ctx).await;
            if let Err(e) = &r {
                tracing::error!(source = %name, "source failed: {e}");
            }
            r
        });
        Running {
            cfg: cfg.clone(),
            topic: default_topic.map(String::from),
            cancel,
            handle,
        }
    }
}

/// Runs until SIGINT/SIGTERM (or until every source ended, when all are
/// finite, e.g. stdin).
pub async fn run(config_path: &Path) -> Result<(), ShipError> {
    let cfg = ShipConfig::load(config_path)?;
    let metrics = ShipMetrics::new()?;
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| ShipError::io(format!("cannot create {}", cfg.state_dir.display()), e))?;
    let (producer, mut fatal) = Producer::new(&cfg, metrics.clone())?;
    tracing::info!(
        config = %config_path.display(),
        sources = cfg.sources.len(),
        kafka = ?cfg.kafka,
        "weir ship starting"
    );
    // Batches are up to ~2,000 events: `buffer` events in memory at most.
    let (tx, rx) = mpsc::channel::<Batch>((cfg.buffer / 2000).max(2));
    let shipper = tokio::spawn(ship_batches(rx, producer.clone()));
    let stop_drain = CancellationToken::new();
    let drainer = tokio::spawn(producer.clone().drain_spool(stop_drain.clone()));
    if let Some(addr) = cfg.metrics {
        serve_metrics(addr, metrics.clone()).await?;
    }
    let shared = Shared {
        out: tx,
        metrics: metrics.clone(),
        state_dir: cfg.state_dir.clone(),
        host: cfg.host.clone().unwrap_or_else(hostname),
    };
    let mut running: HashMap<String, Running> = HashMap::new();
    for s in &cfg.sources {
        running.insert(s.name.clone(), shared.start(s, cfg.topic.as_deref()));
    }
    let finite = cfg.sources.iter().all(|s| s.kind == SourceType::Stdin);

    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(8);
    let _watcher = watch(config_path, reload_tx.clone());
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| ShipError::io("cannot handle SIGHUP", e))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ShipError::io("cannot handle SIGTERM", e))?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut current = cfg;
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = term.recv() => break Ok(()),
            Some(msg) = fatal.recv() => break Err(ShipError::Kafka(msg)),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                reload(config_path, &mut current, &mut running, &shared).await;
            }
            Some(()) = reload_rx.recv() => {
                // Editors write in several steps: let the file settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while reload_rx.try_recv().is_ok() {}
                reload(config_path, &mut current, &mut running, &shared).await;
            }
            _ = tick.tick() => {
                if finite && running.values().all(|r| r.handle.is_finished()) {
                    break Ok(());
                }
            }
        }
    };
    tracing::info!("stopping: flushing sources and Kafka");
    for (_, r) in running.drain() {
        r.cancel.cancel();
        let _ = r.handle.await;
    }
    drop(shared);
    let _ = shipper.await;
    producer.flush(Duration::from_secs(10));
    stop_drain.cancel();
    let _ = drainer.await;
    outcome
}

/// Reloads the config file and applies the difference.
async fn reload(
    path: &Path,
    current: &mut ShipConfig,
    running: &mut HashMap<String, Running>,
    shared: &Shared,
) {
    let new = match ShipConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("config rejected, the running config stays in force: {e}");
            shared
                .metrics
                .errors
                .with_label_values(&["agent", "config_rejected"])
                .inc();
            return;
        }
    };
    if new.compression != current.compression
        || new.state_dir != current.state_dir
        || new.spool != current.spool
        || new.metrics != current.metrics
        || new.kafka != current.kafka
    {
        tracing::warn!(
            "kafka, compression, spool, state_dir and metrics changes apply after a restart"
        );
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    let names: Vec<String> = running.keys().cloned().collect();
    for name in names {
        let keep = new.sources.iter().find(|s| s.name == name);
        let same = keep.is_some_and(|s| {
            running
                .get(&name)
                .is_some_and(|r| r.cfg == *s && r.topic.as_deref() == new.topic.as_deref())
        });
        if same {
            continue;
        }
        if let Some(r) = running.remove(&name) {
            r.cancel.cancel();
            let _ = r.handle.await;
        }
        match keep {
            Some(s) => {
                running.insert(name.clone(), shared.start(s, new.topic.as_deref()));
                changed.push(name);
            }
            None => removed.push(name),
        }
    }
    for s in &new.sources {
        if !running.contains_key(&s.name) {
            running.insert(s.name.clone(), shared.start(s, new.topic.as_deref()));
            added.push(s.name.clone());
        }
    }
    tracing::info!(?added, ?removed, ?changed, "config reloaded");
    *current = new;
}

/// Sends batches with up to eight in flight; acknowledges each when done.
async fn ship_batches(mut rx: mpsc::Receiver<Batch>, producer: Arc<Producer>) {
    let permits = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    while let Some(b) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let producer = producer.clone();
        tasks.spawn(async move {
            let out: Vec<Vec<u8>> = b.events.into_iter().map(Event::into_json).collect();
            let ok = out.is_empty() || producer.ship(&b.shape.topic, &b.shape.name, out).await;
            if let Some(a) = b.ack {
                let _ = a.send(ok);
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Watches the config file's folder (editors replace files rather than
/// writing them in place).
fn watch(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let file = path.file_name()?.to_os_string();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file.as_os_str()));
            if ours && (ev.kind.is_modify() || ev.kind.is_create()) {
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| tracing::warn!("cannot watch the config (SIGHUP still reloads): {e}"))
    .ok()?;
    w.watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| tracing::warn!("cannot watch {}: {e}", dir.display()))
        .ok()?;
    Some(w)
}

async fn serve_metrics(addr: std::net::SocketAddr, metrics: ShipMetrics) -> Result<(), ShipError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ShipError::io(format!("cannot serve metrics on {addr}"), e))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { m.text() }
        }),
    );
    tracing::info!(
        "metrics on http://{}/metrics",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}
