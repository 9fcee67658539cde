//! `[security]` in `weir.toml`: what rules submitted over the API may
//! reach, which hosts the API answers to, who reads `/metrics`, and what a
//! submitted rule may cost.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// Folders that rules submitted over the API may name in file sources,
    /// file outputs, lookup tables and GeoIP databases. Default: the data
    /// folder. Rules from the config file or the command line are not
    /// limited.
    pub allowed_paths: Vec<PathBuf>,
    /// Kafka brokers (`host:port`) submitted rules may name, besides the
    /// `[kafka]` brokers.
    pub allowed_brokers: Vec<String>,
    /// Addresses `http(listen: …)` sources of submitted rules may bind:
    /// `ip:port`, or `ip:*` for any port. Default: loopback, any port.
    pub allowed_listen: Vec<String>,
    /// Who may read `/metrics`: `loopback` (default: open to clients on
    /// loopback, a credential from elsewhere), `open`, or `authenticated`.
    pub metrics: MetricsAccess,
    /// The address people reach the API at (e.g. `https://weir.example.com`):
    /// requests naming another `Host`, and cross-site `Origin`s, are refused.
    pub public_url: Option<String>,
    /// More host names the API answers to.
    pub allowed_hosts: Vec<String>,
    /// Pipelines one user or token may have running from the API.
    pub max_pipelines_per_user: usize,
    /// Largest `.rules` text accepted, in bytes.
    pub max_rules_bytes: usize,
    /// Largest `max_keys` a submitted window may ask for (and the limit a
    /// window without `max_keys` gets).
    pub max_window_keys: u64,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            allowed_paths: Vec::new(),
            allowed_brokers: Vec::new(),
            allowed_listen: vec!["127.0.0.1:*".into(), "[::1]:*".into(), "localhost:*".into()],
            metrics: MetricsAccess::Loopback,
            public_url: None,
            allowed_hosts: Vec::new(),
            max_pipelines_per_user: 50,
            max_rules_bytes: 1 << 20,
            max_window_keys: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    Loopback,
    Open,
    Authenticated,
}

/// `[tls]`: serve the API over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsSettings {
    /// A rustls acceptor for the certificate and key.
    pub fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        use anyhow::Context;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("[tls] cert {}", self.cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("[tls] cert {} holds no certificate", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("[tls] key {}", self.key.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("[tls] the certificate and key do not go together")?;
        Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
    }
}
