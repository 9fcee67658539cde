//! The alert part of the HTTP API.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /api/v1/alerts?limit=N | `{"alerts": open alerts (pending, firing), "history": newest N transitions and notification outcomes}` |
//! | GET | /api/v1/silences | every silence not expired for over a day, with `status` |
//! | POST | /api/v1/silences | `{"matchers": ["service=checkout"], "duration": "2h", "starts_at"?, "created_by"?, "comment"?}`; 201 with the silence, 400 on a bad matcher, 422 past a limit (matchers, sizes, duration, count; see `weir_engine::alerting::silence`) |
//! | DELETE | /api/v1/silences/{id} | expires it now; 204 or 404 |
//!
//! A scoped caller sees only alerts whose labels its scope admits, of their
//! evidence only the sample events inside its scope, and silences that
//! cannot reach outside it; the silences it creates carry
//! its scope's matchers.

use super::guard::{Body, Routes};
use super::{ip, ApiError, AppState, Peer};
use crate::auth::{Access, Principal, Scope};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use weir_engine::alerting::{rfc3339, Alert, Matcher, Silence};

pub fn routes() -> Routes {
    use Access::*;
    Routes::new()
        .add(Method::GET, "/api/v1/alerts", Read, Body::None, get(alerts))
        .add(
            Method::GET,
            "/api/v1/silences",
            Read,
            Body::None,
            get(list_silences),
        )
        .add(
            Method::POST,
            "/api/v1/silences",
            Write,
            Body::Json,
            post(add_silence),
        )
        .add(
            Method::DELETE,
            "/api/v1/silences/{id}",
            Write,
            Body::None,
            delete(expire_silence),
        )
}

/// Whether the scope admits the alert's labels.
fn sees_alert(scope: &Scope, a: &Alert) -> bool {
    scope.admits(|f| a.labels.get(f).map(String::as_str))
}

/// Keeps only the sample events inside the scope: an alert grouped by a
/// field other than the scope's may hold events of services the caller may
/// not see.
fn scope_evidence(scope: &Scope, a: &mut Alert) {
    if let Some(e) = &mut a.evidence {
        std::sync::Arc::make_mut(e)
            .samples
            .retain(|s| scope.admits(|f| s.get(f).and_then(serde_json::Value::as_str)));
    }
}

/// Whether a silence can only reach alerts inside the scope.
fn sees_silence(scope: &Scope, s: &Silence) -> bool {
    scope.contains(&Scope {
        matchers: s.matchers.clone(),
    })
}

#[derive(Deserialize)]
struct AlertQuery {
    limit: Option<usize>,
}

async fn alerts(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AlertQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let mut open = app.host.alerts.open();
    open.retain(|a| sees_alert(&who.scope, a));
    let history: Vec<_> = if who.scope.is_everything() {
        app.host.alerts.history(limit)
    } else {
        let mut all = app.host.alerts.history(usize::MAX);
        all.retain(|h| sees_alert(&who.scope, &h.alert));
        all.truncate(limit);
        for h in &mut all {
            scope_evidence(&who.scope, std::sync::Arc::make_mut(&mut h.alert));
        }
        for a in &mut open {
            scope_evidence(&who.scope, a);
        }
        all
    };
    Json(json!({ "alerts": open, "history": history })).into_response()
}

/// A silence as the API shows it: times as RFC 3339 and its status now.
pub fn silence_json(s: &Silence, now_us: i64) -> serde_json::Value {
    json!({
        "id": s.id,
        "matchers": s.matchers,
        "starts_at": rfc3339(s.starts_at_us),
        "ends_at": rfc3339(s.ends_at_us),
        "created_by": s.created_by,
        "comment": s.comment,
        "status": s.status(now_us),
    })
}

async fn list_silences(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let now = app.host.alerts.now_us();
    let list: Vec<_> = app
        .host
        .alerts
        .silences()
        .iter()
        .filter(|s| sees_silence(&who.scope, s))
        .map(|s| silence_json(s, now))
        .collect();
    Json(json!({ "silences": list })).into_response()
}

/// A matcher as text (`service=checkout`) or as `{"name","value","op"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MatcherIn {
    Text(String),
    Full(Matcher),
}

#[derive(Deserialize)]
struct NewSilence {
    matchers: Vec<MatcherIn>,
    /// `2h`, `30m`...
    duration: String,
    starts_at: Option<String>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

async fn add_silence(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    req: Result<Json<NewSilence>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let mut matchers = Vec::with_capacity(req.matchers.len());
    for m in req.matchers {
        matchers.push(match m {
            MatcherIn::Text(t) => Matcher::parse(&t).map_err(ApiError::BadRequest)?,
            MatcherIn::Full(m) => m,
        });
    }
    // A scoped caller silences only inside its scope.
    for m in &who.scope.matchers {
        if !matchers.contains(m) {
            matchers.push(m.clone());
        }
    }
    let duration = humantime::parse_duration(&req.duration).map_err(|e| {
        ApiError::BadRequest(format!(
            "duration `{}`: {e} (write e.g. 2h or 30m)",
            req.duration
        ))
    })?;
    let starts = req
        .starts_at
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp_micros())
                .map_err(|e| ApiError::BadRequest(format!("starts_at: {e} (write RFC 3339)")))
        })
        .transpose()?;
    let host = &app.host;
    let created_by = if req.created_by.is_empty() {
        who.name.clone()
    } else {
        req.created_by
    };
    let result = host
        .alerts
        .add_silence(matchers, starts, duration, created_by, req.comment);
    let (target, outcome) = match &result {
        Ok(s) => (s.id.clone(), "ok"),
        Err(_) => (String::new(), "failed"),
    };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "silence.add",
        &target,
        outcome,
        json!(null),
    );
    let s = result?;
    Ok((
        StatusCode::CREATED,
        Json(silence_json(&s, host.alerts.now_us())),
    )
        .into_response())
}

async fn expire_silence(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let visible = app
        .host
        .alerts
        .silences()
        .iter()
        .any(|s| s.id == id && sees_silence(&who.scope, s));
    let expired = visible && app.host.alerts.expire_silence(&id);
    let outcome = if expired { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "silence.expire",
        &id,
        outcome,
        json!(null),
    );
    if expired {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no silence `{id}`")))
    }
}
