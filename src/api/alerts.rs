//! The alert part of the HTTP API.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /api/v1/alerts?limit=N | `{"alerts": open alerts (pending, firing), "history": newest N transitions and notification outcomes}` |
//! | GET | /api/v1/silences | every silence not expired for over a day, with `status` |
//! | POST | /api/v1/silences | `{"matchers": ["service=checkout"], "duration": "2h", "starts_at"?, "created_by"?, "comment"?}`; 201 with the silence, 400 on a bad matcher, 422 past a limit (matchers, sizes, duration, count; see `weir_engine::alerting::silence`) |
//! | DELETE | /api/v1/silences/{id} | expires it now; 204 or 404 |

use super::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use weir_engine::alerting::{rfc3339, Matcher, Silence};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/silences", get(list_silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
}

#[derive(Deserialize)]
struct AlertQuery {
    limit: Option<usize>,
}

async fn alerts(State(app): State<AppState>, Query(q): Query<AlertQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Json(json!({
        "alerts": app.host.alerts.open(),
        "history": app.host.alerts.history(limit),
    }))
    .into_response()
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

async fn list_silences(State(app): State<AppState>) -> Response {
    let now = app.host.alerts.now_us();
    let list: Vec<_> = app
        .host
        .alerts
        .silences()
        .iter()
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
    let s = host
        .alerts
        .add_silence(matchers, starts, duration, req.created_by, req.comment)?;
    Ok((
        StatusCode::CREATED,
        Json(silence_json(&s, host.alerts.now_us())),
    )
        .into_response())
}

async fn expire_silence(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.host.alerts.expire_silence(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no silence `{id}`")))
    }
}
