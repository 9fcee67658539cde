//! Builds connectors from the declarations in a `.rules` file, with the local
//! defaults: archives and dead letters under the data folder. Source and
//! output kinds are found in the [`crate::registry`].

use crate::args::Args;
use crate::kafka::sink::producer as kafka_producer;
use crate::kafka::{KafkaConfig, KafkaDeadLetters};
use crate::registry;
use crate::sinks::archive::{ArchiveConfig, ArchiveSink, Granularity};
use crate::sinks::archive_file::BloomColumns;
use crate::sinks::archive_raw::RawMode;
use crate::sinks::dead_letter::DeadLetterFile;
use crate::store::{self, ArchiveLocation, StorageConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_dsl::ast::{ArchiveDecl, Connector, OutputDecl};
use weir_dsl::CheckedSource;
use weir_engine::schema::to_arrow;
use weir_engine::{ConnectorFactory, DeadLetterSink, EngineError, Metrics, Result, Sink, Source};

/// Default archive file size before rolling.
pub const DEFAULT_ROLL_BYTES: u64 = 128 << 20;
/// Default archive file age before rolling, which is also how stale the
/// archive's newest events can be for SQL: a rolled file is committed at
/// once. The small files this leaves are merged by compaction (`weir
/// serve` every 10 minutes, or `weir archive compact`).
pub const DEFAULT_ROLL_EVERY: Duration = Duration::from_secs(5);

/// The connectors of this build, rooted at a data folder.
pub struct LocalFactory {
    /// Where archives (by default), dead letters and state live.
    pub data_dir: PathBuf,
    /// Folder relative paths in the rules are resolved against.
    pub base_dir: PathBuf,
    pub metrics: Metrics,
    /// Kafka client settings (`[kafka]` in the config file).
    pub kafka: KafkaConfig,
    /// Object-store options for `s3://` archives (`[storage]`).
    pub storage: StorageConfig,
    /// How long a closing archive retries failed uploads before it keeps
    /// them in `DATA/recovery` (`shutdown_grace` in the config file).
    pub shutdown_grace: Duration,
    /// Who may send events to `http` sources; none: anyone who reaches
    /// the port (`weir run`).
    pub ingest_auth: Option<std::sync::Arc<dyn crate::sources::http::IngestAuth>>,
}

/// Default [`LocalFactory::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

impl LocalFactory {
    /// Everything under one folder (data and relative paths), default Kafka
    /// and storage settings: for tests, benchmarks and embedding.
    pub fn in_folder(dir: &std::path::Path, metrics: Metrics) -> LocalFactory {
        LocalFactory {
            data_dir: dir.to_path_buf(),
            base_dir: dir.to_path_buf(),
            metrics,
            kafka: KafkaConfig::default(),
            storage: StorageConfig::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            ingest_auth: None,
        }
    }

    /// Client settings for a `kafka(...)` connector: the config file's, with the
    /// rules' `brokers`, `client_id` and `options` on top.
    pub(crate) fn kafka_client(&self, c: &Connector) -> Result<rdkafka::ClientConfig> {
        let args = Args(c);
        let mut client = self
            .kafka
            .client_config(args.str("brokers"))
            .map_err(|e| EngineError::plan(c.span, e.to_string()))?;
        if let Some(id) = args.str("client_id") {
            client.set("client.id", id);
        }
        for opt in args.list("options") {
            let (k, v) = opt.split_once('=').ok_or_else(|| {
                EngineError::plan_hint(
                    c.span,
                    format!("kafka option `{opt}` is not key=value"),
                    "write raw librdkafka settings as \"fetch.min.bytes=1\"",
                )
            })?;
            client.set(k.trim(), v.trim());
        }
        Ok(client)
    }

    pub(crate) fn dead_letter_file(&self, name: &str) -> Arc<dyn DeadLetterSink> {
        Arc::new(DeadLetterFile::new(
            self.data_dir
                .join("deadletter")
                .join(format!("{name}.ndjson")),
        ))
    }

    pub(crate) fn resolve(&self, p: &str) -> PathBuf {
        store::resolve(&self.base_dir, p)
    }

    /// The archive location for an archive URL (`s3://`, `file://`, a plain
    /// path, or none for `DATA/archive`).
    pub fn archive_location(&self, url: Option<&str>) -> Result<ArchiveLocation> {
        store::open(
            url,
            &self.data_dir.join("archive"),
            &self.base_dir,
            &self.storage,
        )
    }
}

impl ConnectorFactory for LocalFactory {
    fn source(&self, source: &CheckedSource) -> Result<Box<dyn Source>> {
        let kind = &source.decl.connector.kind;
        match registry::source(&kind.name) {
            Some(k) => (k.build)(self, source),
            None => Err(EngineError::plan_hint(
                kind.span,
                format!("`{}` sources are not available in this build", kind.name),
                format!(
                    "this build runs {} sources",
                    registry::names(registry::SOURCES, |k| k.name)
                ),
            )),
        }
    }

    fn output(&self, output: &OutputDecl) -> Result<Arc<dyn Sink>> {
        let kind = &output.connector.kind;
        match registry::output(&kind.name) {
            Some(k) => (k.build)(self, output),
            None => Err(EngineError::plan_hint(
                kind.span,
                format!("`{}` outputs are not available in this build", kind.name),
                format!(
                    "this build writes to {} outputs",
                    registry::names(registry::OUTPUTS, |k| k.name)
                ),
            )),
        }
    }

    fn archive(&self, archive: &ArchiveDecl, source: &CheckedSource) -> Result<Arc<dyn Sink>> {
        let location = self.archive_location(archive.url.as_ref().map(|(u, _)| u.as_str()))?;
        let granularity = match archive.partition.as_ref().map(|p| p.name.as_str()) {
            Some("day") => Granularity::Day,
            _ => Granularity::Hour,
        };
        Ok(Arc::new(ArchiveSink::new(
            location,
            ArchiveConfig {
                stream: source.decl.name.name.clone(),
                granularity,
                roll_bytes: archive.roll_size.unwrap_or(DEFAULT_ROLL_BYTES),
                roll_every: archive
                    .roll_every
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_ROLL_EVERY),
                raw: archive
                    .raw
                    .as_ref()
                    .and_then(|r| RawMode::parse(&r.name))
                    .unwrap_or_default(),
                index: match &archive.index {
                    None => BloomColumns::Usual,
                    Some(i) => BloomColumns::named(i.columns.iter().map(|c| c.name.as_str())),
                },
                replayable: source.replayable,
                epoch: crate::maintenance::new_epoch(),
                recovery: Some(
                    self.data_dir
                        .join("recovery")
                        .join("archive")
                        .join(&source.decl.name.name),
                ),
                close_grace: self.shutdown_grace,
            },
            to_arrow(&source.schema),
            &self.metrics,
        )?))
    }

    fn dead_letters(&self, source: &CheckedSource) -> Result<Arc<dyn DeadLetterSink>> {
        let name = &source.decl.name.name;
        let file = self.dead_letter_file(name);
        let c = &source.decl.connector;
        match (c.kind.name.as_str(), Args(c).str("dead_letters")) {
            ("kafka", Some(topic)) => Ok(Arc::new(KafkaDeadLetters {
                producer: kafka_producer(name, &self.kafka_client(c)?, None)?,
                name: name.clone(),
                topic: topic.to_string(),
                fallback: file,
                retries: self
                    .metrics
                    .sink_retries
                    .with_label_values(&[&format!("deadletter-{name}")]),
            })),
            _ => Ok(file),
        }
    }
}
