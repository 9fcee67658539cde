//! Builds connectors from the declarations in a `.rules` file, with the local
//! defaults: archives and dead letters under the data folder.

use crate::kafka::sink::producer as kafka_producer;
use crate::kafka::{
    KafkaConfig, KafkaDeadLetters, KafkaOutput, KafkaSource, KafkaSourceConfig, Start,
};
use crate::sinks::archive::{ArchiveConfig, ArchiveSink, Granularity};
use crate::sinks::archive_raw::RawMode;
use crate::sinks::dead_letter::DeadLetterFile;
use crate::sinks::json_lines::JsonLinesSink;
use crate::sources::file::{FileSource, StdinSource};
use crate::sources::generator::{GeneratorConfig, GeneratorSource};
use crate::sources::http::HttpSource;
use crate::store::{self, ArchiveLocation, StorageConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_dsl::ast::{ArchiveDecl, ArgValue, Connector, OutputDecl};
use weir_dsl::CheckedSource;
use weir_engine::schema::to_arrow;
use weir_engine::{ConnectorFactory, DeadLetterSink, EngineError, Metrics, Result, Sink, Source};

/// Default archive file size before rolling.
pub const DEFAULT_ROLL_BYTES: u64 = 128 << 20;
/// Default archive file age before rolling.
pub const DEFAULT_ROLL_EVERY: Duration = Duration::from_secs(300);

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
}

/// Default [`LocalFactory::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Default interval between offset commits of a `kafka` source.
pub const DEFAULT_COMMIT_EVERY: Duration = Duration::from_secs(5);

/// An RFC 3339 time argument.
fn time_arg(c: &Connector, name: &str) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>> {
    str_arg(c, name)
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
                EngineError::plan_hint(
                    c.span,
                    format!("{name} `{s}` is not a timestamp: {e}"),
                    "write it in RFC 3339, e.g. \"2026-01-01T00:00:00Z\"",
                )
            })
        })
        .transpose()
}

/// A string-or-list argument as a list.
fn list_arg(c: &Connector, name: &str) -> Vec<String> {
    match c.arg(name).map(|a| &a.value) {
        Some(ArgValue::Str(s)) => vec![s.clone()],
        Some(ArgValue::List(items)) => items
            .iter()
            .filter_map(|v| match v {
                ArgValue::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn str_arg<'a>(c: &'a Connector, name: &str) -> Option<&'a str> {
    match c.arg(name).map(|a| &a.value) {
        Some(ArgValue::Str(s)) => Some(s),
        _ => None,
    }
}

fn int_arg(c: &Connector, name: &str) -> Option<u64> {
    match c.arg(name).map(|a| &a.value) {
        Some(ArgValue::Int(i)) => u64::try_from(*i).ok(),
        _ => None,
    }
}

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
        }
    }

    /// Client settings for a `kafka(...)` connector: the config file's, with the
    /// rules' `brokers`, `client_id` and `options` on top.
    fn kafka_client(&self, c: &Connector) -> Result<rdkafka::ClientConfig> {
        let mut client = self
            .kafka
            .client_config(str_arg(c, "brokers"))
            .map_err(|e| EngineError::plan(c.span, e.to_string()))?;
        if let Some(id) = str_arg(c, "client_id") {
            client.set("client.id", id);
        }
        for opt in list_arg(c, "options") {
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

    fn dead_letter_file(&self, name: &str) -> Arc<dyn DeadLetterSink> {
        Arc::new(DeadLetterFile::new(
            self.data_dir
                .join("deadletter")
                .join(format!("{name}.ndjson")),
        ))
    }

    fn resolve(&self, p: &str) -> PathBuf {
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
        let c = &source.decl.connector;
        let name = source.decl.name.name.clone();
        Ok(match c.kind.name.as_str() {
            "generator" => {
                let d = GeneratorConfig::default();
                let start_us = time_arg(c, "start")?.map(|t| t.timestamp_micros());
                let dur = |n: &str| match c.arg(n).map(|a| &a.value) {
                    Some(ArgValue::Duration(ms)) => Some(*ms as i64 * 1000),
                    _ => None,
                };
                Box::new(GeneratorSource {
                    cfg: GeneratorConfig {
                        rate: int_arg(c, "rate").unwrap_or(d.rate),
                        count: int_arg(c, "count").unwrap_or(d.count),
                        seed: int_arg(c, "seed").unwrap_or(d.seed),
                        start_us,
                        step_us: dur("step").unwrap_or(d.step_us),
                        burst_every_us: dur("burst_every").unwrap_or(d.burst_every_us),
                    },
                })
            }
            "file" => {
                let path = str_arg(c, "path")
                    .ok_or_else(|| EngineError::plan(c.span, "file needs a path"))?;
                let follow = matches!(
                    c.arg("follow").map(|a| &a.value),
                    Some(ArgValue::Bool(true))
                );
                Box::new(FileSource {
                    name,
                    path: self.resolve(path),
                    follow,
                })
            }
            "stdin" => Box::new(StdinSource { name }),
            "http" => Box::new(HttpSource {
                name,
                listen: str_arg(c, "listen").unwrap_or("127.0.0.1:9000").to_string(),
            }),
            "kafka" => {
                let start = match c.arg("start").map(|a| &a.value) {
                    Some(ArgValue::Ident(w)) if w == "latest" || w == "end" => Start::Latest,
                    _ => Start::Earliest,
                };
                Box::new(KafkaSource {
                    cfg: KafkaSourceConfig {
                        name,
                        client: self.kafka_client(c)?,
                        topics: list_arg(c, "topic"),
                        group: str_arg(c, "group").unwrap_or("weir").to_string(),
                        start,
                        start_at_ms: time_arg(c, "start_at")?.map(|t| t.timestamp_millis()),
                        commit_every: match c.arg("commit_every").map(|a| &a.value) {
                            Some(ArgValue::Duration(ms)) => Duration::from_millis((*ms).max(10)),
                            _ => DEFAULT_COMMIT_EVERY,
                        },
                        metrics: self.metrics.clone(),
                    },
                })
            }
            other => {
                return Err(EngineError::plan_hint(
                    c.kind.span,
                    format!("`{other}` sources are not available in this build"),
                    "this build runs generator, file, stdin, http and kafka sources",
                ))
            }
        })
    }

    fn output(&self, output: &OutputDecl) -> Result<Arc<dyn Sink>> {
        let c = &output.connector;
        Ok(match c.kind.name.as_str() {
            "stdout" => Arc::new(JsonLinesSink::stdout()),
            "file" => {
                let path = str_arg(c, "path")
                    .ok_or_else(|| EngineError::plan(c.span, "file needs a path"))?;
                Arc::new(JsonLinesSink::file(self.resolve(path)))
            }
            "kafka" => {
                let name = output.name.name.clone();
                let topic = str_arg(c, "topic")
                    .ok_or_else(|| EngineError::plan(c.span, "kafka needs a topic"))?;
                let compression = match c.arg("compression").map(|a| &a.value) {
                    Some(ArgValue::Ident(w)) => Some(w.as_str()),
                    _ => Some("zstd"),
                };
                Arc::new(KafkaOutput {
                    producer: kafka_producer(&name, &self.kafka_client(c)?, compression)?,
                    topic: topic.to_string(),
                    key: str_arg(c, "key").map(str::to_string),
                    dead: self.dead_letter_file(&format!("output-{name}")),
                    retries: self.metrics.sink_retries.with_label_values(&[&name]),
                    failures: self.metrics.sink_failures.with_label_values(&[&name]),
                    healthy: {
                        let g = self
                            .metrics
                            .sink_healthy
                            .with_label_values(&[&format!("output:{name}")]);
                        g.set(1);
                        g
                    },
                    name,
                })
            }
            other => {
                return Err(EngineError::plan_hint(
                    c.kind.span,
                    format!("`{other}` outputs are not available in this build"),
                    "this build writes to stdout, file and kafka outputs",
                ))
            }
        })
    }

    fn archive(&self, archive: &ArchiveDecl, source: &CheckedSource) -> Result<Arc<dyn Sink>> {
        let ArchiveLocation { store, prefix, .. } =
            self.archive_location(archive.url.as_ref().map(|(u, _)| u.as_str()))?;
        let granularity = match archive.partition.as_ref().map(|p| p.name.as_str()) {
            Some("day") => Granularity::Day,
            _ => Granularity::Hour,
        };
        Ok(Arc::new(ArchiveSink::new(
            store,
            ArchiveConfig {
                stream: source.decl.name.name.clone(),
                prefix,
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
                epoch: (!source.replayable).then(crate::maintenance::new_epoch),
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
        )))
    }

    fn dead_letters(&self, source: &CheckedSource) -> Result<Arc<dyn DeadLetterSink>> {
        let name = &source.decl.name.name;
        let file = self.dead_letter_file(name);
        let c = &source.decl.connector;
        match (c.kind.name.as_str(), str_arg(c, "dead_letters")) {
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
