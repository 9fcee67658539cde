//! Kafka connectors on librdkafka (`rdkafka`): a consumer-group source that
//! commits offsets only after a checkpoint, an idempotent output, and a
//! dead-letter topic. Their TLS and SASL settings (`[kafka]`) live in
//! `weir_formats::kafka`, shared with the `weir ship` agent.

pub mod sink;
pub mod source;
pub mod topics;

pub use sink::{KafkaDeadLetters, KafkaOutput};
pub use source::{KafkaSource, KafkaSourceConfig, Start};
pub use weir_formats::kafka::{ConfigError, KafkaConfig, SaslConfig, TlsConfig};
