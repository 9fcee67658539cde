//! Producing to Kafka: the `kafka(...)` output (pipeline results and alerts as
//! JSON messages) and the dead-letter topic of a `kafka` source.
//!
//! The producer is idempotent (`acks=all`, `enable.idempotence=true`) and every
//! message's delivery report is checked. Messages that fail are retried with
//! exponential backoff and jitter; after the retry budget they go to the
//! dead-letter file under the data folder, never dropped. A write returns only
//! when every message of its batch is delivered or dead-lettered, so memory
//! stays bounded by one batch plus librdkafka's own queue.

use async_trait::async_trait;
use rand::Rng;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};
use weir_engine::output::rows_as_json;
use weir_engine::{DeadLetter, DeadLetterSink, EngineError, Result, Sink};
use weir_formats::kafka::describe;

/// Attempts per message before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 6;
/// First retry delay; doubled each attempt, with up to 50% jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// Builds an idempotent producer from client settings.
pub fn producer(
    name: &str,
    client: &ClientConfig,
    compression: Option<&str>,
) -> Result<FutureProducer> {
    let mut c = client.clone();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    if let Some(codec) = compression {
        c.set("compression.type", codec);
    }
    debug!(output = %name, config = %describe(&c), "kafka producer");
    c.create()
        .map_err(|e| EngineError::connector(name, format!("cannot create the producer: {e}")))
}

/// One message to send.
struct Outgoing {
    /// Position in the caller's list.
    index: usize,
    key: Option<String>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

/// Sends messages, retrying failures with backoff; returns those that still
/// failed after [`MAX_ATTEMPTS`], with the last error.
async fn deliver(
    producer: &FutureProducer,
    topic: &str,
    mut pending: Vec<Outgoing>,
    retries: &prometheus::IntCounter,
) -> Vec<(Outgoing, String)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sends = pending.iter().map(|m| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &m.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record = FutureRecord::to(topic).payload(&m.payload).headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k);
            }
            producer.send(record, Duration::from_secs(30))
        });
        let results = futures::future::join_all(sends).await;
        let mut failed = Vec::new();
        for (m, r) in pending.into_iter().zip(results) {
            if let Err((e, _)) = r {
                failed.push((m, e.to_string()));
            }
        }
        if failed.is_empty() || attempt >= MAX_ATTEMPTS {
            return failed;
        }
        retries.inc_by(failed.len() as u64);
        let base = BASE_BACKOFF * 2u32.saturating_pow(attempt - 1);
        let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
        let wait = base + Duration::from_millis(jitter);
        warn!(topic, failed = failed.len(), attempt, ?wait, error = %failed[0].1, "kafka delivery failed; retrying");
        tokio::time::sleep(wait).await;
        pending = failed.into_iter().map(|(m, _)| m).collect();
    }
}

/// Waits until librdkafka has delivered everything queued.
async fn flush_producer(name: &str, producer: &FutureProducer) -> Result<()> {
    let p = producer.clone();
    tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(60)))
        .await
        .map_err(|e| EngineError::Task(format!("kafka flush: {e}")))?
        .map_err(|e| EngineError::connector(name, format!("flush failed: {e}")))
}

/// The `kafka(...)` output.
pub struct KafkaOutput {
    pub name: String,
    pub topic: String,
    /// Fields whose values key each message (one: its value; several: a
    /// JSON array of them).
    pub key: Vec<String>,
    /// A topic to create before the first write when it is missing, with
    /// the partition count of the largest of these (a repartition topic).
    pub create_like: Option<(rdkafka::ClientConfig, Vec<String>)>,
    pub created: tokio::sync::OnceCell<()>,
    pub producer: FutureProducer,
    /// Where messages go after the retry budget.
    pub dead: Arc<dyn DeadLetterSink>,
    pub retries: prometheus::IntCounter,
    pub failures: prometheus::IntCounter,
    /// `weir_sink_healthy{sink="output:NAME"}`: 0 after a batch that could
    /// not be delivered whole.
    pub healthy: prometheus::IntGauge,
}

impl KafkaOutput {
    /// `kafka(topic:, key:, compression:, brokers:, client_id:, options:)`:
    /// an idempotent producer; what it cannot deliver goes to
    /// `DATA/deadletter/output-NAME.ndjson`.
    pub fn from_decl(
        f: &crate::LocalFactory,
        output: &weir_dsl::ast::OutputDecl,
    ) -> Result<Arc<dyn Sink>> {
        let c = &output.connector;
        let args = crate::args::Args(c);
        let name = output.name.name.clone();
        let topic = args.required_str("topic")?;
        let compression = args.word("compression").or(Some("zstd"));
        let healthy = f
            .metrics
            .sink_healthy
            .with_label_values(&[&format!("output:{name}")]);
        healthy.set(1);
        let client = f.kafka_client(c)?;
        let create_like = args.list(weir_dsl::repartition::CREATE_LIKE);
        Ok(Arc::new(KafkaOutput {
            producer: producer(&name, &client, compression)?,
            topic: topic.to_string(),
            key: args.list("key"),
            create_like: (!create_like.is_empty()).then_some((client, create_like)),
            created: tokio::sync::OnceCell::new(),
            dead: f.dead_letter_file(&format!("output-{name}")),
            retries: f.metrics.sink_retries.with_label_values(&[&name]),
            failures: f.metrics.sink_failures.with_label_values(&[&name]),
            healthy,
            name,
        }))
    }
}

#[async_trait]
impl Sink for KafkaOutput {
    async fn write(&self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        if let Some((client, like)) = &self.create_like {
            self.created
                .get_or_try_init(|| async {
                    crate::kafka::topics::ensure(&self.name, client, &self.topic, like)
                        .await
                        .map(|_| ())
                })
                .await?;
        }
        let rows = rows_as_json(batch)?;
        let mut out = Vec::with_capacity(rows.len());
        for (index, row) in rows.into_iter().enumerate() {
            let key = message_key(&self.key, &row);
            let payload = serde_json::to_vec(&row)?;
            out.push(Outgoing {
                index,
                key,
                payload,
                headers: Vec::new(),
            });
        }
        let failed = deliver(&self.producer, &self.topic, out, &self.retries).await;
        self.healthy.set(i64::from(failed.is_empty()));
        if !failed.is_empty() {
            self.failures.inc_by(failed.len() as u64);
            let now = DeadLetter::now();
            let source: Arc<str> = format!("output:{}", self.name).into();
            let origin: Arc<str> = self.topic.as_str().into();
            let letters = failed
                .into_iter()
                .map(|(m, reason)| DeadLetter {
                    source: source.clone(),
                    origin: Some(origin.clone()),
                    partition: 0,
                    offset: -1,
                    reason: format!("not delivered after {MAX_ATTEMPTS} attempts: {reason}"),
                    line: String::from_utf8_lossy(&m.payload).into_owned(),
                    time: now.clone(),
                })
                .collect();
            self.dead.write(letters).await?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        flush_producer(&self.name, &self.producer).await?;
        self.dead.flush().await
    }
}

/// The message key of a row: the value of the one key field (none when it
/// is null or missing), or a JSON array of the values of several.
fn message_key(
    fields: &[String],
    row: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    use serde_json::Value;
    match fields {
        [] => None,
        [one] => match row.get(one) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(v) => Some(v.to_string()),
        },
        several => Some(
            Value::Array(
                several
                    .iter()
                    .map(|k| row.get(k).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
            .to_string(),
        ),
    }
}

/// A source's dead-letter topic: the original message as the payload, and
/// headers `weir.reason`, `weir.source`, `weir.topic`, `weir.partition`,
/// `weir.offset`, `weir.time`. What cannot be delivered there goes to the
/// dead-letter file.
pub struct KafkaDeadLetters {
    pub name: String,
    pub topic: String,
    pub producer: FutureProducer,
    pub fallback: Arc<dyn DeadLetterSink>,
    pub retries: prometheus::IntCounter,
}

#[async_trait]
impl DeadLetterSink for KafkaDeadLetters {
    async fn write(&self, letters: Vec<DeadLetter>) -> Result<()> {
        let out: Vec<Outgoing> = letters
            .iter()
            .enumerate()
            .map(|(index, l)| Outgoing {
                index,
                key: None,
                payload: l.line.as_bytes().to_vec(),
                headers: vec![
                    ("weir.reason", l.reason.clone()),
                    ("weir.source", l.source.to_string()),
                    (
                        "weir.topic",
                        l.origin.as_deref().unwrap_or_default().to_string(),
                    ),
                    ("weir.partition", (l.partition & 0xffff_ffff).to_string()),
                    ("weir.offset", l.offset.to_string()),
                    ("weir.time", l.time.to_string()),
                ],
            })
            .collect();
        let failed = deliver(&self.producer, &self.topic, out, &self.retries).await;
        if !failed.is_empty() {
            warn!(topic = %self.topic, failed = failed.len(), "dead-letter topic unreachable; writing to the dead-letter file");
            let failed: Vec<usize> = failed.iter().map(|(m, _)| m.index).collect();
            let rest = letters
                .into_iter()
                .enumerate()
                .filter(|(i, _)| failed.contains(i))
                .map(|(_, l)| l)
                .collect();
            self.fallback.write(rest).await?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        flush_producer(&self.name, &self.producer).await?;
        self.fallback.flush().await
    }
}
