//! `weir-connectors`: the sources and sinks of Weir, implementing the engine's
//! [`weir_engine::Source`], [`weir_engine::Sink`] and
//! [`weir_engine::ConnectorFactory`] traits.
//!
//! - [`sources`]: `generator` (demo logs), `file`, `stdin`, `http`.
//! - [`kafka`]: the `kafka` source, output and dead-letter topic.
//! - [`sinks`]: JSON lines (`stdout`, `file`), the Parquet [`sinks::archive`], and
//!   the dead-letter store.
//! - [`notify`]: alert notification channels (Slack, webhook, email, Alertmanager).
//! - [`registry`]: the source and output kinds, each with its constructor;
//!   [`factory::LocalFactory`] builds them from rules, with data under one folder.

pub mod args;
pub mod delta;
pub mod factory;
pub mod http_server;
pub mod kafka;
pub mod live_store;
pub mod maintenance;
pub mod notify;
pub mod registry;
pub mod sinks;
pub mod sources;
pub mod state_store;
pub mod store;

pub use factory::LocalFactory;
