//! Notifications and their delivery. Channels (Slack, webhook, email,
//! Alertmanager...) implement [`Notifier`]; each channel gets its own worker
//! task that groups what arrives within `group_wait`, applies the channel's
//! rate limit, and retries failed sends with exponential backoff. A slow or
//! broken channel never blocks the engine or another channel.

use super::rfc3339;
use super::tracker::{value_text, Alert, AlertState};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One message to one channel: one rule's alerts that changed together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    pub channel: String,
    pub rule: String,
    pub pipeline: String,
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: AlertState,
    pub alerts: Vec<Alert>,
    /// A reminder for alerts still firing after the repeat interval.
    pub repeat: bool,
    /// Wall-clock time the windows behind it were evaluated (microseconds).
    pub raised_at_us: i64,
    /// The entries of the manager's outbox it delivers (several once
    /// merged); the outcome takes them out.
    #[serde(skip)]
    pub outbox_ids: Vec<u64>,
}

impl Notification {
    /// `[FIRING:2] checkout error burst (critical)`.
    pub fn title(&self) -> String {
        format!(
            "[{}:{}] {} ({})",
            self.status.as_str().to_uppercase(),
            self.alerts.len(),
            self.rule,
            self.severity
        )
    }

    /// One line per alert: labels, values, annotations.
    pub fn lines(&self) -> Vec<String> {
        self.alerts.iter().map(alert_line).collect()
    }

    /// Plain-text body: a line per alert, each followed by its evidence.
    pub fn text(&self) -> String {
        let mut out = self.title();
        out.push('\n');
        for a in &self.alerts {
            out.push_str("- ");
            out.push_str(&alert_line(a));
            out.push('\n');
            for l in evidence_lines(a) {
                out.push_str("  ");
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

/// `service=checkout errors=61 — 61 errors in checkout (window 12:00:00..12:00:30)`.
pub fn alert_line(a: &Alert) -> String {
    let mut parts: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.extend(
        a.values
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v))),
    );
    let mut line = parts.join(" ");
    if let Some(s) = a.annotations.get("summary") {
        line.push_str(" — ");
        line.push_str(s);
    }
    line.push_str(&format!(" (window {}..{})", a.window_start, a.window_end));
    line
}

/// The longest sample event shown in a text notification, in characters.
const SAMPLE_CHARS: usize = 400;

/// An alert's evidence as text lines: its sample events (one JSON object a
/// line, long ones cut), the query reproducing its window, the console link.
pub fn evidence_lines(a: &Alert) -> Vec<String> {
    let Some(e) = &a.evidence else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !e.samples.is_empty() {
        out.push(format!("sample events ({}):", e.samples.len()));
        for s in &e.samples {
            out.push(format!("  {}", sample_text(s)));
        }
    }
    out.push(format!("query: {}", e.sql));
    for c in &e.caveats {
        out.push(format!("  (approximate: {c})"));
    }
    if let Some(url) = &e.url {
        out.push(format!("console: {url}"));
    }
    out
}

/// One sample event as a line of JSON, cut at [`SAMPLE_CHARS`].
pub fn sample_text(s: &serde_json::Map<String, serde_json::Value>) -> String {
    let text = serde_json::to_string(s).unwrap_or_default();
    match text.char_indices().nth(SAMPLE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Why a send failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    /// Worth trying again (connection refused, 5xx, 429).
    #[error("{0}")]
    Retry(String),
    /// Trying again will not help (4xx, bad address, rejected credentials).
    #[error("{0}")]
    Fatal(String),
}

/// A notification channel.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError>;
}

/// At most `count` notifications per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

/// How a channel's worker behaves.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Notifications arriving within this time of the first are sent together.
    pub group_wait: Duration,
    pub rate_limit: Option<RateLimit>,
    /// Send attempts before giving up.
    pub attempts: u32,
    /// Delay before the first retry; doubles each time (with jitter).
    pub backoff: Duration,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            group_wait: Duration::from_millis(100),
            rate_limit: Some(RateLimit {
                count: 30,
                per: Duration::from_secs(60),
            }),
            attempts: 5,
            backoff: Duration::from_millis(250),
        }
    }
}

/// What became of one notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent { attempts: u32 },
    Failed { attempts: u32, error: String },
    RateLimited,
    QueueFull,
}

/// Called with every notification's outcome (history and metrics).
pub type Report = Arc<dyn Fn(&Notification, &Outcome) + Send + Sync>;

/// Starts a channel's worker; notifications go in through the returned sender.
pub fn spawn_worker(
    notifier: Arc<dyn Notifier>,
    settings: ChannelSettings,
    report: Report,
) -> mpsc::Sender<Notification> {
    let (tx, mut rx) = mpsc::channel::<Notification>(1024);
    tokio::spawn(async move {
        let mut bucket = settings.rate_limit.map(Bucket::new);
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let deadline = Instant::now() + settings.group_wait;
            while let Ok(Some(n)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                batch.push(n);
            }
            for n in merge(batch) {
                if let Some(b) = bucket.as_mut() {
                    if !b.take(Instant::now()) {
                        report(&n, &Outcome::RateLimited);
                        continue;
                    }
                }
                let outcome = deliver(notifier.as_ref(), &n, &settings).await;
                report(&n, &outcome);
            }
        }
    });
    tx
}

/// Queues a notification without waiting; a full queue is reported.
pub fn enqueue(tx: &mpsc::Sender<Notification>, n: Notification, report: &Report) {
    if let Err(e) = tx.try_send(n) {
        let n = match e {
            mpsc::error::TrySendError::Full(n) | mpsc::error::TrySendError::Closed(n) => n,
        };
        report(&n, &Outcome::QueueFull);
    }
}

async fn deliver(notifier: &dyn Notifier, n: &Notification, s: &ChannelSettings) -> Outcome {
    let mut delay = s.backoff;
    let attempts = s.attempts.max(1);
    for attempt in 1..=attempts {
        match notifier.send(n).await {
            Ok(()) => return Outcome::Sent { attempts: attempt },
            Err(NotifyError::Fatal(e)) => {
                return Outcome::Failed {
                    attempts: attempt,
                    error: e,
                }
            }
            Err(NotifyError::Retry(e)) if attempt == attempts => {
                return Outcome::Failed {
                    attempts: attempt,
                    error: e,
                }
            }
            Err(NotifyError::Retry(e)) => {
                tracing::debug!(channel = %n.channel, attempt, error = %e, "notification failed; retrying");
                let jitter = rand_jitter(delay);
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    Outcome::Failed {
        attempts,
        error: "no attempt made".into(),
    }
}

/// Up to a quarter of `d`, from the clock's low bits (no RNG state needed).
fn rand_jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos() as u64)
        .unwrap_or(0);
    let quarter = (d.as_micros() as u64 / 4).max(1);
    Duration::from_micros(nanos % quarter)
}

/// Joins notifications of the same rule and status into one.
fn merge(batch: Vec<Notification>) -> Vec<Notification> {
    let mut out: Vec<Notification> = Vec::new();
    for n in batch {
        match out
            .iter_mut()
            .find(|o| o.rule == n.rule && o.pipeline == n.pipeline && o.status == n.status)
        {
            Some(o) => {
                o.raised_at_us = o.raised_at_us.min(n.raised_at_us);
                o.repeat &= n.repeat;
                o.outbox_ids.extend(n.outbox_ids);
                for a in n.alerts {
                    match o.alerts.iter_mut().find(|x| x.fingerprint == a.fingerprint) {
                        Some(x) => *x = a,
                        None => o.alerts.push(a),
                    }
                }
            }
            None => out.push(n),
        }
    }
    out
}

/// Token bucket.
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Bucket {
        let capacity = limit.count.max(1) as f64;
        Bucket {
            tokens: capacity,
            capacity,
            per_sec: capacity / limit.per.as_secs_f64().max(0.001),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A plain JSON body for webhooks: the notification with RFC 3339 times.
pub fn json_body(n: &Notification) -> serde_json::Value {
    serde_json::json!({
        "version": "1",
        "status": n.status.as_str(),
        "rule": n.rule,
        "pipeline": n.pipeline,
        "severity": n.severity,
        "repeat": n.repeat,
        "title": n.title(),
        "raised_at": rfc3339(n.raised_at_us),
        "alerts": n.alerts.iter().map(|a| serde_json::json!({
            "fingerprint": a.fingerprint,
            "status": a.state.as_str(),
            "labels": a.labels,
            "annotations": a.annotations,
            "values": a.values,
            "window_start": a.window_start,
            "window_end": a.window_end,
            "active_since": a.active_since,
            "fired_at": a.fired_at,
            "resolved_at": a.resolved_at,
            "evidence": a.evidence,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Flaky {
        fails: Mutex<u32>,
        sent: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Notifier for Flaky {
        async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
            let mut f = self.fails.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(NotifyError::Retry("503".into()));
            }
            self.sent.lock().unwrap().push(n.alerts.len());
            Ok(())
        }
    }

    fn note(fp: &str) -> Notification {
        let mut a: Alert = serde_json::from_value(serde_json::json!({
            "fingerprint": fp, "rule": "r", "pipeline": "p", "severity": "critical",
            "state": "firing", "labels": {}, "annotations": {}, "values": {},
            "window_start": "", "window_end": "", "active_since": "", "notify": [],
            "active_since_us": 0, "last_match_us": 0
        }))
        .unwrap();
        a.fingerprint = fp.into();
        Notification {
            channel: "c".into(),
            rule: "r".into(),
            pipeline: "p".into(),
            severity: "critical".into(),
            status: AlertState::Firing,
            alerts: vec![a],
            repeat: false,
            raised_at_us: 0,
            outbox_ids: Vec::new(),
        }
    }

    #[tokio::test]
    async fn groups_retries_and_rate_limits() {
        let flaky = Arc::new(Flaky {
            fails: Mutex::new(2),
            sent: Mutex::new(Vec::new()),
        });
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let o2 = outcomes.clone();
        let report: Report = Arc::new(move |_, o| o2.lock().unwrap().push(o.clone()));
        let tx = spawn_worker(
            flaky.clone(),
            ChannelSettings {
                group_wait: Duration::from_millis(50),
                rate_limit: Some(RateLimit {
                    count: 1,
                    per: Duration::from_secs(3600),
                }),
                attempts: 5,
                backoff: Duration::from_millis(5),
            },
            report.clone(),
        );
        // Three keys at once: one message with three alerts, after two retries.
        for fp in ["a", "b", "c"] {
            enqueue(&tx, note(fp), &report);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        // A second message within the hour is over the limit.
        enqueue(&tx, note("d"), &report);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*flaky.sent.lock().unwrap(), vec![3]);
        assert_eq!(
            *outcomes.lock().unwrap(),
            vec![Outcome::Sent { attempts: 3 }, Outcome::RateLimited]
        );
    }
}
