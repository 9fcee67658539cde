//! The shipper's one error type: what stopped the agent, a source, the
//! producer or the `tracing` layer, and why.

/// Why the agent, a source or the producer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The config file cannot be read or is not valid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// Reading, listening or writing failed: what was being done and why.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The Kafka client cannot be built or used (settings, TLS, SASL).
    #[error("kafka: {0}")]
    Kafka(String),
    /// The agent's metrics cannot be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl ShipError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ShipError {
        ShipError::Io {
            context: context.into(),
            source,
        }
    }
}
