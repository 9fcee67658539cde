//! Slack incoming webhooks: a header block with the title and one section per
//! alert (at most 20, then a count of the rest).

use super::http;
use async_trait::async_trait;
use serde_json::{json, Value};
use weir_engine::alerting::{notify::alert_line, Notification, Notifier, NotifyError};

pub struct Slack {
    url: String,
    client: Option<reqwest::Client>,
}

impl Slack {
    pub fn new(url: String) -> Slack {
        Slack {
            url,
            client: http::client().ok(),
        }
    }
}

/// The message body Slack receives.
pub fn payload(n: &Notification) -> Value {
    let emoji = match n.status.as_str() {
        "resolved" => ":white_check_mark:",
        _ if n.severity == "critical" => ":rotating_light:",
        _ => ":warning:",
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": n.title() }
    })];
    for a in n.alerts.iter().take(20) {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("{emoji} {}", alert_line(a)) }
        }));
    }
    if n.alerts.len() > 20 {
        blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": format!("…and {} more", n.alerts.len() - 20) }]
        }));
    }
    json!({ "text": n.title(), "blocks": blocks })
}

#[async_trait]
impl Notifier for Slack {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| NotifyError::Fatal("no HTTP client".into()))?;
        let sent = client.post(&self.url).json(&payload(n)).send().await;
        http::outcome(sent, "Slack").await
    }
}
