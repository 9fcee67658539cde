//! Generic webhook: the notification as JSON, custom headers, and an optional
//! HMAC-SHA256 signature: `X-Weir-Signature: sha256=HEX` over
//! `TIMESTAMP.BODY`, with the Unix timestamp in `X-Weir-Timestamp`.

use super::http;
use async_trait::async_trait;
use std::collections::BTreeMap;
use weir_engine::alerting::{notify::json_body, Notification, Notifier, NotifyError};

pub struct Webhook {
    url: String,
    headers: BTreeMap<String, String>,
    key: Option<ring::hmac::Key>,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(
        url: String,
        headers: BTreeMap<String, String>,
        secret: Option<String>,
    ) -> Result<Webhook, String> {
        for name in headers.keys() {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
        }
        Ok(Webhook {
            url,
            headers,
            key: secret.map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.as_bytes())),
            client: http::client()?,
        })
    }
}

/// `sha256=HEX` of HMAC-SHA256(secret, "TIMESTAMP.BODY").
pub fn signature(key: &ring::hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[async_trait]
impl Notifier for Webhook {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&json_body(n))
            .map_err(|e| NotifyError::Fatal(format!("cannot encode: {e}")))?;
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(key) = &self.key {
            let ts = chrono::Utc::now().timestamp();
            req = req
                .header("X-Weir-Timestamp", ts.to_string())
                .header("X-Weir-Signature", signature(key, ts, &body));
        }
        http::outcome(req.body(body).send().await, "the webhook").await
    }
}
