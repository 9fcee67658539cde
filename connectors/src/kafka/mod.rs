//! Kafka connectors on librdkafka (`rdkafka`): a consumer-group source that
//! commits offsets only after a checkpoint, an idempotent output, and a
//! dead-letter topic; TLS and SASL settings shared by all of them (and by the
//! `weir ship` agent).

pub mod config;
pub mod sink;
pub mod source;

pub use config::{ConfigError, KafkaConfig, SaslConfig, TlsConfig};
pub use sink::{KafkaDeadLetters, KafkaOutput};
pub use source::{KafkaSource, KafkaSourceConfig, Start};
