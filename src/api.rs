//! The HTTP API (JSON): submit, list and delete pipelines, read alerts, health
//! and Prometheus metrics.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | /api/v1/pipelines | body: `.rules` text; 201, or 422 with diagnostics, or 409 on a name clash |
//! | GET | /api/v1/pipelines | the pipelines |
//! | DELETE | /api/v1/pipelines/{name} | stops one (windows emitted, outputs flushed); 204 or 404 |
//! | GET, POST, DELETE | /api/v1/alerts, /api/v1/silences | see [`crate::alerts_api`] |
//! | POST | /api/v1/query | `{"sql", "start", "end", "max_rows", "timeout_ms"}`; rows as JSON, NDJSON, CSV or Arrow IPC by `Accept`; 400 with DataFusion's message on a bad query |
//! | GET | /healthz | `ok` while the process runs (liveness) |
//! | GET | /readyz | 200 `ready`, or 503 naming the sinks whose writes fail (`weir_sink_healthy` 0) and the sources that failed (`weir_source_healthy` 0) |
//! | GET | /metrics | Prometheus text format |

use crate::engine_host::{DeployError, EngineHost};
use crate::query::format::{encode, Format};
use crate::query::{Limits, QueryEngine, QueryError, QueryRequest};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn router(host: Arc<EngineHost>, query: Arc<QueryEngine>) -> Router {
    Router::new()
        .route("/api/v1/query", post(run_query))
        .route("/api/v1/pipelines", get(list_pipelines).post(submit))
        .route("/api/v1/pipelines/{name}", delete(delete_pipeline))
        .merge(crate::alerts_api::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(Extension(query))
        .with_state(host)
}

async fn run_query(
    Extension(engine): Extension<Arc<QueryEngine>>,
    headers: HeaderMap,
    Json(req): Json<QueryRequest>,
) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let result = match req.range() {
        Ok(range) => {
            engine
                .run(&req.sql, range, req.limits(Limits::default()))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => match encode(format, &r.schema, &r.batches, r.truncated) {
            Ok(body) => (
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
                .into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Err(e) => {
            let status = match e {
                QueryError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                QueryError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                QueryError::NotReadOnly(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut r = error(status, e);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            r
        }
    }
}

/// `{"error": "..."}` with `status`.
fn error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": e.to_string() }))).into_response()
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

async fn readyz(State(host): State<Arc<EngineHost>>) -> Response {
    let (sinks, sources) = host.unhealthy();
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

async fn metrics(State(host): State<Arc<EngineHost>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        host.metrics_text(),
    )
        .into_response()
}
