//! `ship.yaml`: the agent's settings — Kafka (the same `kafka` settings as
//! the engine's `[kafka]` table), the default topic, spool and state folders,
//! and the list of sources. Validated as a whole before it is used, so a bad
//! edit is rejected with a clear message and the running config stays.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_formats::kafka::KafkaConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipConfig {
    /// Brokers, TLS, SASL and raw librdkafka options (see docs/kafka.md).
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// Topic of sources that name none.
    #[serde(default)]
    pub topic: Option<String>,
    /// `zstd` (default), `lz4`, `snappy`, `gzip` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// How long Kafka may take to confirm a message before it goes to the spool.
    #[serde(default = "default_delivery_timeout", with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// The `host` field of every event (default: this machine's name).
    #[serde(default)]
    pub host: Option<String>,
    /// Positions of tailed files and the spool live here.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Events held in memory between sources and Kafka (backpressure beyond).
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// Address of `/metrics`; `null` to switch it off.
    #[serde(default = "default_metrics")]
    pub metrics: Option<SocketAddr>,
    pub sources: Vec<SourceConfig>,
}

/// `spool:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// On by default; off means events Kafka did not confirm are dropped
    /// (and counted).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Folder (default `STATE_DIR/spool`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Bytes kept at most; the oldest segment is dropped (and counted) beyond.
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            enabled: true,
            dir: None,
            max_bytes: default_spool_bytes(),
        }
    }
}

/// What a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    File,
    Stdin,
    Syslog,
    Http,
}

/// How lines are parsed into fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// JSON objects when the line is one, plain text otherwise.
    #[default]
    Auto,
    Json,
    Logfmt,
    /// Named captures of `regex` become fields.
    Regex,
    /// The whole line is the message.
    Plain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// New files are read from their first byte (default).
    #[default]
    Beginning,
    /// Files found at start are read from their end; files appearing later
    /// from their beginning.
    End,
}

/// Joins continuation lines (stack traces) to the line that starts an event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Multiline {
    /// A line matching this regex starts a new event.
    pub start: String,
    /// A pending event is sent after this long without a new line (default 1s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// One entry of `sources:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// file: glob patterns.
    #[serde(default)]
    pub paths: Vec<String>,
    /// file: where new files start.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// file, stdin: multi-line events.
    #[serde(default)]
    pub multiline: Option<Multiline>,
    /// syslog, http: `host:port` to listen on.
    #[serde(default)]
    pub listen: Option<String>,
    /// syslog: `udp` (default) or `tcp`.
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub format: LineFormat,
    /// format regex: the pattern, with named captures.
    #[serde(default)]
    pub regex: Option<String>,
    /// Events below this severity are not shipped (counted as filtered).
    #[serde(default)]
    pub min_severity: Option<String>,
    /// Static fields added to every event.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Fields taken from environment variables: `field: VARIABLE`.
    #[serde(default)]
    pub env_fields: BTreeMap<String, String>,
    /// Fields removed from every event.
    #[serde(default)]
    pub drop_fields: Vec<String>,
    /// Kafka topic (default: the top-level `topic`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Events per second at most (the source slows down beyond).
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn yes() -> bool {
    true
}
fn default_compression() -> String {
    "zstd".into()
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("weir-ship-state")
}
fn default_buffer() -> usize {
    10_000
}
fn default_metrics() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9101)))
}
fn default_spool_bytes() -> u64 {
    1 << 30
}

impl ShipConfig {
    /// Reads and validates a config file; relative paths are relative to it.
    pub fn load(path: &Path) -> Result<ShipConfig, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mut cfg = ShipConfig::parse(&text).map_err(err)?;
        if let Some(dir) = path.parent() {
            let rel = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            };
            rel(&mut cfg.state_dir);
            if let Some(d) = cfg.spool.dir.as_mut() {
                rel(d);
            }
            for s in &mut cfg.sources {
                for p in &mut s.paths {
                    if Path::new(p).is_relative() {
                        *p = dir.join(&*p).display().to_string();
                    }
                }
            }
            if let Some(tls) = cfg.kafka.tls.as_mut() {
                for p in [&mut tls.ca, &mut tls.cert, &mut tls.key]
                    .into_iter()
                    .flatten()
                {
                    rel(p);
                }
            }
            if let Some(p) = cfg
                .kafka
                .sasl
                .as_mut()
                .and_then(|s| s.password_file.as_mut())
            {
                rel(p);
            }
        }
        Ok(cfg)
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> Result<ShipConfig, String> {
        let cfg: ShipConfig = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The spool folder.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool
            .dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("spool"))
    }

    fn validate(&self) -> Result<(), String> {
        if !["zstd", "lz4", "snappy", "gzip", "none"].contains(&self.compression.as_str()) {
            return Err(format!(
                "compression `{}`: use zstd, lz4, snappy, gzip or none",
                self.compression
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = |m: String| format!("sources[{i}] ({}): {m}", s.name);
            if s.name.trim().is_empty() {
                return Err(format!("sources[{i}]: `name` is empty"));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(at("another source has this name".into()));
            }
            if s.topic.is_none() && self.topic.is_none() {
                return Err(at("no topic: set `topic` here or at the top level".into()));
            }
            match s.kind {
                SourceType::File if s.paths.is_empty() => {
                    return Err(at("a file source needs `paths` (glob patterns)".into()))
                }
                SourceType::File => {
                    for p in &s.paths {
                        glob::Pattern::new(p).map_err(|e| at(format!("bad glob `{p}`: {e}")))?;
                    }
                }
                SourceType::Syslog | SourceType::Http => {
                    let l = s
                        .listen
                        .as_deref()
                        .ok_or_else(|| at("needs `listen: host:port`".into()))?;
                    l.parse::<SocketAddr>()
                        .map_err(|_| at(format!("listen `{l}` is not host:port")))?;
                }
                SourceType::Stdin => {}
            }
            if s.format == LineFormat::Regex {
                let p = s
                    .regex
                    .as_deref()
                    .ok_or_else(|| at("format regex needs `regex`".into()))?;
                let p = weir_formats::grok::expand(p)
                    .map_err(|e| at(format!("bad regex: {e}")))?
                    .regex;
                let re = regex::Regex::new(&p).map_err(|e| at(format!("bad regex: {e}")))?;
                if re.capture_names().flatten().next().is_none() {
                    return Err(at(
                        "the regex has no named captures like (?P<message>.*)".into()
                    ));
                }
            }
            if let Some(m) = &s.multiline {
                regex::Regex::new(&m.start)
                    .map_err(|e| at(format!("bad multiline start regex: {e}")))?;
            }
            if let Some(sev) = &s.min_severity {
                if weir_dsl::severity::rank(sev).is_none() {
                    return Err(at(format!(
                        "min_severity `{sev}`: use trace, debug, info, warn, error or fatal"
                    )));
                }
            }
            if s.rate_limit == Some(0) {
                return Err(at(
                    "rate_limit must be above 0 (leave it out for no limit)".into()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
kafka:
  brokers: "127.0.0.1:9092"
topic: logs
sources:
  - name: app
    type: file
    paths: ["/var/log/app/*.log"]
    service: checkout
    environment: production
    multiline: { start: '^\d{4}-' }
    fields: { team: payments }
  - name: sys
    type: syslog
    listen: "127.0.0.1:5514"
    protocol: tcp
"#;

    #[test]
    fn parses_a_good_config() {
        let cfg = ShipConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.sources.len(), 2);
        assert_eq!(cfg.sources[1].protocol, Protocol::Tcp);
        assert_eq!(cfg.delivery_timeout, Duration::from_secs(10));
    }

    #[test]
    fn rejects_bad_configs_with_the_reason() {
        for (bad, want) in [
            (
                GOOD.replace("type: file", "type: fil"),
                "unknown variant `fil`",
            ),
            (
                GOOD.replace("name: sys", "name: app"),
                "another source has this name",
            ),
            (
                GOOD.replace("listen: \"127.0.0.1:5514\"", "listen: nowhere"),
                "not host:port",
            ),
            (GOOD.replace("topic: logs", ""), "no topic"),
            (
                GOOD.replace("service: checkout", "servce: checkout"),
                "unknown field `servce`",
            ),
        ] {
            let e = ShipConfig::parse(&bad).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
