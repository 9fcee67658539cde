//! The engine as the binary hosts it: metrics registry, alert log, connector
//! factory, and the running deployments (one per submitted `.rules` text).

use crate::config::Config;
use crate::rules::{self, RulesError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;
use weir_connectors::kafka::KafkaConfig;
use weir_connectors::store::StorageConfig;
use weir_connectors::LocalFactory;
use weir_engine::alerting::{AlertSettings, SystemClock};
use weir_engine::state_files::StateFiles;
use weir_engine::{deploy, AlertManager, DeployOptions, EngineError, Metrics};

pub struct EngineHost {
    pub registry: prometheus::Registry,
    pub metrics: Metrics,
    pub alerts: Arc<AlertManager>,
    /// Names of the configured notification channels.
    pub channels: Vec<String>,
    pub data_dir: PathBuf,
    /// Where windows keep checkpointed state ([`Config::state`]).
    pub state: Arc<dyn StateFiles>,
    /// Kafka client settings for `kafka` connectors.
    pub kafka: KafkaConfig,
    /// Object-store options for `s3://` archives.
    pub storage: StorageConfig,
    /// How long a closing archive retries before it spills (see
    /// [`LocalFactory::shutdown_grace`]).
    pub shutdown_grace: Duration,
    /// Who may send events to `http` sources (`weir serve`: tokens allowed
    /// to ingest); none for `weir run`.
    pub ingest_auth: Option<Arc<dyn weir_connectors::sources::http::IngestAuth>>,
    deployments: Mutex<Vec<Running>>,
    /// Log a deployment's failure when it happens (`weir serve`); `weir run`
    /// reports it once, when it exits.
    report_failures: bool,
    /// Decode only what pipelines read ([`DeployOptions::project`]): set by
    /// `weir run`, where nothing attaches to a source later.
    pub project: bool,
    /// Cancelled once the host stops: stops every deployment, also those a
    /// [`EngineHost::wait_all`] is already waiting for.
    stop: CancellationToken,
    /// Shadow versions of live pipelines, by the live pipeline's name (see
    /// [`crate::shadow`]).
    pub(crate) shadows: Mutex<HashMap<String, crate::shadow::ShadowRun>>,
}

/// How long a deleted deployment may take to emit its windows and flush
/// its outputs before its tasks are aborted (an output retrying against a
/// broker that is down must not hold a source's port for minutes).
const DELETE_GRACE: Duration = Duration::from_secs(10);
/// How long a pipeline that ended by itself stays listed.
const FINISHED_LISTED: Duration = Duration::from_secs(600);

/// One deployed `.rules` text.
struct Running {
    file: String,
    text: String,
    pipelines: Vec<String>,
    /// Pipelines deleted through the API.
    stopped: HashSet<String>,
    sources: BTreeMap<String, String>,
    cancel: CancellationToken,
    pipeline_cancels: HashMap<String, CancellationToken>,
    /// The task waiting for every task of the deployment (taken by
    /// [`EngineHost::wait_all`]), and how to abort it: aborting it drops
    /// and so aborts the deployment's tasks.
    waiter: Option<JoinHandle<Result<(), EngineError>>>,
    abort: AbortHandle,
    /// When every task had ended.
    finished: Arc<std::sync::OnceLock<Instant>>,
    /// The error it stopped with, if any.
    error: Arc<std::sync::OnceLock<String>>,
    /// Its pipelines stopped by an error while the rest went on.
    failures: weir_engine::runtime::Failures,
    /// Its sources' live feeds of decoded batches.
    taps: Vec<Tap>,
    /// Where shadow pipelines attach to its sources.
    attach: HashMap<String, weir_engine::runtime::Attach>,
}

/// A running source's live feed of decoded batches (see
/// `weir_engine::runtime::Deployment::taps`), with the schema its batches
/// have.
#[derive(Clone)]
pub struct Tap {
    pub source: String,
    pub schema: weir_dsl::Schema,
    pub feed: tokio::sync::broadcast::Sender<arrow::record_batch::RecordBatch>,
}

impl Running {
    fn is_finished(&self) -> bool {
        self.finished.get().is_some()
    }

    /// Whether it holds the pipeline and it is running.
    fn runs(&self, pipeline: &str) -> bool {
        self.pipelines.iter().any(|p| p == pipeline) && self.is_running(pipeline)
    }

    fn is_running(&self, pipeline: &str) -> bool {
        !self.stopped.contains(pipeline) && !self.is_finished() && self.failure(pipeline).is_none()
    }

    /// Why a pipeline stopped, if an error stopped it or its rules.
    fn failure(&self, pipeline: &str) -> Option<String> {
        let own = self
            .failures
            .lock()
            .ok()
            .and_then(|f| f.get(pipeline).cloned());
        own.or_else(|| self.error.get().cloned())
    }
}

/// What deploying can fail with.
pub enum DeployError {
    Rules(RulesError),
    Plan {
        file: String,
        text: String,
        error: EngineError,
    },
    Conflict(String),
}

impl DeployError {
    pub fn render(&self) -> String {
        match self {
            DeployError::Rules(r) => r.render(),
            DeployError::Plan { file, text, error } => rules::engine_error(file, text, error),
            DeployError::Conflict(m) => format!("error: {m}\n"),
        }
    }
}

/// A pipeline as the API lists it.
#[derive(serde::Serialize)]
pub struct PipelineInfo {
    pub name: String,
    pub source: String,
    pub file: String,
    pub running: bool,
    /// The error its rules stopped with (a failed output, source...), once
    /// they have stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its windows' state, when it has windows (from the metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsInfo>,
    /// How far its source is behind, per partition (Kafka consumer lag).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lag: Vec<PartitionLag>,
    /// Its shadow version, when one runs (see [`crate::shadow`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<serde_json::Value>,
}

/// Event time and checkpointed state of a pipeline's windows.
#[derive(serde::Serialize, Default)]
pub struct WindowsInfo {
    /// Event time up to which windows are closed (RFC 3339).
    pub watermark: Option<String>,
    /// Source partitions holding the watermark back, and those idle.
    pub partitions_active: i64,
    pub partitions_idle: i64,
    pub windows_open: i64,
    pub late_events_dropped: i64,
    /// The last checkpoint of the window state (windows over Kafka).
    pub state_bytes: Option<i64>,
    pub state_saved_at: Option<String>,
    /// Per source partition the window reads: the largest event time
    /// read from it (RFC 3339), by partition.
    pub partitions: std::collections::BTreeMap<i64, String>,
}

/// Messages behind the end of one source partition.
#[derive(serde::Serialize, Clone)]
pub struct PartitionLag {
    /// The topic.
    pub origin: String,
    pub partition: i64,
    pub messages: i64,
}

/// The value of a gathered metric's label `name`.
fn label_of(m: &prometheus::proto::Metric, name: &str) -> Option<String> {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value().to_string())
}

/// Per source, its partitions' lag (`weir_source_lag_messages`).
fn source_lag(families: &[prometheus::proto::MetricFamily]) -> HashMap<String, Vec<PartitionLag>> {
    let mut out: HashMap<String, Vec<PartitionLag>> = HashMap::new();
    for f in families
        .iter()
        .filter(|f| f.name() == "weir_source_lag_messages")
    {
        for m in f.get_metric() {
            let label = |name: &str| label_of(m, name);
            let (Some(source), Some(origin), Some(partition)) =
                (label("source"), label("origin"), label("partition"))
            else {
                continue;
            };
            out.entry(source).or_default().push(PartitionLag {
                origin,
                partition: partition.parse().unwrap_or(-1),
                messages: m.get_gauge().get_value() as i64,
            });
        }
    }
    for lags in out.values_mut() {
        lags.sort_by(|a, b| (&a.origin, a.partition).cmp(&(&b.origin, b.partition)));
    }
    out
}

/// Per pipeline, what the metrics say about its windows (read from a
/// gathering, so listing creates no series).
fn windows_info(families: &[prometheus::proto::MetricFamily]) -> HashMap<String, WindowsInfo> {
    let mut out: HashMap<String, WindowsInfo> = HashMap::new();
    // Unset gauges read 0: no time yet.
    let rfc3339 = |secs: f64| {
        (secs > 0.0)
            .then(|| chrono::DateTime::from_timestamp(secs as i64, 0))
            .flatten()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    const NAMES: [&str; 7] = [
        "weir_window_watermark_seconds",
        "weir_window_partition_event_time_seconds",
        "weir_window_partitions",
        "weir_windows_open",
        "weir_late_events_dropped_total",
        "weir_window_state_bytes",
        "weir_window_state_saved_timestamp_seconds",
    ];
    for f in families.iter().filter(|f| NAMES.contains(&f.name())) {
        for m in f.get_metric() {
            let label = |name: &str| label_of(m, name);
            let Some(pipeline) = label("pipeline") else {
                continue;
            };
            let gauge = m.get_gauge().get_value();
            let counter = m.get_counter().get_value();
            let e = out.entry(pipeline).or_default();
            match f.name() {
                "weir_window_watermark_seconds" => e.watermark = rfc3339(gauge),
                "weir_window_partition_event_time_seconds" => {
                    let part = label("partition").and_then(|p| p.parse().ok());
                    if let (Some(part), Some(t)) = (part, rfc3339(gauge)) {
                        e.partitions.insert(part, t);
                    }
                }
                "weir_window_partitions" => match label("state").as_deref() {
                    Some("idle") => e.partitions_idle = gauge as i64,
                    _ => e.partitions_active = gauge as i64,
                },
                "weir_windows_open" => e.windows_open = gauge as i64,
                "weir_late_events_dropped_total" => e.late_events_dropped = counter as i64,
                "weir_window_state_bytes" => e.state_bytes = Some(gauge as i64),
                _ => e.state_saved_at = rfc3339(gauge),
            }
        }
    }
    out
}

impl EngineHost {
    /// The host for `cfg`, with its notification channels started (call it
    /// inside a Tokio runtime). With `persist_alerts` (`weir serve`), alert
    /// state lives in `DATA/alerts/state.json` across restarts and failed
    /// deployments are logged as they fail; without (`weir run`), alert state
    /// stays in memory and the caller reports a failure.
    pub fn new(cfg: &Config, persist_alerts: bool) -> anyhow::Result<EngineHost> {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry)?;
        weir_engine::metrics::register_process(&registry)?;
        let state = cfg.state_files()?;
        let settings = AlertSettings {
            repeat_interval: cfg.alerting.repeat_interval,
            history: cfg.alert_history,
            state_file: persist_alerts.then(|| cfg.data_dir.join("alerts").join("state.json")),
            log_unrouted: true,
            console_url: cfg.alerting.console_url.clone(),
            sent_log: Some(state.clone()),
        };
        let alerts = AlertManager::new(Arc::new(SystemClock), settings, Some(metrics.clone()))
            .map_err(anyhow::Error::msg)?;
        for (name, ch) in &cfg.channels {
            let (notifier, settings) = weir_connectors::notify::build(name, ch)?;
            if let Some(n) = notifier {
                alerts.add_channel(name, n, settings);
            }
        }
        alerts.start();
        Ok(EngineHost {
            registry,
            metrics,
            alerts,
            channels: cfg.channels.keys().cloned().collect(),
            data_dir: cfg.data_dir.clone(),
            state,
            kafka: cfg.kafka.clone(),
            storage: cfg.storage.clone(),
            shutdown_grace: cfg.shutdown_grace,
            ingest_auth: None,
            deployments: Mutex::new(Vec::new()),
            report_failures: persist_alerts,
            project: false,
            stop: CancellationToken::new(),
            shadows: Mutex::new(HashMap::new()),
        })
    }

    /// Rules may only name configured channels (when any are configured; with
    /// none, notifications go to the log).
    fn check_channels(
        &self,
        file: &str,
        text: &str,
        program: &weir_dsl::CheckedProgram,
    ) -> Result<(), DeployError> {
        if self.channels.is_empty() {
            return Ok(());
        }
        for p in &program.pipelines {
            for stage in &p.pipeline.stages {
                let weir_dsl::ast::StageKind::Alert(a) = &stage.kind else {
                    continue;
                };
                for ch in &a.notify {
                    if !self.channels.contains(&ch.name) {
                        return Err(DeployError::Plan {
                            file: file.to_string(),
                            text: text.to_string(),
                            error: EngineError::plan(
                                ch.span,
                                format!(
                                    "no channel named `{}` in the config (configured: {})",
                                    ch.name,
                                    self.channels.join(", ")
                                ),
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Compiles and starts a `.rules` text. Relative paths in it resolve against
    /// `base_dir`.
    pub async fn deploy(
        &self,
        file: &str,
        text: &str,
        base_dir: PathBuf,
        idle_advance: bool,
        sandbox: Option<&crate::auth::sandbox::Sandbox>,
    ) -> Result<Vec<String>, DeployError> {
        let program = rules::compile_sandboxed(file, text, sandbox).map_err(DeployError::Rules)?;
        self.check_channels(file, text, &program)?;
        // A `repartition` stage runs as two pipelines joined by a topic.
        let program = weir_dsl::repartition::split(program);
        let mut deployments = self.deployments.lock().await;
        for p in &program.pipelines {
            let name = &p.pipeline.name.name;
            let clash = deployments.iter().any(|d| d.runs(name));
            if clash {
                return Err(DeployError::Conflict(format!(
                    "a pipeline named `{name}` is already running; delete it first"
                )));
            }
        }
        let factory = LocalFactory {
            data_dir: self.data_dir.clone(),
            base_dir: base_dir.clone(),
            metrics: self.metrics.clone(),
            kafka: self.kafka.clone(),
            storage: self.storage.clone(),
            shutdown_grace: self.shutdown_grace,
            ingest_auth: self.ingest_auth.clone(),
        };
        let mut deployment = deploy(
            &program,
            &factory,
            self.alerts.clone(),
            &self.metrics,
            DeployOptions {
                base_dir,
                idle_advance,
                state: Some(self.state.clone()),
                project: self.project,
            },
        )
        .map_err(|error| DeployError::Plan {
            file: file.to_string(),
            text: text.to_string(),
            error,
        })?;
        let pipelines = deployment.pipelines.clone();
        let pipeline_cancels = pipelines
            .iter()
            .filter_map(|n| deployment.pipeline_token(n).map(|t| (n.clone(), t)))
            .collect();
        let cancel = deployment.cancel_token();
        let failures = deployment.failures.clone();
        let attach = std::mem::take(&mut deployment.attach);
        let taps: Vec<Tap> = std::mem::take(&mut deployment.taps)
            .into_iter()
            .filter_map(|(source, feed)| {
                program.source(&source).map(|s| Tap {
                    source,
                    schema: s.schema.clone(),
                    feed,
                })
            })
            .collect();
        let sources = program
            .pipelines
            .iter()
            .map(|p| (p.pipeline.name.name.clone(), p.pipeline.from.name.clone()))
            .collect();
        // Waits for the deployment; stopping the host stops it, also while
        // `wait_all` holds this task.
        let finished = Arc::new(std::sync::OnceLock::new());
        let error = Arc::new(std::sync::OnceLock::new());
        let waiter = {
            let (host_stop, cancel, finished, failed) = (
                self.stop.clone(),
                cancel.clone(),
                finished.clone(),
                error.clone(),
            );
            let (report_failures, file_name) = (self.report_failures, file.to_string());
            tokio::spawn(async move {
                let wait = deployment.wait();
                tokio::pin!(wait);
                let res = tokio::select! {
                    r = &mut wait => r,
                    _ = host_stop.cancelled() => {
                        cancel.cancel();
                        wait.await
                    }
                };
                if let Err(e) = &res {
                    let _ = failed.set(e.to_string());
                }
                let _ = finished.set(Instant::now());
                // `weir serve` reports a failed deployment as it happens;
                // `weir run` reports it when it exits.
                if let (true, Err(e)) = (report_failures, &res) {
                    tracing::error!(file = %file_name, error = %e, "rules stopped with an error");
                }
                res
            })
        };
        deployments.push(Running {
            file: file.to_string(),
            text: text.to_string(),
            attach,
            pipelines: pipelines.clone(),
            stopped: HashSet::new(),
            sources,
            cancel,
            pipeline_cancels,
            abort: waiter.abort_handle(),
            waiter: Some(waiter),
            finished,
            error,
            failures,
            taps,
        });
        Ok(pipelines)
    }

    /// Where a shadow of the running pipeline `name` attaches to its
    /// source `source`, and the schema of that source's events.
    pub(crate) async fn live_source(
        &self,
        name: &str,
        source: &str,
    ) -> Result<(weir_engine::runtime::Attach, weir_dsl::Schema), String> {
        let deployments = self.deployments.lock().await;
        let d = deployments
            .iter()
            .find(|d| d.runs(name))
            .ok_or_else(|| format!("no running pipeline named `{name}`"))?;
        let attach = d.attach.get(source).cloned();
        let schema = d
            .taps
            .iter()
            .find(|t| t.source == source)
            .map(|t| t.schema.clone());
        match (attach, schema) {
            (Some(a), Some(s)) => Ok((a, s)),
            _ => Err(format!(
                "the rules of `{name}` run no source `{source}` (a shadow reads a source of the live pipeline's rules)"
            )),
        }
    }

    /// The file name and rules text the running pipeline `name` came from.
    pub(crate) async fn live_text(&self, name: &str) -> Option<(String, String)> {
        let deployments = self.deployments.lock().await;
        deployments
            .iter()
            .find(|d| d.runs(name))
            .map(|d| (d.file.clone(), d.text.clone()))
    }

    /// Stops every pipeline of the rules text that runs `name` and waits
    /// until it has ended (its sources freed), at most [`DELETE_GRACE`].
    pub(crate) async fn stop_deployment_of(&self, name: &str) {
        let (pipelines, finished) = {
            let deployments = self.deployments.lock().await;
            let Some(d) = deployments.iter().find(|d| d.runs(name)) else {
                return;
            };
            (d.pipelines.clone(), d.finished.clone())
        };
        for p in &pipelines {
            self.stop_pipeline(p).await;
        }
        let deadline = Instant::now() + DELETE_GRACE + Duration::from_secs(1);
        while finished.get().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The live feeds of the sources that run.
    pub async fn taps(&self) -> Vec<Tap> {
        let deployments = self.deployments.lock().await;
        deployments
            .iter()
            .filter(|d| !d.is_finished())
            .flat_map(|d| d.taps.iter().cloned())
            .collect()
    }

    /// The pipelines: running ones, and those that ended by themselves in
    /// the last ten minutes. Deleted ones are gone once they have stopped.
    pub async fn pipelines(&self) -> Vec<PipelineInfo> {
        let mut deployments = self.deployments.lock().await;
        deployments.retain(|d| {
            let Some(at) = d.finished.get() else {
                return true;
            };
            d.stopped.len() < d.pipelines.len() && at.elapsed() < FINISHED_LISTED
        });
        let families = self.registry.gather();
        let mut windows = windows_info(&families);
        let lag = source_lag(&families);
        let mut out = Vec::new();
        for d in deployments.iter() {
            for name in &d.pipelines {
                if d.stopped.contains(name) && d.is_finished() {
                    continue;
                }
                let source = d.sources.get(name).cloned().unwrap_or_default();
                out.push(PipelineInfo {
                    name: name.clone(),
                    lag: lag.get(&source).cloned().unwrap_or_default(),
                    source,
                    file: d.file.clone(),
                    running: d.is_running(name),
                    error: d.failure(name),
                    windows: windows.remove(name),
                    shadow: None,
                });
            }
        }
        drop(deployments);
        for p in &mut out {
            p.shadow = self.shadow_summary(&p.name).await;
        }
        out
    }

    /// Stops a pipeline by name (its windows are emitted, its outputs
    /// flushed); false if no pipeline of that name is listed. When the last
    /// pipeline of a submitted text is deleted, its sources, archives and
    /// outputs stop too (an `http` source frees its port), and whatever has
    /// not ended after [`DELETE_GRACE`] is aborted.
    pub async fn stop_pipeline(&self, name: &str) -> bool {
        let mut deployments = self.deployments.lock().await;
        let Some(d) = deployments
            .iter_mut()
            .find(|d| d.pipelines.iter().any(|p| p == name) && !d.stopped.contains(name))
        else {
            return false;
        };
        // A repartitioned pipeline's sender goes with it.
        let sender = format!("{name}{}", weir_dsl::repartition::SUFFIX);
        for n in [name, sender.as_str()] {
            if !d.pipelines.iter().any(|p| p == n) {
                continue;
            }
            if let Some(t) = d.pipeline_cancels.get(n) {
                t.cancel();
            }
            d.stopped.insert(n.to_string());
        }
        if d.stopped.len() == d.pipelines.len() {
            d.cancel.cancel();
            // Its sources no longer count for readiness.
            for source in d.sources.values() {
                let _ = self.metrics.source_healthy.remove_label_values(&[source]);
            }
            let (abort, finished) = (d.abort.clone(), d.finished.clone());
            let name = name.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(DELETE_GRACE).await;
                if finished.get().is_none() {
                    tracing::warn!(pipeline = %name, grace = ?DELETE_GRACE, "a deleted pipeline did not stop in time; aborted");
                    abort.abort();
                }
            });
        }
        true
    }

    /// Stops everything and waits until windows are emitted and sinks flushed.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        self.stop_all().await;
        let waited = self.wait_all().await;
        if let Err(e) = self.alerts.save() {
            tracing::warn!(error = %e, "could not save the alert state");
        }
        waited
    }

    /// Waits until every deployment has ended (by itself, for finite sources, or
    /// after a stop).
    pub async fn wait_all(&self) -> anyhow::Result<()> {
        let waiters: Vec<_> = self
            .deployments
            .lock()
            .await
            .iter_mut()
            .filter_map(|d| d.waiter.take())
            .collect();
        let mut first_err = None;
        for w in waiters {
            let res = w
                .await
                .unwrap_or_else(|e| Err(EngineError::Task(format!("deployment aborted: {e}"))));
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Cancels every deployment without waiting: sources stop reading,
    /// what was read is processed, windows are emitted and sinks flushed.
    pub async fn stop_all(&self) {
        self.stop.cancel();
        for d in self.deployments.lock().await.iter() {
            d.cancel.cancel();
        }
    }

    /// Sinks whose writes fail now (`weir_sink_healthy` 0) and sources that
    /// failed or cannot reach their system (`weir_source_healthy` 0), by name.
    pub fn unhealthy(&self) -> (Vec<String>, Vec<String>) {
        use prometheus::core::Collector;
        let failing = |g: &prometheus::IntGaugeVec| -> Vec<String> {
            g.collect()
                .iter()
                .flat_map(|mf| mf.get_metric().iter())
                .filter(|m| m.get_gauge().get_value() < 1.0)
                .filter_map(|m| m.get_label().first().map(|l| l.value().to_string()))
                .collect()
        };
        (
            failing(&self.metrics.sink_healthy),
            failing(&self.metrics.source_healthy),
        )
    }

    pub fn metrics_text(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
