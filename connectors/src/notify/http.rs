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
        Err(e) => {
            // reqwest's message names the URL, whose path and query hold the
            // secret of Slack and webhook URLs: print it redacted.
            let at = e.url().map(|u| redact_url(u.as_str())).unwrap_or_default();
            Err(NotifyError::Retry(format!(
                "{what} ({at}): {}",
                e.without_url()
            )))
        }
    }
}

/// A URL without what may be secret: user and password, path and query
/// become `…` (`https://hooks.slack.com/…`), so it can be logged and shown.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = u.path() != "/" || u.query().is_some() || u.fragment().is_some();
            format!(
                "{}://{host}{port}/{}",
                u.scheme(),
                if hidden { "…" } else { "" }
            )
        }
        Err(_) => "(a URL that does not parse)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_path_and_query() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T00/B00/SECRETTOKEN"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:9/hook?token=SECRET"),
            "http://127.0.0.1:9/…"
        );
        assert_eq!(redact_url("http://am:9093"), "http://am:9093/");
        assert!(!redact_url("not a url SECRET").contains("SECRET"));
    }
}
