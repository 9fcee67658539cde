//! Who may do what on `weir serve`: identities (users with argon2id
//! password hashes, API tokens stored hashed) in one file under the data
//! folder ([`store`]), roles and the routes they open ([`role`]), scopes that
//! limit which events a user sees ([`scope`]), browser sessions with CSRF
//! tokens and the failed-login limiter ([`session`]), and the append-only
//! audit log ([`audit`]). The HTTP side (the one layer every route passes
//! through) is `crate::api::guard`.

pub mod audit;
pub mod role;
pub mod sandbox;
pub mod scope;
pub mod secret;
pub mod session;
pub mod settings;
pub mod store;

pub use role::{Access, Role};
pub use scope::Scope;
pub use settings::{MetricsAccess, SecuritySettings, TlsSettings};
pub use store::AuthStore;

use axum::http::{header, HeaderMap};
use std::net::{IpAddr, SocketAddr};

/// Everything the API's door needs: the identities, the open sessions, the
/// failed-login counts, the audit log and the settings.
pub struct Auth {
    pub store: AuthStore,
    pub sessions: session::Sessions,
    pub limiter: session::LoginLimiter,
    pub audit: audit::AuditLog,
    pub settings: SecuritySettings,
    /// Host names the API answers to; empty when it listens on every
    /// address and no public URL is set (any name then).
    hosts: Vec<String>,
    /// The API is served over TLS (cookies get `Secure`).
    pub tls: bool,
}

impl Auth {
    pub fn new(
        store: AuthStore,
        audit: audit::AuditLog,
        settings: SecuritySettings,
        listen: SocketAddr,
        tls: bool,
    ) -> Auth {
        let mut hosts: Vec<String> = settings
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Some(h) = settings.public_url.as_deref().and_then(host_of_url) {
            hosts.push(h);
        }
        if !listen.ip().is_unspecified() || !hosts.is_empty() {
            hosts.push(listen.ip().to_string());
            if listen.ip().is_loopback() {
                hosts.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
            }
        }
        Auth {
            store,
            sessions: session::Sessions::default(),
            limiter: session::LoginLimiter::default(),
            audit,
            settings,
            hosts,
            tls,
        }
    }

    /// Whether the request's `Host` is one this server answers to.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(host_part)
            .is_some_and(|h| self.hosts.contains(&h))
    }

    /// Whether a state-changing request's `Origin` (when it has one) is
    /// this server.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Some(origin) = origin.to_str().ok().and_then(host_of_url) else {
            return false;
        };
        if self.hosts.is_empty() {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(host_part);
            return host.as_deref() == Some(origin.as_str());
        }
        self.hosts.contains(&origin)
    }

    /// Whether `/metrics` is open to this client without a credential.
    pub fn metrics_open(&self, peer: Option<SocketAddr>) -> bool {
        match self.settings.metrics {
            MetricsAccess::Open => true,
            MetricsAccess::Loopback => peer.is_some_and(|p| p.ip().is_loopback()),
            MetricsAccess::Authenticated => false,
        }
    }

    /// Records an audit entry.
    pub fn audit(
        &self,
        who: &str,
        address: Option<IpAddr>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        self.audit.record(audit::Entry {
            actor: who,
            address,
            action,
            target,
            outcome,
            detail,
        });
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `::1`; lower case.
fn host_part(host: &str) -> String {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    bare.to_ascii_lowercase()
}

/// The host name of `scheme://host:port/...`.
fn host_of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r)?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    (!authority.is_empty()).then(|| host_part(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        assert_eq!(host_part("Example.com:8080"), "example.com");
        assert_eq!(host_part("[::1]:80"), "::1");
        assert_eq!(host_part("localhost"), "localhost");
        assert_eq!(
            host_of_url("https://weir.example.com/x").as_deref(),
            Some("weir.example.com")
        );
        assert_eq!(host_of_url("null"), None);
    }
}

/// Who a request acts as, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// A user's name, or `token:NAME` for an API token.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    /// The session's CSRF token when the request came with a session
    /// cookie (state-changing requests must echo it).
    pub csrf: Option<String>,
}
