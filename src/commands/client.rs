//! Talking to a running `weir serve` from the CLI: the base URL, the
//! bearer token (`--token` / `$WEIR_TOKEN`), for `https://` the CA to trust
//! (`--ca` / `$WEIR_CA`; default the Mozilla roots), and errors as the
//! server words them.

use serde_json::Value;

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// How to reach the server.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub server: String,
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust for `https://` servers.
    pub ca: Option<std::path::PathBuf>,
}

impl Client {
    pub fn new(c: Connection) -> anyhow::Result<Client> {
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(path) = &c.ca {
            let pem =
                std::fs::read(path).map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                anyhow::bail!("--ca {}: no PEM certificate in it", path.display());
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                    .build(),
            );
        }
        Ok(Client {
            base: c.server.trim_end_matches('/').to_string(),
            token: c.token.filter(|t| !t.is_empty()),
            agent: config.build().into(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn reach(&self, e: ureq::Error) -> anyhow::Error {
        anyhow::anyhow!("cannot reach {}: {e}", self.base)
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut resp = self
            .auth(self.agent.get(&self.url(path)))
            .call()
            .map_err(|e| self.reach(e))?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_vec()?))
    }

    /// POST a JSON body to `path`, accepting `accept`.
    pub fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        accept: &str,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut resp = self
            .auth(self.agent.post(&self.url(path)))
            .header("Accept", accept)
            .send_json(body)
            .map_err(|e| self.reach(e))?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_vec()?))
    }

    /// POST without a body to `path`.
    pub fn post_empty(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut resp = self
            .auth(self.agent.post(&self.url(path)))
            .send_empty()
            .map_err(|e| self.reach(e))?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_vec()?))
    }

    /// POST a `.rules` text to `path`.
    pub fn post_rules(&self, path: &str, text: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut resp = self
            .auth(self.agent.post(&self.url(path)))
            .header("Content-Type", "application/x-weir-rules")
            .send(text)
            .map_err(|e| self.reach(e))?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_vec()?))
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut resp = self
            .auth(self.agent.delete(&self.url(path)))
            .call()
            .map_err(|e| self.reach(e))?;
        Ok((resp.status().as_u16(), resp.body_mut().read_to_vec()?))
    }
}

/// The server's `{"error": ...}` text of a failed response, with a hint on
/// 401.
pub fn error_text(status: u16, body: &[u8]) -> String {
    let msg = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    if status == 401 {
        format!("{status}: {msg} (pass --token or set WEIR_TOKEN; `weir token create` makes one)")
    } else {
        format!("{status}: {msg}")
    }
}
