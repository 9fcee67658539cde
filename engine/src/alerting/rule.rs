//! An alert rule as compiled from an `| alert` stage, and what the stage hands
//! the alert manager: an [`Evaluation`] per batch of closed windows.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One `| alert "NAME" when ...` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: String,
    pub pipeline: String,
    /// The rule's own word (`critical`, `warning`...), as receivers expect.
    pub severity: String,
    /// Static labels from `labels { ... }`.
    pub labels: Vec<(String, String)>,
    /// `annotations { summary: "{{errors}} errors" }` templates.
    pub annotations: Vec<(String, String)>,
    /// Channels to notify.
    pub notify: Vec<String>,
    /// The condition must hold for this long (window time) before firing.
    pub for_us: i64,
    /// A firing alert resolves after this long (window time) without a match.
    pub resolve_after_us: i64,
}

/// One closed window, for one group key, for which the condition held.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The window's group-by values.
    pub group: BTreeMap<String, String>,
    /// The window's aggregate values.
    pub values: Map<String, Value>,
    pub window_start_us: i64,
    pub window_end_us: i64,
    /// Sample events and the query reproducing the window.
    pub evidence: Option<std::sync::Arc<super::Evidence>>,
}

/// What an alert stage reports: the matches among windows that just closed,
/// and how far window time has got (every window ending at or before
/// `closed_until_us` has been evaluated).
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub rule: Arc<AlertRule>,
    pub hits: Vec<Hit>,
    pub closed_until_us: Option<i64>,
}

/// Where alert stages send their evaluations.
pub trait AlertSink: Send + Sync {
    fn evaluate(&self, evaluation: Evaluation);

    /// Writing the sink's state as it is now, to run off the async
    /// threads; pipelines run it at each checkpoint, before their source
    /// positions are committed. `None`: nothing to save.
    fn save_job(&self) -> Option<SaveJob> {
        None
    }

    /// The open alerts of one rule (their state moves with the source
    /// partition of their window keys: see `ops::alert`).
    fn export(&self, _pipeline: &str, _rule: &str) -> Vec<super::Alert> {
        Vec::new()
    }

    /// Takes open alerts in (another process had them), replacing any of
    /// the same fingerprint, without notifying.
    fn import(&self, _alerts: Vec<super::Alert>) {}

    /// Forgets open alerts of one rule without notifying: those of
    /// `fingerprints`, or all of them (`None`).
    fn forget(&self, _pipeline: &str, _rule: &str, _fingerprints: Option<&[String]>) {}
}

/// A state write to run on a blocking thread (see [`AlertSink::save_job`]).
pub type SaveJob = Box<dyn FnOnce() -> std::io::Result<()> + Send>;
