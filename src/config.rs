//! `weir.toml`: settings of `weir serve`. Every setting has a default, so no file
//! is needed.

use crate::auth::{SecuritySettings, TlsSettings};
use crate::query::QuerySettings;
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_connectors::http_server::HttpSettings;
use weir_connectors::kafka::KafkaConfig;
use weir_connectors::maintenance::RetentionPolicy;
use weir_connectors::notify::{ChannelConfig, ChannelKind};
use weir_connectors::store::{ArchiveLocation, StorageConfig};
use weir_engine::state_files::StateFiles;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Data folder: archive, dead letters.
    pub data_dir: PathBuf,
    /// Where windows over Kafka keep their checkpointed state and alerts
    /// remember their deliveries: a folder (`DATA/state` by default; a
    /// relative one is relative to this file), or an object store
    /// (`s3://bucket/prefix`, `gs://`, `az://`, with the `[storage]`
    /// options). Processes of one consumer group share it to hand a
    /// partition's windows on with the partition (see docs/kafka.md).
    /// `state_dir` is its earlier name.
    #[serde(alias = "state_dir")]
    pub state: Option<String>,
    /// .rules files to run at start.
    pub rules: Vec<PathBuf>,
    /// How many recent alerts the API keeps.
    pub alert_history: usize,
    /// Kafka client settings: brokers, TLS, SASL, raw librdkafka options.
    pub kafka: KafkaConfig,
    /// Object-store options for `s3://` archives.
    pub storage: StorageConfig,
    /// The archive SQL queries read (a folder, file://, or s3://bucket/prefix);
    /// `DATA/archive` by default.
    pub archive: Option<String>,
    /// Retention policies per stream.
    pub retention: Vec<RetentionPolicy>,
    /// Alert behaviour shared by every rule.
    pub alerting: AlertingConfig,
    /// Notification channels, referenced by name in rules (`notify [NAME]`).
    pub channels: BTreeMap<String, ChannelConfig>,
    /// SQL limits shared by every query: memory, concurrency.
    pub query: QuerySettings,
    /// HTTP server limits: header timeout, connections.
    pub http: HttpSettings,
    /// How long stopping may retry archive uploads that fail (a full disk,
    /// a store down) before it keeps the files in `DATA/recovery` for the
    /// next start.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Sandbox of rules submitted over the API, hosts answered to, who
    /// reads `/metrics` (see docs/security.md).
    pub security: SecuritySettings,
    /// HTTPS for the API: `cert` and `key` (PEM).
    pub tls: Option<TlsSettings>,
}

/// The config file read from the working folder when none is named.
pub const DEFAULT_FILE: &str = "weir.toml";

/// `[alerting]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// A still-firing alert is notified again after this long.
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// The console's address as people open it (`https://weir.example.com`):
    /// each alert's evidence links to its window's search there.
    pub console_url: Option<String>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            repeat_interval: Duration::from_secs(4 * 3600),
            console_url: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("weir-data"),
            state: None,
            rules: Vec::new(),
            alert_history: 10_000,
            kafka: KafkaConfig::default(),
            storage: StorageConfig::default(),
            archive: None,
            retention: Vec::new(),
            alerting: AlertingConfig::default(),
            channels: BTreeMap::new(),
            query: QuerySettings::default(),
            http: HttpSettings::default(),
            shutdown_grace: weir_connectors::factory::DEFAULT_SHUTDOWN_GRACE,
            security: SecuritySettings::default(),
            tls: None,
        }
    }
}

impl Config {
    /// The config file's settings, or the defaults with `data_dir`.
    /// The config file to read: the one given (`--config` or `$WEIR_CONFIG`),
    /// else `./weir.toml` when it exists, else none (defaults).
    pub fn locate(given: Option<&Path>) -> Option<PathBuf> {
        match given {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
        }
    }

    /// The located config (see [`Config::locate`]) or the defaults, saying
    /// in the log which file was read.
    pub fn discover(given: Option<&Path>) -> anyhow::Result<Config> {
        match Config::locate(given) {
            Some(p) => {
                let cfg = Config::load(&p)?;
                tracing::info!(file = %p.display(), "configuration read");
                Ok(cfg)
            }
            None => {
                tracing::info!(
                    "no configuration file (--config, $WEIR_CONFIG or ./{DEFAULT_FILE}): defaults"
                );
                Ok(Config::default())
            }
        }
    }

    pub fn load_or_default(path: Option<&Path>, data_dir: PathBuf) -> anyhow::Result<Config> {
        match Config::locate(path) {
            Some(p) => Config::load(&p),
            None => Ok(Config {
                data_dir,
                ..Config::default()
            }),
        }
    }

    /// The archive to query: `url`, else `archive` from the file, else
    /// `DATA/archive`.
    pub fn archive_location(&self, url: Option<&str>) -> anyhow::Result<ArchiveLocation> {
        let url = url.or(self.archive.as_deref());
        Ok(weir_connectors::store::open(
            url,
            &self.data_dir.join("archive"),
            Path::new("."),
            &self.storage,
        )?)
    }

    /// Where windows and alert deliveries keep checkpointed state:
    /// `state`, else `DATA/state`.
    pub fn state_files(&self) -> anyhow::Result<Arc<dyn StateFiles>> {
        Ok(weir_connectors::state_store::open(
            self.state.as_deref(),
            &self.data_dir.join("state"),
            &self.storage,
        )?)
    }

    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        // Relative paths in the file are relative to the file.
        if let Some(dir) = path.parent() {
            if cfg.data_dir.is_relative() {
                cfg.data_dir = dir.join(&cfg.data_dir);
            }
            if let Some(state) = cfg.state.as_mut().filter(|s| !s.contains("://")) {
                if Path::new(state.as_str()).is_relative() {
                    *state = dir.join(state.as_str()).display().to_string();
                }
            }
            if let Some(tls) = &mut cfg.kafka.tls {
                for p in [&mut tls.ca, &mut tls.cert, &mut tls.key]
                    .into_iter()
                    .flatten()
                {
                    if p.is_relative() {
                        *p = dir.join(&*p);
                    }
                }
            }
            if let Some(sasl) = &mut cfg.kafka.sasl {
                if let Some(p) = &mut sasl.password_file {
                    if p.is_relative() {
                        *p = dir.join(&*p);
                    }
                }
            }
            for ch in cfg.channels.values_mut() {
                let path = match &mut ch.kind {
                    ChannelKind::Webhook {
                        hmac_secret_file, ..
                    } => hmac_secret_file.as_mut(),
                    ChannelKind::Email {
                        password_file, ca, ..
                    } => {
                        if let Some(ca) = ca.as_mut().filter(|p| p.is_relative()) {
                            *ca = dir.join(&*ca);
                        }
                        password_file.as_mut()
                    }
                    _ => None,
                };
                if let Some(p) = path.filter(|p| p.is_relative()) {
                    *p = dir.join(&*p);
                }
            }
            let tls = cfg.tls.iter_mut().flat_map(|t| [&mut t.cert, &mut t.key]);
            for r in cfg
                .rules
                .iter_mut()
                .chain(cfg.security.allowed_paths.iter_mut())
                .chain(tls)
            {
                if r.is_relative() {
                    *r = dir.join(&*r);
                }
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_a_folder_relative_to_the_file_or_an_object_store_url() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("weir.toml");
        // `state_dir`, the earlier name, still reads.
        std::fs::write(&file, "state_dir = \"shared\"\n").unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let shared = dir.path().join("shared").display().to_string();
        assert_eq!(cfg.state.as_deref(), Some(shared.as_str()));
        assert_eq!(
            cfg.state_files()
                .unwrap_or_else(|e| panic!("{e}"))
                .location(),
            shared
        );
        std::fs::write(&file, "state = \"s3://bucket/group\"\n").unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.state.as_deref(), Some("s3://bucket/group"));
        std::fs::write(&file, "state = \"ftp://host/x\"\n").unwrap_or_else(|e| panic!("{e}"));
        let e = Config::load(&file)
            .and_then(|c| c.state_files().map(|_| ()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a place for state"), "{e}");
    }

    #[test]
    fn rejects_unknown_settings_and_fills_defaults() {
        let cfg: Config = toml::from_str("listen = \"127.0.0.1:9999\"").unwrap_or_default();
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.data_dir, PathBuf::from("weir-data"));
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }

    #[test]
    fn reads_channels_and_alerting() {
        let cfg: Config = toml::from_str(
            r#"
            [alerting]
            repeat_interval = "30m"
            [channels.oncall]
            type = "slack"
            url = "http://127.0.0.1:1/hook"
            rate_limit = "10/1m"
            [channels.mail]
            type = "email"
            host = "127.0.0.1"
            port = 2525
            tls = "none"
            from = "weir@example.com"
            to = ["oncall@example.com"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.alerting.repeat_interval, Duration::from_secs(1800));
        assert_eq!(cfg.channels.len(), 2);
        assert!(toml::from_str::<Config>("[channels.x]\ntype = \"pager\"").is_err());
    }
}
