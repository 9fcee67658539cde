//! Email over SMTP with lettre: plain SMTP, STARTTLS or implicit TLS, optional
//! login, and a multipart body (plain text and HTML).

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use std::path::PathBuf;
use weir_engine::alerting::notify::{alert_line, sample_text};
use weir_engine::alerting::{Notification, Notifier, NotifyError};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain SMTP (only for a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (port 587); required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

pub struct EmailConfig {
    pub host: String,
    pub port: Option<u16>,
    pub tls: EmailTls,
    pub ca: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(cfg: EmailConfig) -> Result<Email, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("`from` {:?}: {e}", cfg.from))?;
        if cfg.to.is_empty() {
            return Err("`to` needs at least one address".into());
        }
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("`to` {t:?}: {e}")))
            .collect::<Result<Vec<Mailbox>, String>>()?;
        let tls_params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(ca) = &cfg.ca {
                let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build().map_err(|e| format!("TLS settings: {e}"))
        };
        let (tls, default_port) = match cfg.tls {
            EmailTls::None => (Tls::None, 25),
            EmailTls::Starttls => (Tls::Required(tls_params()?), 587),
            EmailTls::Tls => (Tls::Wrapper(tls_params()?), 465),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(cfg.port.unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(15)));
        if let Some(user) = &cfg.username {
            b = b.credentials(Credentials::new(
                user.clone(),
                cfg.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Email {
            transport: b.build(),
            from,
            to,
        })
    }
}

fn html(n: &Notification) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = format!("<h2>{}</h2>\n<ul>\n", esc(&n.title()));
    for a in &n.alerts {
        out.push_str(&format!("<li>{}", esc(&alert_line(a))));
        if let Some(e) = &a.evidence {
            if !e.samples.is_empty() {
                let lines: Vec<String> = e.samples.iter().map(sample_text).collect();
                out.push_str(&format!("<pre>{}</pre>", esc(&lines.join("\n"))));
            }
            out.push_str(&format!("<p>Query: <code>{}</code></p>", esc(&e.sql)));
            if let Some(url) = &e.url {
                out.push_str(&format!(
                    "<p><a href=\"{}\">Search the window in the console</a></p>",
                    esc(url).replace('"', "&quot;")
                ));
            }
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
    out
}

#[async_trait]
impl Notifier for Email {
    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.title());
        for t in &self.to {
            b = b.to(t.clone());
        }
        let msg = b
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(n.text()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html(n)),
                    ),
            )
            .map_err(|e| NotifyError::Fatal(format!("cannot build the email: {e}")))?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(NotifyError::Fatal(format!("SMTP: {e}"))),
            Err(e) => Err(NotifyError::Retry(format!("SMTP: {e}"))),
        }
    }
}
