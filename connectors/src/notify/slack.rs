//! Slack incoming webhooks: a header block with the title and one section per
//! alert (at most 20, then a count of the rest).

use super::http;
use async_trait::async_trait;
use serde_json::{json, Value};
use weir_engine::alerting::notify::{alert_line, sample_text};
use weir_engine::alerting::{Alert, Notification, Notifier, NotifyError};

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

/// Slack's limit for a section's text.
const SECTION_CHARS: usize = 3000;

fn cut(text: &str) -> String {
    match text.char_indices().nth(SECTION_CHARS - 1) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// An alert's evidence in Slack's markup: the sample events and the query
/// as code, the console link.
fn evidence(a: &Alert) -> String {
    let Some(e) = &a.evidence else {
        return String::new();
    };
    let mut out = String::new();
    if !e.samples.is_empty() {
        out.push_str("\n```");
        for s in &e.samples {
            out.push('\n');
            out.push_str(&sample_text(s));
        }
        out.push_str("\n```");
    }
    out.push_str(&format!("\n`{}`", e.sql.replace('`', "'")));
    if let Some(url) = &e.url {
        out.push_str(&format!("\n<{url}|Search the window in the console>"));
    }
    out
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
            "text": { "type": "mrkdwn", "text": cut(&format!("{emoji} {}{}", alert_line(a), evidence(a))) }
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
