//! `weir-ship`: the producer side of Weir.
//!
//! The agent (`weir ship --config ship.yaml`) reads logs from many sources,
//! turns every line into one structured JSON [`event`] (timestamp, service,
//! environment, normalised severity, host, message, source, extra fields),
//! and ships them to Kafka with batching, compression, idempotence and
//! delivery checks; what Kafka does not confirm goes to an on-disk [`spool`]
//! that drains when the broker returns.
//!
//! - [`config`]: the YAML config and its validation; [`error`]: [`ShipError`].
//! - [`event`]: the event schema, line formats and severity normalisation.
//! - [`sources`]: file tailing (globs, rotation, positions, multi-line),
//!   stdin, syslog over TCP/UDP, JSON lines over HTTP.
//! - [`producer`] and [`spool`]: Kafka delivery and the outage spool.
//! - [`agent`]: runs the sources, hot-reloads the config (file watch and
//!   SIGHUP), serves `/metrics`.
//! - [`layer`]: a `tracing` layer that emits the same events from a Rust
//!   service, to stdout or straight to Kafka.

pub mod agent;
pub mod config;
pub mod error;
pub mod event;
pub mod layer;
pub mod metrics;
pub mod producer;
pub mod sources;
pub mod spool;

pub use config::{ShipConfig, SourceConfig};
pub use error::ShipError;
pub use event::Event;
