//! The engine as the binary hosts it: metrics registry, alert log, connector
//! factory, and the running deployments (one per submitted `.rules` text).

use crate::config::Config;
use crate::rules::{self, RulesError};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;
use weir_connectors::kafka::KafkaConfig;
use weir_connectors::store::StorageConfig;
use weir_connectors::LocalFactory;
use weir_engine::alerting::{AlertSettings, SystemClock};
use weir_engine::{deploy, AlertManager, DeployOptions, Deployment, EngineError, Metrics};

pub struct EngineHost {
    pub registry: prometheus::Registry,
    pub metrics: Metrics,
    pub alerts: Arc<AlertManager>,
    /// Names of the configured notification channels.
    pub channels: Vec<String>,
    pub data_dir: PathBuf,
    /// Kafka client settings for `kafka` connectors.
    pub kafka: KafkaConfig,
    /// Object-store options for `s3://` archives.
    pub storage: StorageConfig,
    deployments: Mutex<Vec<Running>>,
}

/// One deployed `.rules` text.
struct Running {
    file: String,
    deployment: Deployment,
    stopped: HashSet<String>,
    sources: BTreeMap<String, String>,
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
}

impl EngineHost {
    /// The host for `cfg`, with its notification channels started (call it
    /// inside a Tokio runtime). With `persist_alerts`, alert state lives in
    /// `DATA/alerts/state.json` across restarts.
    pub fn new(cfg: &Config, persist_alerts: bool) -> anyhow::Result<EngineHost> {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry)?;
        let settings = AlertSettings {
            repeat_interval: cfg.alerting.repeat_interval,
            history: cfg.alert_history,
            state_file: persist_alerts.then(|| cfg.data_dir.join("alerts").join("state.json")),
            log_unrouted: true,
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
            kafka: cfg.kafka.clone(),
            storage: cfg.storage.clone(),
            deployments: Mutex::new(Vec::new()),
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
    ) -> Result<Vec<String>, DeployError> {
        let program = rules::compile(file, text).map_err(DeployError::Rules)?;
        self.check_channels(file, text, &program)?;
        let mut deployments = self.deployments.lock().await;
        for p in &program.pipelines {
            let name = &p.pipeline.name.name;
            let clash = deployments.iter().any(|d| {
                d.deployment.pipelines.contains(name)
                    && !d.stopped.contains(name)
                    && !d.deployment.is_finished()
            });
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
        };
        let deployment = deploy(
            &program,
            &factory,
            self.alerts.clone(),
            &self.metrics,
            DeployOptions {
                base_dir,
                idle_advance,
            },
        )
        .map_err(|error| DeployError::Plan {
            file: file.to_string(),
            text: text.to_string(),
            error,
        })?;
        let names = deployment.pipelines.clone();
        let sources = program
            .pipelines
            .iter()
            .map(|p| (p.pipeline.name.name.clone(), p.pipeline.from.name.clone()))
            .collect();
        deployments.push(Running {
            file: file.to_string(),
            deployment,
            stopped: HashSet::new(),
            sources,
        });
        Ok(names)
    }

    pub async fn pipelines(&self) -> Vec<PipelineInfo> {
        let deployments = self.deployments.lock().await;
        let mut out = Vec::new();
        for d in deployments.iter() {
            for name in &d.deployment.pipelines {
                out.push(PipelineInfo {
                    name: name.clone(),
                    source: d.sources.get(name).cloned().unwrap_or_default(),
                    file: d.file.clone(),
                    running: !d.stopped.contains(name) && !d.deployment.is_finished(),
                });
            }
        }
        out
    }

    /// Stops a pipeline by name; false if no running pipeline has that name.
    pub async fn stop_pipeline(&self, name: &str) -> bool {
        let mut deployments = self.deployments.lock().await;
        for d in deployments.iter_mut() {
            if d.deployment.pipelines.iter().any(|p| p == name)
                && !d.stopped.contains(name)
                && d.deployment.stop_pipeline(name).is_ok()
            {
                d.stopped.insert(name.to_string());
                return true;
            }
        }
        false
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
        let deployments: Vec<Running> = std::mem::take(&mut *self.deployments.lock().await);
        let mut first_err = None;
        for d in deployments {
            if let Err(e) = d.deployment.wait().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Cancels every deployment without waiting.
    pub async fn stop_all(&self) {
        for d in self.deployments.lock().await.iter() {
            d.deployment.stop();
        }
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
