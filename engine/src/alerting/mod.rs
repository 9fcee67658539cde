//! Alerting: what happens to window results for which an alert rule's
//! condition held.
//!
//! - [`rule`]: the rule as an alert stage compiled it, and the [`Evaluation`]s
//!   the stage hands on after each batch of closed windows.
//! - [`tracker`]: the lifecycle state machine (pending → firing → resolved)
//!   per fingerprint, driven by window (event) time only.
//! - [`silence`]: silences and their label matchers.
//! - [`notify`]: notifications, the [`Notifier`] trait channels implement, and
//!   the per-channel worker (grouping, rate limit, retries with backoff).
//! - [`manager`]: the [`AlertManager`] tying them together: history, metrics,
//!   repeat interval, persistence in the data folder.
//! - [`evidence`]: what an alert carries to show why it fired (sample
//!   events, the SQL reproducing its window, a console link).
//! - [`sent_log`]: deliveries remembered in the shared state folder, so a
//!   transition replayed after a crash is not notified twice.
//! - [`clock`]: wall clock or a simulated one (`weir test`).

pub mod clock;
pub mod evidence;
pub mod manager;
pub mod notify;
pub mod rule;
pub mod sent_log;
pub mod silence;
pub mod store;
pub mod tracker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use evidence::Evidence;
pub use manager::{AlertManager, AlertSettings, HistoryEntry};
pub use notify::Outcome;
pub use notify::{ChannelSettings, Notification, Notifier, NotifyError, RateLimit};
pub use rule::{AlertRule, AlertSink, Evaluation, Hit};
pub use silence::{MatchOp, Matcher, Silence, SilenceError};
pub use tracker::{Alert, AlertState};

/// Microseconds since the Unix epoch as RFC 3339 UTC (fractions only when
/// non-zero, as the window rows print them).
pub fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}
