//! Kafka delivery: an idempotent, batching, compressing rdkafka producer
//! whose every message is checked by its delivery report. What Kafka does
//! not confirm within `delivery_timeout` goes to the [`Spool`]; a drain loop
//! sends it again when the broker answers. Authentication and TLS failures
//! are fatal and reported with a hint.

use crate::config::ShipConfig;
use crate::metrics::ShipMetrics;
use crate::spool::{Spool, Spooled};
use futures::future::join_all;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One message to ship.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: Arc<str>,
    pub source: Arc<str>,
    pub payload: Vec<u8>,
}

/// Turns librdkafka's fatal client errors into a message for the agent.
pub struct Ctx {
    fatal: mpsc::UnboundedSender<String>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        match weir_connectors::kafka::config::fatal_hint(error.rdkafka_error_code()) {
            Some((table, what)) => {
                let _ = self
                    .fatal
                    .send(format!("{reason} (hint: check kafka.{table}: {what})"));
            }
            None => tracing::warn!(error = %error, "kafka: {reason}"),
        }
    }
}

pub struct Producer {
    kafka: FutureProducer<Ctx>,
    spool: Option<Spool>,
    metrics: ShipMetrics,
}

impl Producer {
    /// The producer, and a receiver of fatal errors (bad credentials, TLS).
    pub fn new(
        cfg: &ShipConfig,
        metrics: ShipMetrics,
    ) -> Result<(Arc<Producer>, mpsc::UnboundedReceiver<String>), String> {
        let mut c = cfg.kafka.client_config(None).map_err(|e| e.0)?;
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
        let kafka: FutureProducer<Ctx> = c
            .create_with_context(Ctx { fatal: tx })
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        let spool = if cfg.spool.enabled {
            let dir = cfg.spool_dir();
            Some(
                Spool::open(&dir, cfg.spool.max_bytes)
                    .map_err(|e| format!("cannot open the spool {}: {e}", dir.display()))?,
            )
        } else {
            None
        };
        if let Some(s) = &spool {
            metrics.spool_bytes.set(s.bytes() as i64);
        }
        Ok((
            Arc::new(Producer {
                kafka,
                spool,
                metrics,
            }),
            rx,
        ))
    }

    /// Sends a batch. Resolves once every message is confirmed by Kafka or
    /// safely in the spool; false if some could be neither (spool off or
    /// unwritable), which the caller must not acknowledge.
    pub async fn ship(&self, batch: Vec<Outgoing>) -> bool {
        let ok = self.deliver(&batch).await;
        let failed: Vec<Spooled> = batch
            .iter()
            .zip(&ok)
            .filter(|(_, ok)| !**ok)
            .map(|(o, _)| Spooled {
                topic: o.topic.to_string(),
                source: o.source.to_string(),
                payload: String::from_utf8_lossy(&o.payload).into_owned(),
            })
            .collect();
        if failed.is_empty() {
            return true;
        }
        let Some(spool) = &self.spool else {
            for f in &failed {
                self.metrics
                    .errors
                    .with_label_values(&[&f.source, "delivery"])
                    .inc();
            }
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
                for f in &failed {
                    self.metrics
                        .errors
                        .with_label_values(&[&f.source, "spool"])
                        .inc();
                }
                false
            }
        }
    }

    /// Sends every message; true for each Kafka confirmed.
    async fn deliver(&self, batch: &[Outgoing]) -> Vec<bool> {
        let mut futures = Vec::with_capacity(batch.len());
        for o in batch {
            let mut record = FutureRecord::<(), [u8]>::to(&o.topic).payload(&o.payload);
            loop {
                match self.kafka.send_result(record) {
                    Ok(f) => {
                        futures.push(Some(f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!(source = %o.source, "cannot queue a message: {e}");
                        futures.push(None);
                        break;
                    }
                }
            }
        }
        let results = join_all(futures.into_iter().map(|f| async move {
            match f {
                Some(f) => matches!(f.await, Ok(Ok(_))),
                None => false,
            }
        }))
        .await;
        for (o, ok) in batch.iter().zip(&results) {
            if *ok {
                self.metrics.shipped.with_label_values(&[&o.source]).inc();
                self.metrics
                    .bytes
                    .with_label_values(&[&o.source])
                    .inc_by(o.payload.len() as u64);
            }
        }
        results
    }

    /// Sends the spool again, oldest segment first, until cancelled.
    pub async fn drain_spool(self: Arc<Self>, cancel: CancellationToken) {
        let Some(spool) = &self.spool else { return };
        loop {
            let pause = match spool.oldest() {
                Ok(Some((path, items))) => {
                    let batch: Vec<Outgoing> = items
                        .iter()
                        .map(|i| Outgoing {
                            topic: i.topic.as_str().into(),
                            source: i.source.as_str().into(),
                            payload: i.payload.clone().into_bytes(),
                        })
                        .collect();
                    let ok = self.deliver(&batch).await;
                    if ok.iter().all(|o| *o) {
                        if let Err(e) = spool.remove(&path) {
                            tracing::error!("cannot remove {}: {e}", path.display());
                        }
                        self.metrics
                            .spooled
                            .with_label_values(&["drained"])
                            .inc_by(ok.len() as u64);
                        self.metrics.spool_bytes.set(spool.bytes() as i64);
                        tracing::info!(events = ok.len(), "spool segment delivered");
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
        if let Err(e) = self.kafka.flush(timeout) {
            tracing::warn!("kafka flush: {e}");
        }
    }
}
