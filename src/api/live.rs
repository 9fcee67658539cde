//! What the console reads live: the running sources, a source's events as
//! they are decoded (`GET /api/v1/tail`, a WebSocket), the engine's
//! counters as JSON (`GET /api/v1/stats`), and rules checked as they are
//! typed (`POST /api/v1/check`).
//!
//! The tail filters on the server with a `where` condition compiled by the
//! engine, keeps only events inside the caller's scope, and sends at most
//! [`TAIL_RATE`] events a second per client (sampled evenly when more
//! match), in messages every 100 ms: `{"events": [...], "dropped": N}`.
//! A client that reads slowly skips batches; the engine never waits for
//! it (see `weir_engine::runtime::Deployment::taps`). A filter that does
//! not compile is answered with `{"error": "...", "col": N}`.

use super::{ApiError, AppState};
use crate::auth::sandbox::Sandbox;
use crate::auth::{Principal, Scope};
use crate::engine_host::Tap;
use arrow::array::{Array, AsArray, BooleanArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Events a second one tail client receives at most.
pub const TAIL_RATE: usize = 500;
const TICK: Duration = Duration::from_millis(100);
/// A client that cannot take a message within this long is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /api/v1/sources`: the running sources and their fields.
pub async fn sources(State(app): State<AppState>) -> Response {
    let mut list: Vec<Value> = app
        .host
        .taps()
        .await
        .iter()
        .map(|t| {
            json!({
                "name": t.source,
                "fields": t.schema.fields.iter().map(|f| json!({"name": f.name, "type": f.ty.to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    list.dedup_by(|a, b| a["name"] == b["name"]);
    Json(json!({ "sources": list })).into_response()
}

#[derive(Deserialize)]
pub struct TailQuery {
    source: String,
    #[serde(default)]
    filter: String,
}

/// `GET /api/v1/tail?source=NAME&filter=COND` (WebSocket).
pub async fn tail(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<TailQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let tap = app
        .host
        .taps()
        .await
        .into_iter()
        .find(|t| t.source == q.source)
        .ok_or_else(|| ApiError::NotFound(format!("no running source named `{}`", q.source)))?;
    let filter = compile_filter(&q.filter, &tap, &app);
    Ok(ws
        .max_message_size(64 << 10)
        .on_upgrade(move |socket| run_tail(socket, tap, filter, who.scope)))
}

type Filter = Option<weir_engine::expr::PhysicalExpr>;

/// A condition's first problem as `{"error": "message (hint: ...)", "col"}`,
/// for a caret under the text it was typed in.
fn located_error(d: &weir_dsl::Diagnostic, text: &str) -> Value {
    let l = d.located(text);
    let message = match &l.hint {
        Some(h) => format!("{} (hint: {h})", l.message),
        None => l.message.clone(),
    };
    json!({ "error": message, "col": l.col })
}

/// The filter compiled for the source's schema, or the message and column
/// of the first problem.
fn compile_filter(text: &str, tap: &Tap, app: &AppState) -> Result<Filter, Value> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let located = |d: &weir_dsl::Diagnostic| located_error(d, text);
    let expr = weir_dsl::parse_condition(text)
        .map_err(|d| d.first().map(located).unwrap_or(Value::Null))?;
    let expr = weir_dsl::check_condition(&expr, &tap.schema)
        .map_err(|d| d.first().map(located).unwrap_or(Value::Null))?;
    if let Some(span) = Sandbox::names_a_file(&expr) {
        let l = weir_dsl::Diagnostic::new(
            weir_dsl::ErrorKind::NotAllowed,
            span,
            "a tail filter cannot read files",
        );
        return Err(located(&l));
    }
    let mut tables = weir_engine::functions::TableCache::new(app.host.data_dir.clone());
    let mut cx = weir_engine::expr::CompileContext {
        tables: &mut tables,
    };
    weir_engine::expr::compile(&expr, &tap.schema, &mut cx)
        .map(Some)
        .map_err(|e| json!({ "error": e.to_string(), "col": 1 }))
}

async fn run_tail(mut socket: WebSocket, tap: Tap, filter: Result<Filter, Value>, scope: Scope) {
    let filter = match filter {
        Ok(f) => f,
        Err(error) => {
            let _ = socket.send(Message::Text(error.to_string().into())).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let scope_columns: Vec<(String, Option<usize>)> = scope
        .matchers
        .iter()
        .map(|m| (m.name.clone(), tap.schema.index_of(&m.name)))
        .collect();
    let mut feed = tap.feed.subscribe();
    let mut tick = tokio::time::interval(TICK);
    let per_tick = (TAIL_RATE / 10).max(1);
    let mut budget = per_tick;
    let mut events: Vec<u8> = Vec::new();
    let mut count = 0usize;
    let mut dropped = 0u64;
    loop {
        tokio::select! {
            got = feed.recv() => match got {
                Ok(batch) => {
                    let Some(batch) = admitted(&batch, filter.as_ref(), &scope, &scope_columns) else { continue };
                    let rows = batch.num_rows();
                    let take = rows.min(budget);
                    dropped += (rows - take) as u64;
                    if take == 0 { continue; }
                    let sample = if take < rows { evenly(&batch, take) } else { Some(batch) };
                    if let Some(b) = sample {
                        if append_json(&mut events, &b).is_ok() {
                            count += b.num_rows();
                            budget -= b.num_rows().min(budget);
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => dropped += n,
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                budget = per_tick;
                if count == 0 && dropped == 0 { continue; }
                let mut msg = Vec::with_capacity(events.len() + 32);
                msg.extend_from_slice(b"{\"events\":[");
                msg.extend_from_slice(&events);
                msg.extend_from_slice(format!("],\"dropped\":{dropped}}}").as_bytes());
                events.clear();
                count = 0;
                dropped = 0;
                let text = String::from_utf8_lossy(&msg).into_owned();
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The rows of `batch` the filter and the scope let through.
fn admitted(
    batch: &RecordBatch,
    filter: Option<&weir_engine::expr::PhysicalExpr>,
    scope: &Scope,
    scope_columns: &[(String, Option<usize>)],
) -> Option<RecordBatch> {
    let mut mask: Option<BooleanArray> = match filter {
        Some(f) => Some(f.eval_predicate(batch).ok()?),
        None => None,
    };
    if !scope.is_everything() {
        let texts: Vec<Option<arrow::array::ArrayRef>> = scope_columns
            .iter()
            .map(|(_, i)| {
                i.and_then(|i| arrow::compute::cast(batch.column(i), &DataType::Utf8).ok())
            })
            .collect();
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                let inside = scope.admits(|field| {
                    let k = scope_columns.iter().position(|(n, _)| n == field)?;
                    let col = texts.get(k)?.as_ref()?;
                    let s = col.as_string::<i32>();
                    (!s.is_null(row)).then(|| s.value(row))
                });
                let passed = mask
                    .as_ref()
                    .is_none_or(|m| m.is_valid(row) && m.value(row));
                Some(inside && passed)
            })
            .collect();
        mask = Some(keep);
    }
    match mask {
        None => Some(batch.clone()),
        Some(m) => weir_engine::filter_batch(batch, &m)
            .ok()
            .filter(|b| b.num_rows() > 0),
    }
}

/// `n` rows spread evenly over the batch.
fn evenly(batch: &RecordBatch, n: usize) -> Option<RecordBatch> {
    let rows = batch.num_rows();
    let idx: UInt32Array = (0..n).map(|i| u32::try_from(i * rows / n).ok()).collect();
    take_record_batch(batch, &idx).ok()
}

/// Appends the rows as JSON objects, comma-separated.
fn append_json(out: &mut Vec<u8>, batch: &RecordBatch) -> Result<(), arrow::error::ArrowError> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    w.write(batch)?;
    w.finish()?;
    let lines = w.into_inner();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(line);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRequest {
    stream: String,
    filter: String,
}

/// `POST /api/v1/filter` `{"stream", "filter"}`: a `where` condition of
/// the rules language as a SQL condition over the stream's table
/// (`{"condition": "..."}`), or 400 `{"error", "col"}` at its mistake (see
/// `crate::query::where_sql`).
pub async fn filter_sql(
    State(app): State<AppState>,
    req: Result<Json<FilterRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let table = app.query.table_schema(&req.stream).await?;
    match crate::query::where_sql::translate(&req.filter, &table) {
        Ok(condition) => Ok(Json(json!({ "condition": condition })).into_response()),
        Err(d) => Ok((
            axum::http::StatusCode::BAD_REQUEST,
            Json(d.first().map_or_else(
                || json!({ "error": "not a condition", "col": 1 }),
                |d| located_error(d, &req.filter),
            )),
        )
            .into_response()),
    }
}

#[derive(Deserialize)]
pub struct BacktestQuery {
    from: String,
    to: String,
    /// `SOURCE=STREAM[,SOURCE=STREAM...]`.
    #[serde(default)]
    sources: String,
    name: Option<String>,
}

/// Lines a backtest answer holds at most.
const BACKTEST_LINES: usize = 100_000;

/// `POST /api/v1/backtest?from=T1&to=T2[&sources=S=STREAM,...]`, body: a
/// `.rules` text (sandboxed like a submission): its pipelines over the
/// archived events of the range that the caller's scope admits (see
/// [`crate::backtest`]), as NDJSON window rows and alert transitions;
/// `x-weir-events`, `x-weir-transitions` and `x-weir-truncated` say how it
/// went.
pub async fn backtest(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: super::Peer,
    Query(q): Query<BacktestQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let file = q.name.clone().unwrap_or_else(|| "backtest.rules".into());
    let text = app.rules_text(&body)?;
    let program = crate::rules::compile_sandboxed(&file, &text, Some(&app.sandbox()))
        .map_err(crate::engine_host::DeployError::Rules)?;
    let bad = |e: anyhow::Error| ApiError::BadRequest(format!("{e:#}"));
    let pairs: Vec<String> = q
        .sources
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let req = crate::backtest::Request {
        program: &program,
        base_dir: app.host.data_dir.clone(),
        from_us: crate::commands::backtest_time("from", &q.from).map_err(bad)?,
        to_us: crate::commands::backtest_time("to", &q.to).map_err(bad)?,
        streams: crate::commands::backtest_streams(&pairs).map_err(bad)?,
    };
    let mut lines = Vec::new();
    let mut truncated = false;
    let mut emit = |line: Value| -> anyhow::Result<()> {
        if lines.len() < BACKTEST_LINES {
            lines.push(line.to_string());
        } else {
            truncated = true;
        }
        Ok(())
    };
    let result = crate::backtest::run(&app.query, &who.scope, req, &mut emit).await;
    let summary = app
        .audited(&who, &peer, "backtest", &file, result)
        .map_err(bad)?;
    let mut body = lines.join("\n");
    body.push('\n');
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/x-ndjson".to_string(),
            ),
            (
                axum::http::HeaderName::from_static("x-weir-events"),
                summary.events.to_string(),
            ),
            (
                axum::http::HeaderName::from_static("x-weir-transitions"),
                summary.transitions.to_string(),
            ),
            (
                axum::http::HeaderName::from_static("x-weir-truncated"),
                truncated.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/stats`: the engine's `weir_*` counters and gauges as
/// `{"metrics": [{"name", "labels", "value"}]}`.
pub async fn stats(State(app): State<AppState>) -> Response {
    use prometheus::proto::MetricType;
    let mut out = Vec::new();
    for family in app.host.registry.gather() {
        let name = family.name();
        if !name.starts_with("weir_") {
            continue;
        }
        let kind = family.get_field_type();
        for m in family.get_metric() {
            let value = match kind {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => continue,
            };
            let labels: serde_json::Map<String, Value> = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), json!(l.value())))
                .collect();
            out.push(json!({ "name": name, "labels": labels, "value": value }));
        }
    }
    Json(json!({ "metrics": out })).into_response()
}

/// `POST /api/v1/check`: a `.rules` text checked as a submission would be
/// (the sandbox included), without running it:
/// `{"valid": bool, "diagnostics": [...]}`.
pub async fn check(
    State(app): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let text = app.rules_text(&body)?;
    let located = match crate::rules::compile_sandboxed("check", &text, Some(&app.sandbox())) {
        Ok(_) => Vec::new(),
        Err(e) => e.located(),
    };
    Ok(Json(json!({ "valid": located.is_empty(), "diagnostics": located })).into_response())
}
