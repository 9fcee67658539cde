//! The one door every API route goes through. Routes are declared in a
//! table ([`Routes`]) with the [`Access`] each needs and the body it takes;
//! the router is built from the same table, and this layer looks the
//! matched route up in it: a route added without a rule answers 500 and
//! logs why, so nothing is open by omission.
//!
//! For each request, in order: the `Host` must be one this server answers
//! to (DNS rebinding); open routes pass; the caller is identified by a
//! bearer token (`Authorization: Bearer weir_…`) or a session cookie —
//! none gives 401; the role must allow the route — else 403; a
//! state-changing request (or a WebSocket upgrade) must carry a same-site
//! `Origin` when it has one (403), its declared content type (415), and,
//! from a cookie session,
//! the session's CSRF token in `X-CSRF-Token` (403). The [`Principal`] is
//! then in the request's extensions for the handler.

use super::{ApiError, AppState};
use crate::auth::session::{COOKIE, CSRF_HEADER};
use crate::auth::{secret, Access, Principal};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a route's body must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    None,
    /// `application/json`.
    Json,
    /// A `.rules` text: `application/x-weir-rules`, `text/x-weir-rules` or
    /// `application/octet-stream` — never a type a plain HTML form can send.
    Rules,
}

/// Content types a `.rules` body may have.
pub const RULES_TYPES: &[&str] = &[
    "application/x-weir-rules",
    "text/x-weir-rules",
    "application/octet-stream",
];

/// One route's rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub method: String,
    pub path: &'static str,
    pub access: Access,
    pub body: Body,
}

/// The routes and their rules, built together.
pub struct Routes {
    router: Router<AppState>,
    rules: Vec<Rule>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes {
            router: Router::new(),
            rules: Vec::new(),
        }
    }

    /// Adds `handler` for `method` on `path`, needing `access`.
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        body: Body,
        handler: MethodRouter<AppState>,
    ) -> Routes {
        let filter = match method {
            Method::GET => MethodFilter::GET,
            Method::POST => MethodFilter::POST,
            Method::PUT => MethodFilter::PUT,
            Method::DELETE => MethodFilter::DELETE,
            Method::PATCH => MethodFilter::PATCH,
            _ => MethodFilter::OPTIONS,
        };
        self.rules.push(Rule {
            method: method.to_string(),
            path,
            access,
            body,
        });
        // `on` keeps only the method asked for; HEAD follows GET.
        self.router = self.router.route(path, on(filter, handler));
        self
    }

    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.rules.extend(other.rules);
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The router with the guard in front of every route.
    pub fn into_router(self, state: AppState) -> Router {
        let rules: HashMap<(String, String), Rule> = self
            .rules
            .iter()
            .map(|r| ((r.method.clone(), r.path.to_string()), r.clone()))
            .collect();
        let guard_state = GuardState {
            app: state.clone(),
            rules: Arc::new(rules),
        };
        self.router
            .route_layer(axum::middleware::from_fn_with_state(guard_state, guard))
            .with_state(state)
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes::new()
    }
}

#[derive(Clone)]
struct GuardState {
    app: AppState,
    rules: Arc<HashMap<(String, String), Rule>>,
}

/// The client's address (set by the HTTP server for every connection).
pub fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn guard(State(g): State<GuardState>, mut req: Request, next: Next) -> Response {
    match check(&g, &mut req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(g: &GuardState, req: &mut Request) -> Result<(), ApiError> {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = match *req.method() {
        Method::HEAD => "GET".to_string(),
        ref m => m.to_string(),
    };
    let Some(rule) = g.rules.get(&(method, path.clone())).cloned() else {
        if g.rules.keys().any(|(_, p)| *p == path) {
            // Another method of a declared path: the router answers 405.
            return Ok(());
        }
        tracing::error!(path, "a route without an access rule was called; refused");
        return Err(ApiError::Internal(format!(
            "the route {path} has no access rule"
        )));
    };
    let auth = &g.app.auth;
    let headers = req.headers();
    if !auth.host_allowed(headers) {
        return Err(ApiError::MisdirectedRequest(
            "this server does not answer to that Host; set [security] public_url or allowed_hosts"
                .into(),
        ));
    }
    let from = peer(req);
    match rule.access {
        Access::Open => return Ok(()),
        Access::Metrics if auth.metrics_open(from) => return Ok(()),
        _ => {}
    }
    let principal = identify(g, headers)?;
    if !principal.role.allows(rule.access) {
        return Err(ApiError::Forbidden(format!(
            "the {} role may not {} {}",
            principal.role,
            req.method(),
            rule.path
        )));
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A WebSocket carries the cookie but no CSRF header: its Origin decides.
    let upgrade = headers.contains_key(header::UPGRADE);
    if (changes || upgrade) && !auth.origin_allowed(headers) {
        return Err(ApiError::Forbidden(
            "cross-site request refused: its Origin is not this server".into(),
        ));
    }
    if changes {
        check_body(rule.body, headers)?;
        if let Some(csrf) = &principal.csrf {
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !secret::same(sent, csrf) {
                return Err(ApiError::Forbidden(format!(
                    "a request from a browser session needs the session's CSRF token in {CSRF_HEADER} (from GET /api/v1/session)"
                )));
            }
        }
    }
    req.extensions_mut().insert(principal);
    Ok(())
}

/// Who the request is: a bearer token, else a session cookie; 401 if
/// neither is valid.
fn identify(g: &GuardState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let store = &g.app.auth.store;
    let internal = |e: crate::auth::store::StoreError| ApiError::Internal(e.to_string());
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("Authorization must be `Bearer TOKEN`".into()))?;
        return store
            .authenticate_token(token)
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the token is not valid (unknown, revoked or expired)".into(),
                )
            });
    }
    if let Some(id) = cookie(headers, COOKIE) {
        if let Some((user, csrf)) = g.app.auth.sessions.get(id) {
            if let Some(mut p) = store.user(&user).map_err(internal)? {
                p.csrf = Some(csrf);
                return Ok(p);
            }
        }
        return Err(ApiError::Unauthorized(
            "the session has ended; log in again".into(),
        ));
    }
    Err(ApiError::Unauthorized(
        "log in (POST /api/v1/login) or send `Authorization: Bearer TOKEN` (weir token create)"
            .into(),
    ))
}

fn check_body(body: Body, headers: &HeaderMap) -> Result<(), ApiError> {
    let ty = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let ok = match body {
        Body::None => true,
        Body::Json => ty.as_deref() == Some("application/json"),
        Body::Rules => ty.as_deref().is_some_and(|t| RULES_TYPES.contains(&t)),
    };
    if ok {
        return Ok(());
    }
    let want = match body {
        Body::Json => "application/json".to_string(),
        _ => RULES_TYPES.join(" or "),
    };
    Err(ApiError::UnsupportedMediaType(format!(
        "this route takes Content-Type {want}, not {}",
        ty.as_deref().unwrap_or("none")
    )))
}
