//! Kafka delivery: an idempotent, batching, compressing rdkafka producer
//! whose every message is checked by its delivery report. What Kafka does
//! not confirm within `delivery_timeout` goes to the [`Spool`]; a drain loop
//! sends it again when the broker answers. Authentication and TLS failures
//! are fatal and reported with a hint.
//!
//! Delivery reports are counted per batch: every message of a batch carries
//! the batch's [`Track`] (one shared counter, no per-message future), and the
//! report of a failed message hands its payload back for the spool.

use crate::config::ShipConfig;
use crate::metrics::ShipMetrics;
use crate::spool::{Spool, Spooled};
use crate::ShipError;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientConfig;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Turns librdkafka's fatal client errors into a message for the agent and
/// counts delivery reports into each batch's [`Track`].
pub struct Ctx {
    fatal: mpsc::UnboundedSender<String>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        match weir_formats::kafka::fatal_hint(error.rdkafka_error_code()) {
            Some((table, what)) => {
                let _ = self
                    .fatal
                    .send(format!("{reason} (hint: check kafka.{table}: {what})"));
            }
            None => tracing::warn!(error = %error, "kafka: {reason}"),
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Arc<Track>;

    fn delivery(&self, result: &DeliveryResult<'_>, track: Arc<Track>) {
        match result {
            Ok(m) => {
                track.ok.fetch_add(1, Ordering::Relaxed);
                track
                    .ok_bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
            }
            Err((_, m)) => track.fail(m.payload().unwrap_or_default().to_vec()),
        }
        track.settle_one();
    }
}

/// The delivery state of one batch: how many reports are still due, how
/// many messages Kafka confirmed, and the payloads it did not.
pub struct Track {
    /// Reports still due, plus one held while messages are being queued.
    due: AtomicUsize,
    ok: AtomicU64,
    ok_bytes: AtomicU64,
    failed: Mutex<Vec<Vec<u8>>>,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

impl Track {
    fn new() -> (Arc<Track>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let t = Track {
            due: AtomicUsize::new(1),
            ok: AtomicU64::new(0),
            ok_bytes: AtomicU64::new(0),
            failed: Mutex::new(Vec::new()),
            done: Mutex::new(Some(tx)),
        };
        (Arc::new(t), rx)
    }

    fn fail(&self, payload: Vec<u8>) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(payload);
    }

    fn settle_one(&self) {
        if self.due.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(());
            }
        }
    }
}

type Client = Arc<ThreadedProducer<Ctx>>;

/// The idempotent producer is replaced at most this often after failures.
const RENEW_EVERY: Duration = Duration::from_secs(10);

pub struct Producer {
    /// The client; replaced by a new one after a fatal error or, for the
    /// idempotent producer, after failed deliveries (see [`renew`](Self::renew)).
    kafka: RwLock<Client>,
    /// When the client was last replaced (see [`renew`](Self::renew)).
    renewed: Mutex<std::time::Instant>,
    settings: ClientConfig,
    fatal: mpsc::UnboundedSender<String>,
    spool: Option<Spool>,
    metrics: ShipMetrics,
}

impl Producer {
    /// The producer, and a receiver of fatal errors (bad credentials, TLS).
    pub fn new(
        cfg: &ShipConfig,
        metrics: ShipMetrics,
    ) -> Result<(Arc<Producer>, mpsc::UnboundedReceiver<String>), ShipError> {
        let mut c = cfg
            .kafka
            .client_config(None)
            .map_err(|e| ShipError::Kafka(e.0))?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .set("compression.type", cfg.compression.as_str())
            .set(
                "message.timeout.ms",
                cfg.delivery_timeout.as_millis().max(1).to_string(),
            );
        for (k, v) in &cfg.kafka.options {
            c.set(k, v);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let kafka = create(&c, &tx)?;
        let spool = if cfg.spool.enabled {
            let dir = cfg.spool_dir();
            Some(Spool::open(&dir, cfg.spool.max_bytes).map_err(|e| {
                ShipError::io(format!("cannot open the spool {}", dir.display()), e)
            })?)
        } else {
            None
        };
        if let Some(s) = &spool {
            metrics.spool_bytes.set(s.bytes() as i64);
        }
        Ok((
            Arc::new(Producer {
                kafka: RwLock::new(kafka),
                renewed: Mutex::new(std::time::Instant::now()),
                settings: c,
                fatal: tx,
                spool,
                metrics,
            }),
            rx,
        ))
    }

    /// Sends one source's messages to a topic. Resolves once every message
    /// is confirmed by Kafka or safely in the spool; false if some could be
    /// neither (spool off or unwritable), which the caller must not
    /// acknowledge.
    pub async fn ship(&self, topic: &str, source: &str, payloads: Vec<Vec<u8>>) -> bool {
        let failed = self.deliver(topic, source, &payloads).await;
        drop(payloads);
        if failed.is_empty() {
            return true;
        }
        let failed: Vec<Spooled> = failed
            .into_iter()
            .map(|p| Spooled {
                topic: topic.to_string(),
                source: source.to_string(),
                payload: String::from_utf8(p)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            })
            .collect();
        let Some(spool) = &self.spool else {
            self.metrics
                .errors
                .with_label_values(&[source, "delivery"])
                .inc_by(failed.len() as u64);
            return false;
        };
        match spool.append(&failed) {
            Ok((lost, bytes)) => {
                self.metrics
                    .spooled
                    .with_label_values(&["written"])
                    .inc_by(failed.len() as u64);
                self.metrics
                    .spooled
                    .with_label_values(&["dropped"])
                    .inc_by(lost);
                self.metrics.spool_bytes.set(bytes as i64);
                true
            }
            Err(e) => {
                tracing::error!("cannot write the spool: {e}");
                self.metrics
                    .errors
                    .with_label_values(&[source, "spool"])
                    .inc_by(failed.len() as u64);
                false
            }
        }
    }

    fn client(&self) -> Client {
        self.kafka.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After failed deliveries, replaces `used` with a new client when it hit
    /// a fatal error, or — for the idempotent producer, at most every 10 s —
    /// when deliveries failed at all. An idempotent producer whose messages
    /// timed out bumps its epoch on its own, which Apache Kafka accepts but
    /// some Kafka-compatible brokers (tansu) reject for ever after they
    /// restart; a new client asks the broker for a new producer id. The old
    /// client is dropped off the async threads: dropping purges its queue,
    /// whose messages come back as failed deliveries (and go to the spool).
    fn renew(&self, used: &Client) {
        let why = match used.client().fatal_error() {
            Some((code, reason)) => format!("it hit a fatal error ({code:?}: {reason})"),
            None => {
                let idempotent = self.settings.get("enable.idempotence") == Some("true");
                let mut last = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
                if !idempotent || last.elapsed() < RENEW_EVERY {
                    return;
                }
                *last = std::time::Instant::now();
                "deliveries failed (a new producer id after a broker outage)".to_string()
            }
        };
        let old = {
            let mut current = self.kafka.write().unwrap_or_else(|p| p.into_inner());
            if !Arc::ptr_eq(&current, used) {
                return; // another batch renewed it already
            }
            match create(&self.settings, &self.fatal) {
                Ok(new) => std::mem::replace(&mut *current, new),
                Err(e) => {
                    tracing::error!("kafka: cannot replace the producer: {e}");
                    return;
                }
            }
        };
        tracing::warn!("kafka: started a new producer because {why}; events not confirmed are spooled and sent again");
        self.metrics
            .errors
            .with_label_values(&["agent", "producer_renewed"])
            .inc();
        tokio::task::spawn_blocking(move || drop(old));
    }

    /// Queues every message and waits for all their delivery reports;
    /// returns the payloads Kafka did not confirm.
    async fn deliver(&self, topic: &str, source: &str, payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let kafka = self.client();
        let (track, done) = Track::new();
        track.due.fetch_add(payloads.len(), Ordering::AcqRel);
        for p in payloads {
            let mut record =
                BaseRecord::<(), [u8], Arc<Track>>::with_opaque_to(topic, track.clone())
                    .payload(p.as_slice());
            loop {
                match kafka.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!(source, "cannot queue a message: {e}");
                        track.fail(p.clone());
                        track.settle_one();
                        break;
                    }
                }
            }
        }
        track.settle_one();
        // The sender lives in the track until the last report, which only
        // the client can drop (at shutdown); then nothing was confirmed.
        let _ = done.await;
        let ok = track.ok.load(Ordering::Acquire);
        let ok_bytes = track.ok_bytes.load(Ordering::Acquire);
        let failed = std::mem::take(&mut *track.failed.lock().unwrap_or_else(|p| p.into_inner()));
        if !failed.is_empty() {
            self.renew(&kafka);
        }
        if ok > 0 {
            self.metrics.shipped.with_label_values(&[source]).inc_by(ok);
            self.metrics
                .bytes
                .with_label_values(&[source])
                .inc_by(ok_bytes);
        }
        failed
    }

    /// Sends the spool again, oldest segment first, until cancelled.
    pub async fn drain_spool(self: Arc<Self>, cancel: CancellationToken) {
        let Some(spool) = &self.spool else { return };
        loop {
            let pause = match spool.oldest() {
                Ok(Some((path, items))) => {
                    let n = items.len() as u64;
                    let mut all = true;
                    for ((topic, source), payloads) in by_destination(items) {
                        all &= self.deliver(&topic, &source, &payloads).await.is_empty();
                    }
                    if all {
                        if let Err(e) = spool.remove(&path) {
                            tracing::error!("cannot remove {}: {e}", path.display());
                        }
                        self.metrics
                            .spooled
                            .with_label_values(&["drained"])
                            .inc_by(n);
                        self.metrics.spool_bytes.set(spool.bytes() as i64);
                        tracing::info!(events = n, "spool segment delivered");
                        Duration::from_millis(10)
                    } else {
                        Duration::from_secs(2)
                    }
                }
                Ok(None) => Duration::from_millis(500),
                Err(e) => {
                    tracing::error!("cannot read the spool: {e}");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Waits for messages still queued in the client.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.client().flush(timeout) {
            tracing::warn!("kafka flush: {e}");
        }
    }
}

/// Payloads bound for one (topic, source).
type Destined = ((String, String), Vec<Vec<u8>>);

/// Spooled messages grouped by (topic, source), in order of first appearance.
fn by_destination(items: Vec<Spooled>) -> Vec<Destined> {
    let mut groups: Vec<Destined> = Vec::new();
    for i in items {
        let key = (i.topic, i.source);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(i.payload.into_bytes()),
            None => groups.push((key, vec![i.payload.into_bytes()])),
        }
    }
    groups
}

fn create(
    settings: &ClientConfig,
    fatal: &mpsc::UnboundedSender<String>,
) -> Result<Client, ShipError> {
    settings
        .create_with_context(Ctx {
            fatal: fatal.clone(),
        })
        .map(Arc::new)
        .map_err(|e| ShipError::Kafka(format!("cannot create the Kafka producer: {e}")))
}
