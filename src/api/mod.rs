//! The HTTP API (JSON). Every route is declared once in [`routes`] with the
//! access it needs; [`guard`] enforces it (see docs/security.md).
//!
//! | method | path | access | |
//! |---|---|---|---|
//! | POST | /api/v1/login | open | `{"user", "password"}`; sets the session cookie, returns the CSRF token |
//! | POST | /api/v1/logout | any | ends the session |
//! | GET | /api/v1/session | any | who you are, your role and scope, the CSRF token |
//! | POST | /api/v1/pipelines | write | body: `.rules` text (`Content-Type: application/x-weir-rules`); 201, or 422 with diagnostics, or 409 on a name clash |
//! | GET | /api/v1/pipelines | read | the pipelines, with their windows' watermark, partitions and last state checkpoint |
//! | DELETE | /api/v1/pipelines/{name} | write | stops one (windows emitted, outputs flushed); 204 or 404 |
//! | GET, POST, DELETE | /api/v1/alerts, /api/v1/silences | read / write | see [`alerts`]; filtered by scope |
//! | POST | /api/v1/query | read | `{"sql", "start", "end", "max_rows", "timeout_ms"}`; rows as JSON, NDJSON, CSV or Arrow IPC by `Accept`; only rows in the caller's scope |
//! | GET, POST, DELETE, PUT | /api/v1/users…, /api/v1/tokens… | admin | see [`account`] |
//! | GET | /api/v1/routes | read | this table, as the server enforces it |
//! | POST | /api/v1/backtest?from=&to= | read | body: `.rules` text; its pipelines over archived events in the caller's scope, NDJSON (see [`crate::backtest`]) |
//! | GET | /api/v1/sources, /api/v1/tail, /api/v1/stats; POST /api/v1/check, /api/v1/filter | read | the console's live views, see [`live`] |
//! | POST | /api/v1/search | read | `{"stream", "start", "end", "filter", "terms", "limit", "cursor"}`: newest matching events first, a cursor, the total, a histogram by severity and the SQL; see [`search`] |
//! | GET | /, /console/… | open | the web console (it logs in through the API) |
//! | GET | /healthz | open | `ok` while the process runs (liveness) |
//! | GET | /readyz | open | 200 `ready`, or 503 naming the sinks whose writes fail and the sources that failed |
//! | GET | /metrics | metrics | Prometheus text format |
//!
//! Every error is JSON, `{"error": "..."}` with its status ([`ApiError`]).

mod account;
mod alerts;
mod console;
mod error;
pub mod guard;
mod live;
mod search;

pub use error::ApiError;

use crate::auth::sandbox::Sandbox;
use crate::auth::{Access, Auth, Principal};
use crate::engine_host::EngineHost;
use crate::query::format::{encode, Format};
use crate::query::{Limits, QueryEngine, QueryRequest};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use guard::{Body, Routes};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub host: Arc<EngineHost>,
    pub query: Arc<QueryEngine>,
    pub auth: Arc<Auth>,
    /// Who submitted each pipeline running from the API.
    pub owners: Arc<Mutex<HashMap<String, String>>>,
}

impl AppState {
    /// A `.rules` body as text: 413 over `[security] max_rules_bytes`, 400
    /// when it is not UTF-8.
    pub fn rules_text(&self, body: &[u8]) -> Result<String, ApiError> {
        let limit = self.auth.settings.max_rules_bytes;
        if body.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the rules are {} bytes, more than [security] max_rules_bytes ({limit})",
                body.len()
            )));
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("the rules are not UTF-8 text".into()))
    }

    /// The sandbox of rules submitted over the API; their relative paths
    /// are relative to the data folder.
    pub fn sandbox(&self) -> Sandbox {
        let brokers = self.host.kafka.brokers.clone().unwrap_or_default();
        let data = &self.host.data_dir;
        Sandbox::new(&self.auth.settings, data, data, &brokers)
    }

    /// Records `action` on `target` by `who` in the audit log, with the
    /// outcome of `result`, and hands `result` back.
    pub fn audited<T, E>(
        &self,
        who: &Principal,
        peer: &Peer,
        action: &str,
        target: &str,
        result: Result<T, E>,
    ) -> Result<T, E> {
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.auth.audit(
            &who.name,
            ip(peer),
            action,
            target,
            outcome,
            serde_json::Value::Null,
        );
        result
    }
}

/// The client's address, when the server recorded it (an extractor that
/// never fails).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

pub fn ip(peer: &Peer) -> Option<std::net::IpAddr> {
    peer.0.map(|a| a.ip())
}

/// Every route with the access it needs.
pub fn routes() -> Routes {
    use Access::*;
    Routes::new()
        .add(
            Method::POST,
            "/api/v1/query",
            Read,
            Body::Json,
            post(run_query),
        )
        .add(
            Method::GET,
            "/api/v1/pipelines",
            Read,
            Body::None,
            get(list_pipelines),
        )
        .add(
            Method::POST,
            "/api/v1/pipelines",
            Write,
            Body::Rules,
            post(submit),
        )
        .add(
            Method::DELETE,
            "/api/v1/pipelines/{name}",
            Write,
            Body::None,
            delete(delete_pipeline),
        )
        .add(
            Method::GET,
            "/api/v1/pipelines/{name}/shadow",
            Read,
            Body::None,
            get(shadow_report),
        )
        .add(
            Method::DELETE,
            "/api/v1/pipelines/{name}/shadow",
            Write,
            Body::None,
            delete(discard_shadow),
        )
        .add(
            Method::POST,
            "/api/v1/pipelines/{name}/shadow/promote",
            Write,
            Body::None,
            post(promote_shadow),
        )
        .add(
            Method::GET,
            "/api/v1/routes",
            Read,
            Body::None,
            get(list_routes),
        )
        .add(
            Method::GET,
            "/api/v1/sources",
            Read,
            Body::None,
            get(live::sources),
        )
        .add(
            Method::GET,
            "/api/v1/tail",
            Read,
            Body::None,
            get(live::tail),
        )
        .add(
            Method::GET,
            "/api/v1/stats",
            Read,
            Body::None,
            get(live::stats),
        )
        .add(
            Method::POST,
            "/api/v1/check",
            Read,
            Body::Rules,
            post(live::check),
        )
        .add(
            Method::POST,
            "/api/v1/filter",
            Read,
            Body::Json,
            post(live::filter_sql),
        )
        .add(
            Method::POST,
            "/api/v1/search",
            Read,
            Body::Json,
            post(search::search),
        )
        .add(
            Method::POST,
            "/api/v1/backtest",
            Read,
            Body::Rules,
            post(live::backtest),
        )
        .add(Method::GET, "/", Open, Body::None, get(console::index))
        .add(
            Method::GET,
            "/console/app.js",
            Open,
            Body::None,
            get(console::app_js),
        )
        .add(
            Method::GET,
            "/console/app.css",
            Open,
            Body::None,
            get(console::app_css),
        )
        .merge(alerts::routes())
        .merge(account::routes())
        .add(
            Method::GET,
            "/healthz",
            Open,
            Body::None,
            get(|| async { "ok\n" }),
        )
        .add(Method::GET, "/readyz", Open, Body::None, get(readyz))
        .add(Method::GET, "/metrics", Metrics, Body::None, get(metrics))
}

pub fn router(state: AppState) -> Router {
    routes().into_router(state)
}

async fn list_routes() -> Response {
    Json(json!({ "routes": routes().rules() })).into_response()
}

async fn run_query(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    headers: HeaderMap,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let range = req.range()?;
    let result = app
        .query
        .run(&req.sql, range, req.limits(Limits::default()), &who.scope)
        .await;
    let (outcome, rows) = match &result {
        Ok(r) => ("ok", json!(r.rows)),
        Err(_) => ("failed", json!(null)),
    };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "query",
        "",
        outcome,
        json!({ "sql": req.sql, "rows": rows }),
    );
    let r = result?;
    let body = encode(format, &r.schema, &r.batches, r.truncated)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::HeaderName::from_static("x-weir-rows"),
                r.rows.to_string(),
            ),
            (
                header::HeaderName::from_static("x-weir-truncated"),
                r.truncated.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
struct SubmitQuery {
    /// A name for the submitted text in diagnostics.
    name: Option<String>,
    /// Run the text's pipeline as a shadow of this live one.
    shadow_of: Option<String>,
}

async fn submit(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Query(q): Query<SubmitQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let file = q.name.unwrap_or_else(|| "submitted.rules".to_string());
    let settings = &app.auth.settings;
    let refuse = |e: ApiError| {
        app.auth.audit(
            &who.name,
            ip(&peer),
            "pipeline.submit",
            &file,
            "denied",
            json!(null),
        );
        e
    };
    let text = app.rules_text(&body).map_err(refuse)?;
    if !who.scope.is_everything() {
        return Err(refuse(ApiError::Forbidden(format!(
            "a pipeline reads every event of its source, and your scope is {}; ask an editor without a scope to submit it",
            who.scope
        ))));
    }
    let running = {
        let names: Vec<String> = app
            .host
            .pipelines()
            .await
            .into_iter()
            .map(|p| p.name)
            .collect();
        let mut owners = app.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|name, _| names.contains(name));
        owners.values().filter(|o| **o == who.name).count()
    };
    if running >= settings.max_pipelines_per_user {
        return Err(refuse(ApiError::over_limit(format!(
            "{} has {running} pipelines running from the API, the most [security] max_pipelines_per_user allows",
            who.name
        ))));
    }
    let base = app.host.data_dir.clone();
    let sandbox = app.sandbox();
    if let Some(live) = q.shadow_of {
        let result = app
            .host
            .deploy_shadow(&live, &file, &text, base, Some(&sandbox))
            .await;
        app.auth.audit(
            &who.name,
            ip(&peer),
            "pipeline.shadow",
            &live,
            if result.is_ok() { "ok" } else { "failed" },
            json!({ "file": file }),
        );
        result?;
        return Ok((
            StatusCode::CREATED,
            Json(
                json!({ "shadow_of": live, "report": format!("/api/v1/pipelines/{live}/shadow") }),
            ),
        )
            .into_response());
    }
    let result = app
        .host
        .deploy(&file, &text, base, true, Some(&sandbox))
        .await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "pipeline.submit",
        &file,
        outcome,
        json!({ "pipelines": result.as_ref().ok() }),
    );
    let names = result?;
    {
        let mut owners = app.owners.lock().unwrap_or_else(|p| p.into_inner());
        for n in &names {
            owners.insert(n.clone(), who.name.clone());
        }
    }
    Ok((StatusCode::CREATED, Json(json!({ "pipelines": names }))).into_response())
}

async fn list_pipelines(State(app): State<AppState>) -> Response {
    Json(json!({ "pipelines": app.host.pipelines().await })).into_response()
}

async fn delete_pipeline(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let stopped = app.host.stop_pipeline(&name).await;
    let outcome = if stopped { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "pipeline.delete",
        &name,
        outcome,
        json!(null),
    );
    if stopped {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no running pipeline named `{name}`"
        )))
    }
}

/// A shadow reads every event of its source and its report holds alerts of
/// every key, so a scoped caller may not see, change or promote it.
fn unscoped(who: &Principal, what: &str) -> Result<(), ApiError> {
    if who.scope.is_everything() {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "a pipeline reads every event of its source, and your scope is {}; ask a user without a scope to {what}",
        who.scope
    )))
}

async fn shadow_report(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    unscoped(&who, "read a shadow's report")?;
    match app.host.shadow_report(&name).await {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError::NotFound(format!("`{name}` has no shadow"))),
    }
}

async fn discard_shadow(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    unscoped(&who, "discard a shadow")?;
    let done = app.host.discard_shadow(&name).await;
    let outcome = if done { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "pipeline.shadow.discard",
        &name,
        outcome,
        json!(null),
    );
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("`{name}` has no shadow")))
    }
}

async fn promote_shadow(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    unscoped(&who, "promote a shadow")?;
    let base = app.host.data_dir.clone();
    let sandbox = app.sandbox();
    let result = app.host.promote_shadow(&name, base, Some(&sandbox)).await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "pipeline.shadow.promote",
        &name,
        outcome,
        json!(null),
    );
    let names = result?;
    {
        let mut owners = app.owners.lock().unwrap_or_else(|p| p.into_inner());
        for n in &names {
            owners.insert(n.clone(), who.name.clone());
        }
    }
    Ok(Json(json!({ "pipelines": names })).into_response())
}

async fn readyz(State(app): State<AppState>) -> Response {
    let (sinks, sources) = app.host.unhealthy();
    if sinks.is_empty() && sources.is_empty() {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "failing_sinks": sinks, "failing_sources": sources })),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.host.metrics_text(),
    )
        .into_response()
}
