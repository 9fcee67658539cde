//! A `tracing` layer that turns a Rust service's tracing events into Weir
//! events — the same schema `weir ship` produces — and writes them to stdout
//! as JSON lines or straight to Kafka.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let layer = weir_ship::layer::ShipLayer::stdout("checkout", "production");
//! tracing_subscriber::registry().with(layer).init();
//! tracing::warn!(order = 42, "card declined");
//! ```

use crate::config::{SourceConfig, SourceType};
use crate::event::{hostname, EventShape};
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
use serde_json::{Map, Value};
use std::io::Write;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;
use weir_formats::kafka::KafkaConfig;

enum Sink {
    Stdout,
    Kafka {
        producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
        topic: String,
    },
}

/// See the module docs. Cheap to clone: keep a clone to [`flush`](Self::flush)
/// before the service exits.
#[derive(Clone)]
pub struct ShipLayer {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    shape: EventShape,
    sink: Sink,
}

fn shape(service: &str, environment: &str) -> EventShape {
    let cfg = SourceConfig {
        name: "tracing".into(),
        kind: SourceType::Stdin,
        paths: vec![],
        read_from: Default::default(),
        multiline: None,
        listen: None,
        protocol: Default::default(),
        service: Some(service.into()),
        environment: Some(environment.into()),
        format: Default::default(),
        regex: None,
        min_severity: None,
        fields: Default::default(),
        env_fields: Default::default(),
        drop_fields: vec![],
        topic: None,
        rate_limit: None,
    };
    EventShape::new(&cfg, None, &hostname())
}

impl ShipLayer {
    /// JSON lines on standard output.
    pub fn stdout(service: &str, environment: &str) -> ShipLayer {
        ShipLayer::with(shape(service, environment), Sink::Stdout)
    }

    /// Straight to a Kafka topic (the same settings as `weir ship`'s `kafka:`).
    pub fn kafka(
        service: &str,
        environment: &str,
        kafka: &KafkaConfig,
        topic: &str,
    ) -> Result<ShipLayer, crate::ShipError> {
        let mut c = kafka
            .client_config(None)
            .map_err(|e| crate::ShipError::Kafka(e.0))?;
        c.set("linger.ms", "20").set("compression.type", "zstd");
        let producer = c.create().map_err(|e| {
            crate::ShipError::Kafka(format!("cannot create the Kafka producer: {e}"))
        })?;
        Ok(ShipLayer::with(
            shape(service, environment),
            Sink::Kafka {
                producer,
                topic: topic.into(),
            },
        ))
    }

    fn with(shape: EventShape, sink: Sink) -> ShipLayer {
        ShipLayer {
            inner: std::sync::Arc::new(Inner { shape, sink }),
        }
    }

    /// Waits until events sent to Kafka are delivered (call before exiting).
    pub fn flush(&self, timeout: Duration) {
        if let Sink::Kafka { producer, .. } = &self.inner.sink {
            let _ = producer.flush(timeout);
        }
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

impl<S: tracing::Subscriber> Layer<S> for ShipLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut f = Fields(Map::new());
        event.record(&mut f);
        let mut fields = f.0;
        fields.insert(
            "severity".into(),
            Value::String(meta.level().as_str().into()),
        );
        fields.insert("target".into(), Value::String(meta.target().into()));
        let Some(e) = self.inner.shape.fields(fields, chrono::Utc::now()) else {
            return;
        };
        let line = e.into_json();
        match &self.inner.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&line);
                let _ = out.write_all(b"\n");
            }
            Sink::Kafka { producer, topic } => {
                // Never block the service: an event the client cannot queue is dropped.
                let _ = producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&line));
            }
        }
    }
}
