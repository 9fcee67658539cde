//! The HTTP API (JSON): submit, list and delete pipelines, read alerts, health
//! and Prometheus metrics.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | /api/v1/pipelines | body: `.rules` text; 201, or 422 with diagnostics, or 409 on a name clash |
//! | GET | /api/v1/pipelines | the pipelines |
//! | DELETE | /api/v1/pipelines/{name} | stops one (windows emitted, outputs flushed); 204 or 404 |
//! | GET, POST, DELETE | /api/v1/alerts, /api/v1/silences | see [`alerts`] |
//! | POST | /api/v1/query | `{"sql", "start", "end", "max_rows", "timeout_ms"}`; rows as JSON, NDJSON, CSV or Arrow IPC by `Accept`; 400 with DataFusion's message on a bad query |
//! | GET | /healthz | `ok` while the process runs (liveness) |
//! | GET | /readyz | 200 `ready`, or 503 naming the sinks whose writes fail (`weir_sink_healthy` 0) and the sources that failed (`weir_source_healthy` 0) |
//! | GET | /metrics | Prometheus text format |
//!
//! Every error is JSON, `{"error": "..."}` with its status ([`ApiError`]).

mod alerts;
mod error;

pub use error::ApiError;

use crate::engine_host::EngineHost;
use crate::query::format::{encode, Format};
use crate::query::{Limits, QueryEngine, QueryRequest};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub host: Arc<EngineHost>,
    pub query: Arc<QueryEngine>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/query", post(run_query))
        .route("/api/v1/pipelines", get(list_pipelines).post(submit))
        .route("/api/v1/pipelines/{name}", delete(delete_pipeline))
        .merge(alerts::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn run_query(
    State(app): State<AppState>,
    headers: HeaderMap,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let range = req.range()?;
    let r = app
        .query
        .run(&req.sql, range, req.limits(Limits::default()))
        .await?;
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
}

async fn submit(
    State(app): State<AppState>,
    Query(q): Query<SubmitQuery>,
    body: String,
) -> Result<Response, ApiError> {
    let file = q.name.unwrap_or_else(|| "submitted.rules".to_string());
    let base = app.host.data_dir.clone();
    let names = app.host.deploy(&file, &body, base, true).await?;
    Ok((StatusCode::CREATED, Json(json!({ "pipelines": names }))).into_response())
}

async fn list_pipelines(State(app): State<AppState>) -> Response {
    Json(json!({ "pipelines": app.host.pipelines().await })).into_response()
}

async fn delete_pipeline(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.host.stop_pipeline(&name).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no running pipeline named `{name}`"
        )))
    }
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
