//! `weir-engine`: the dataflow runtime of Weir.
//!
//! Events travel in micro-batches as Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es:
//! a [`connector::Source`] yields raw lines, [`decode`] turns them into typed
//! columns (keeping the original line in `_raw`, sending undecodable lines to a
//! dead-letter sink), and each pipeline runs its [`ops`] — vectorized filters and
//! projections, event-time windows with aggregates, alerts — before its outputs.
//! [`runtime::deploy`] wires it all with bounded channels.
//!
//! The engine knows no particular system: connectors implement
//! [`connector::Source`], [`connector::Sink`] and [`connector::ConnectorFactory`].

pub mod alerting;
pub mod checkpoint;
pub mod connector;
pub mod decode;
pub mod error;
pub mod expr;
pub mod functions;
pub mod metrics;
pub mod ops;
pub mod output;
pub mod pipeline;
pub mod rows;
pub mod runtime;
pub mod schema;
pub mod state_files;

pub use alerting::{Alert, AlertManager, AlertSettings, AlertSink, HistoryEntry};
pub use connector::{
    ConnectorFactory, DeadLetter, DeadLetterSink, LineBatch, LineSender, LoadLines, Sink, Source,
    StoredPositions,
};
pub use error::{EngineError, Result};
pub use metrics::Metrics;
pub use rows::filter_batch;
pub use runtime::{deploy, DeployOptions, Deployment};

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A seeded xorshift generator: the same numbers on every run.
    pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }
}
