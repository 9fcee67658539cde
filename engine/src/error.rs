//! Errors of the engine: building a plan from checked rules, and running it.

use weir_dsl::{Diagnostic, ErrorKind, Span};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The rules are valid but cannot be run as written (a lookup table that does
    /// not exist, a connector this build lacks). Points at the rules text.
    #[error("{message}")]
    Plan {
        span: Span,
        message: String,
        hint: Option<String>,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connector `{name}`: {message}")]
    Connector { name: String, message: String },
    /// An invariant the checker or the engine itself guarantees broke: a
    /// bug, reported instead of a panic.
    #[error("internal error: {0}")]
    Internal(String),
    /// The engine stopped while this waited on it (a closed channel).
    #[error("the engine stopped")]
    Stopped,
    /// One of the engine's tasks failed (panicked or was cancelled).
    #[error("task failed: {0}")]
    Task(String),
    /// A checkpoint did not complete: a pipeline or sink could not flush.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("regex: {0}")]
    Regex(#[from] regex::Error),
}

impl EngineError {
    pub fn plan(span: Span, message: impl Into<String>) -> Self {
        EngineError::Plan {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn plan_hint(span: Span, message: impl Into<String>, hint: impl Into<String>) -> Self {
        EngineError::Plan {
            span,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn connector(name: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Connector {
            name: name.into(),
            message: message.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }

    /// A plan error as a diagnostic against the rules text, for the same
    /// `file:line:col` rendering as checker errors.
    pub fn to_diagnostic(&self) -> Option<Diagnostic> {
        match self {
            EngineError::Plan {
                span,
                message,
                hint,
            } => {
                let d = Diagnostic::new(ErrorKind::InvalidArgument, *span, message.clone());
                Some(match hint {
                    Some(h) => d.with_hint(h.clone()),
                    None => d,
                })
            }
            _ => None,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
