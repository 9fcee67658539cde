//! Notification channels: Slack, generic webhook (HMAC-signed), email over
//! SMTP, Prometheus Alertmanager and the log. Declared once in `weir.toml`
//! under `[channels.NAME]` and referenced by name in rules (`notify [NAME]`).

mod alertmanager;
mod email;
mod http;
mod slack;
mod webhook;

use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::alerting::{ChannelSettings, Notifier, RateLimit};

pub use email::EmailTls;

/// One `[channels.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelConfig {
    #[serde(flatten)]
    pub kind: ChannelKind,
    /// Notifications arriving within this time of the first go out together.
    #[serde(default, with = "humantime_serde")]
    pub group_wait: Option<Duration>,
    /// At most N notifications per period: `"30/1m"` (the default), `"none"`.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// Send attempts before giving up (default 5, with exponential backoff).
    #[serde(default)]
    pub attempts: Option<u32>,
}

/// The channel type and its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelKind {
    /// Slack incoming webhook.
    Slack {
        url: Option<String>,
        /// Environment variable holding the URL (it is a secret).
        url_env: Option<String>,
    },
    /// JSON POST to any URL, optionally signed.
    Webhook {
        url: Option<String>,
        url_env: Option<String>,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
        /// Signs each body with HMAC-SHA256 using the secret in this variable.
        hmac_secret_env: Option<String>,
        hmac_secret_file: Option<PathBuf>,
    },
    /// Email over SMTP.
    Email {
        host: String,
        port: Option<u16>,
        #[serde(default)]
        tls: EmailTls,
        /// A PEM file of extra CA certificates to trust (private mail servers).
        ca: Option<PathBuf>,
        username: Option<String>,
        password_env: Option<String>,
        password_file: Option<PathBuf>,
        from: String,
        to: Vec<String>,
    },
    /// Prometheus Alertmanager (`POST /api/v2/alerts`).
    Alertmanager {
        url: String,
        /// How often firing alerts are re-posted so Alertmanager keeps them
        /// active (default 1m, like Prometheus).
        #[serde(default, with = "humantime_serde")]
        resend_every: Option<Duration>,
    },
    /// Writes notifications to Weir's log only.
    Log,
}

/// Why a channel could not be built.
#[derive(Debug, thiserror::Error)]
#[error("channel `{name}`: {message}")]
pub struct ChannelError {
    pub name: String,
    pub message: String,
}

/// Builds the notifier and worker settings of one channel.
pub fn build(
    name: &str,
    cfg: &ChannelConfig,
) -> Result<(Option<Arc<dyn Notifier>>, ChannelSettings), ChannelError> {
    let err = |message: String| ChannelError {
        name: name.to_string(),
        message,
    };
    let mut settings = ChannelSettings::default();
    if let Some(g) = cfg.group_wait {
        settings.group_wait = g;
    }
    if let Some(a) = cfg.attempts {
        settings.attempts = a.max(1);
    }
    if let Some(r) = &cfg.rate_limit {
        settings.rate_limit = parse_rate_limit(r).map_err(err)?;
    }
    let notifier: Option<Arc<dyn Notifier>> = match &cfg.kind {
        ChannelKind::Slack { url, url_env } => Some(Arc::new(slack::Slack::new(
            secret(url, url_env, &None).map_err(err)?,
        ))),
        ChannelKind::Webhook {
            url,
            url_env,
            headers,
            hmac_secret_env,
            hmac_secret_file,
        } => {
            let secret_key = match (hmac_secret_env, hmac_secret_file) {
                (None, None) => None,
                _ => Some(secret(&None, hmac_secret_env, hmac_secret_file).map_err(err)?),
            };
            Some(Arc::new(
                webhook::Webhook::new(
                    secret(url, url_env, &None).map_err(err)?,
                    headers.clone(),
                    secret_key,
                )
                .map_err(err)?,
            ))
        }
        ChannelKind::Email {
            host,
            port,
            tls,
            ca,
            username,
            password_env,
            password_file,
            from,
            to,
        } => {
            let password = match (password_env, password_file) {
                (None, None) => None,
                _ => Some(secret(&None, password_env, password_file).map_err(err)?),
            };
            Some(Arc::new(
                email::Email::new(email::EmailConfig {
                    host: host.clone(),
                    port: *port,
                    tls: *tls,
                    ca: ca.clone(),
                    username: username.clone(),
                    password,
                    from: from.clone(),
                    to: to.clone(),
                })
                .map_err(err)?,
            ))
        }
        ChannelKind::Alertmanager { url, resend_every } => Some(Arc::new(
            alertmanager::Alertmanager::new(url, resend_every.unwrap_or(Duration::from_secs(60)))
                .map_err(err)?,
        )),
        ChannelKind::Log => None,
    };
    Ok((notifier, settings))
}

/// `"30/1m"` → 30 per minute; `"none"` → no limit.
pub fn parse_rate_limit(text: &str) -> Result<Option<RateLimit>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || format!("rate_limit `{text}`: write COUNT/PERIOD, e.g. \"30/1m\", or \"none\"");
    let (count, per) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
    if count == 0 || per.is_zero() {
        return Err(bad());
    }
    Ok(Some(RateLimit { count, per }))
}

/// A secret given inline, in an environment variable, or in a file.
fn secret(
    value: &Option<String>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<String, String> {
    if let Some(v) = value {
        return Ok(v.clone());
    }
    if let Some(var) = env {
        return std::env::var(var)
            .map_err(|_| format!("the environment variable `{var}` is not set"));
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    Err("needs `url` or `url_env`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        let r = parse_rate_limit("30/1m").unwrap().unwrap();
        assert_eq!((r.count, r.per), (30, Duration::from_secs(60)));
        assert_eq!(parse_rate_limit("none").unwrap(), None);
        assert!(parse_rate_limit("30 per minute").is_err());
        assert!(parse_rate_limit("0/1m").is_err());
    }
}
