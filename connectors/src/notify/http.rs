//! The HTTP client the HTTP channels share, and how responses map to retry
//! or give-up.

use std::time::Duration;
use weir_engine::alerting::NotifyError;

pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// 2xx is sent; 429 and 5xx are retried; other statuses are final.
pub async fn outcome(
    sent: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<(), NotifyError> {
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let status = r.status();
            let body: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let msg = format!("{what} answered {status}: {body}");
            if status.as_u16() == 429 || status.is_server_error() {
                Err(NotifyError::Retry(msg))
            } else {
                Err(NotifyError::Fatal(msg))
            }
        }
        Err(e) => Err(NotifyError::Retry(format!("{what}: {e}"))),
    }
}
