//! The HTTP API (JSON): submit, list and delete pipelines, read alerts, health
//! and Prometheus metrics.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | /api/v1/pipelines | body: `.rules` text; 201, or 422 with diagnostics, or 409 on a name clash |
//! | GET | /api/v1/pipelines | the pipelines |
//! | DELETE | /api/v1/pipelines/{name} | stops one (windows emitted, outputs flushed); 204 or 404 |
//! | GET | /api/v1/alerts?limit=N | recent alerts, newest first |
//! | GET | /healthz | `ok` |
//! | GET | /metrics | Prometheus text format |

use crate::engine_host::{DeployError, EngineHost};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn router(host: Arc<EngineHost>) -> Router {
    Router::new()
        .route("/api/v1/pipelines", get(list_pipelines).post(submit))
        .route("/api/v1/pipelines/{name}", delete(delete_pipeline))
        .route("/api/v1/alerts", get(alerts))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(host)
}

#[derive(Deserialize)]
struct SubmitQuery {
    /// A name for the submitted text in diagnostics.
    name: Option<String>,
}

async fn submit(
    State(host): State<Arc<EngineHost>>,
    Query(q): Query<SubmitQuery>,
    body: String,
) -> Response {
    let file = q.name.unwrap_or_else(|| "submitted.rules".to_string());
    let base = host.data_dir.clone();
    match host.deploy(&file, &body, base, true).await {
        Ok(names) => (StatusCode::CREATED, Json(json!({ "pipelines": names }))).into_response(),
        Err(DeployError::Rules(r)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({ "error": "invalid rules", "diagnostics": r.located(), "text": r.render() }),
            ),
        )
            .into_response(),
        Err(e @ DeployError::Plan { .. }) => {
            let located = match &e {
                DeployError::Plan { text, error, .. } => error
                    .to_diagnostic()
                    .map(|d| vec![d.located(text)])
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "cannot run these rules", "diagnostics": located, "text": e.render() })),
            )
                .into_response()
        }
        Err(DeployError::Conflict(m)) => {
            (StatusCode::CONFLICT, Json(json!({ "error": m }))).into_response()
        }
    }
}

async fn list_pipelines(State(host): State<Arc<EngineHost>>) -> Response {
    Json(json!({ "pipelines": host.pipelines().await })).into_response()
}

async fn delete_pipeline(
    State(host): State<Arc<EngineHost>>,
    Path(name): Path<String>,
) -> Response {
    if host.stop_pipeline(&name).await {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no running pipeline named `{name}`") })),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct AlertQuery {
    limit: Option<usize>,
}

async fn alerts(State(host): State<Arc<EngineHost>>, Query(q): Query<AlertQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Json(json!({ "alerts": host.alerts.recent(limit) })).into_response()
}

async fn metrics(State(host): State<Arc<EngineHost>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        host.metrics_text(),
    )
        .into_response()
}
