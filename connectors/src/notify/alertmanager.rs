//! Prometheus Alertmanager: `POST /api/v2/alerts`. Labels are the alert's
//! labels plus `alertname`, `severity` and `pipeline`; annotations are the
//! rendered templates plus the evidence (`evidence_samples`, one JSON event a
//! line; `evidence_query`; `evidence_url` with a console address). Like Prometheus, firing alerts are re-posted every
//! `resend_every` with `endsAt` a few periods ahead, so Alertmanager keeps them
//! active while Weir runs and expires them if Weir goes away; a resolved alert
//! is posted once with `endsAt` set to when it resolved. Posts go out one at
//! a time (the re-post holds the same lock as a send), so a re-post that read
//! an alert as firing can never reach Alertmanager after its resolution.

use super::http;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use weir_engine::alerting::notify::sample_text;
use weir_engine::alerting::{rfc3339, Alert, AlertState, Notification, Notifier, NotifyError};

pub struct Alertmanager {
    endpoint: String,
    client: reqwest::Client,
    resend_every: Duration,
    /// Firing alerts to re-post, by fingerprint. Held across each post.
    firing: Arc<Mutex<HashMap<String, Alert>>>,
}

impl Alertmanager {
    pub fn new(url: &str, resend_every: Duration) -> Result<Alertmanager, String> {
        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        reqwest::Url::parse(&endpoint)
            .map_err(|e| format!("bad url `{}`: {e}", super::http::redact_url(url)))?;
        let am = Alertmanager {
            endpoint,
            client: http::client()?,
            resend_every,
            firing: Arc::new(Mutex::new(HashMap::new())),
        };
        am.start_resending();
        Ok(am)
    }

    fn start_resending(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let firing = Arc::downgrade(&self.firing);
        let client = self.client.clone();
        let endpoint = self.endpoint.clone();
        let every = self.resend_every;
        handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(firing) = firing.upgrade() else {
                    return;
                };
                let held = firing.lock().await;
                if held.is_empty() {
                    continue;
                }
                let body = Value::Array(held.values().map(|a| encode(a, every)).collect());
                let sent = client.post(&endpoint).json(&body).send().await;
                if let Err(e) = http::outcome(sent, "Alertmanager").await {
                    tracing::warn!("re-posting firing alerts to Alertmanager failed: {e}");
                }
                drop(held);
            }
        });
    }
}

/// One alert in Alertmanager's v2 format.
fn encode(a: &Alert, resend_every: Duration) -> Value {
    let mut labels = a.labels.clone();
    labels.insert("alertname".into(), a.rule.clone());
    labels.insert("severity".into(), a.severity.clone());
    labels.insert("pipeline".into(), a.pipeline.clone());
    let starts = a.fired_at.clone().unwrap_or_else(|| a.active_since.clone());
    let ends = match (&a.state, &a.resolved_at) {
        (AlertState::Resolved, Some(t)) => t.clone(),
        _ => {
            let ahead = chrono::Utc::now().timestamp_micros() + 4 * resend_every.as_micros() as i64;
            rfc3339(ahead)
        }
    };
    let mut annotations = a.annotations.clone();
    if let Some(e) = &a.evidence {
        // Receivers show annotations as text: the samples as JSON lines.
        if !e.samples.is_empty() {
            let lines: Vec<String> = e.samples.iter().map(sample_text).collect();
            annotations.insert("evidence_samples".into(), lines.join("\n"));
        }
        annotations.insert("evidence_query".into(), e.sql.clone());
        if let Some(url) = &e.url {
            annotations.insert("evidence_url".into(), url.clone());
        }
    }
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": starts,
        "endsAt": ends,
    })
}

#[async_trait]
impl Notifier for Alertmanager {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = Value::Array(
            n.alerts
                .iter()
                .map(|a| encode(a, self.resend_every))
                .collect(),
        );
        let mut firing = self.firing.lock().await;
        let sent = self.client.post(&self.endpoint).json(&body).send().await;
        http::outcome(sent, "Alertmanager").await?;
        for a in &n.alerts {
            match a.state {
                AlertState::Firing => {
                    firing.insert(a.fingerprint.clone(), a.clone());
                }
                _ => {
                    firing.remove(&a.fingerprint);
                }
            }
        }
        Ok(())
    }
}
