//! Kafka client settings shared by the source, the output, the dead-letter
//! producer and the `weir ship` agent: brokers, TLS, SASL and raw librdkafka
//! settings, read from the `[kafka]` table of a config file. Secrets come from
//! environment variables or files and never appear in `Debug` output or logs.

use rdkafka::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `[kafka]` table.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    #[serde(default)]
    pub brokers: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Raw librdkafka settings, applied last (e.g. `"fetch.min.bytes" = "1"`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) (PEM) that signed the brokers' certificates; the
    /// system store when absent.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Check that the broker's certificate names the host (default true).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// For a client error that retrying cannot fix (TLS, authentication): the
/// settings table to check (`tls` or `sasl`) and what in it.
pub fn fatal_hint(
    code: Option<rdkafka::types::RDKafkaErrorCode>,
) -> Option<(&'static str, &'static str)> {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code? {
        C::SSL => Some((
            "tls",
            "ca (the CA that signed the broker's certificate), cert/key and the broker address",
        )),
        C::Authentication | C::SaslAuthenticationFailed => {
            Some(("sasl", "mechanism, username and the password source"))
        }
        _ => None,
    }
}

/// Settings that cannot be used; the message says which and why.
#[derive(Debug, thiserror::Error)]
#[error("kafka settings: {0}")]
pub struct ConfigError(pub String);

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("tls", &self.tls.is_some())
            .field(
                "sasl",
                &self.sasl.as_ref().map(|s| (&s.mechanism, &s.username)),
            )
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// librdkafka settings that carry secrets: never logged.
const SECRET_KEYS: [&str; 3] = ["sasl.password", "ssl.key.password", "ssl.key.pem"];

impl KafkaConfig {
    /// A librdkafka configuration for these settings; `brokers` (from the
    /// rules) overrides the config file's.
    pub fn client_config(&self, brokers: Option<&str>) -> Result<ClientConfig, ConfigError> {
        let mut c = ClientConfig::new();
        let brokers = brokers.or(self.brokers.as_deref()).ok_or_else(|| {
            ConfigError(
                "no brokers: set `brokers` in the rules or in the [kafka] table of the config"
                    .into(),
            )
        })?;
        c.set("bootstrap.servers", brokers);
        c.set("client.id", self.client_id.as_deref().unwrap_or("weir"));
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca {
                c.set("ssl.ca.location", path_str(ca)?);
            }
            match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => {
                    c.set("ssl.certificate.location", path_str(cert)?);
                    c.set("ssl.key.location", path_str(key)?);
                }
                (None, None) => {}
                _ => {
                    return Err(ConfigError(
                        "tls: `cert` and `key` go together (mutual TLS needs both)".into(),
                    ))
                }
            }
            c.set(
                "ssl.endpoint.identification.algorithm",
                if tls.verify_hostname { "https" } else { "none" },
            );
        }
        if let Some(sasl) = &self.sasl {
            let mech = sasl.mechanism.to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mech.as_str()) {
                return Err(ConfigError(format!(
                    "sasl mechanism `{}` is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    sasl.mechanism
                )));
            }
            c.set("sasl.mechanism", mech);
            c.set("sasl.username", &sasl.username);
            c.set("sasl.password", sasl.password()?);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        Ok(c)
    }
}

impl SaslConfig {
    fn password(&self) -> Result<String, ConfigError> {
        match (&self.password_env, &self.password_file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                ConfigError(format!(
                    "sasl: the environment variable `{var}` (password_env) is not set"
                ))
            }),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| {
                    ConfigError(format!(
                        "sasl: cannot read password_file {}: {e}",
                        file.display()
                    ))
                }),
            _ => Err(ConfigError(
                "sasl: set exactly one of `password_env` or `password_file` (passwords are never written in the config itself)".into(),
            )),
        }
    }
}

fn path_str(p: &std::path::Path) -> Result<&str, ConfigError> {
    p.to_str()
        .ok_or_else(|| ConfigError(format!("path {} is not UTF-8", p.display())))
}

/// The settings of a client configuration as `key=value` text, with secrets
/// masked: for logs and error messages.
pub fn describe(c: &ClientConfig) -> String {
    let mut items: Vec<String> = c
        .config_map()
        .iter()
        .map(|(k, v)| {
            if SECRET_KEYS.iter().any(|s| k == s) {
                format!("{k}=***")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    items.sort();
    items.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment_and_are_masked() {
        std::env::set_var("WEIR_TEST_KAFKA_PW", "s3cret");
        let cfg: KafkaConfig = toml_like(
            r#"{"brokers":"b:9092","sasl":{"mechanism":"scram-sha-512","username":"u","password_env":"WEIR_TEST_KAFKA_PW"}}"#,
        );
        let c = cfg.client_config(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        let text = describe(&c);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn bad_settings_are_explained() {
        let cfg: KafkaConfig = toml_like(r#"{"sasl":{"mechanism":"GSSAPI","username":"u"}}"#);
        let e = cfg.client_config(Some("b:1")).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("GSSAPI"));
        let cfg = KafkaConfig::default();
        let e = cfg.client_config(None).err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("no brokers"));
    }

    fn toml_like(json: &str) -> KafkaConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }
}
