//! `POST /api/v1/search`: a log search in one call, over one stream of the
//! archive — a time range, a `where` condition of the rules language and/or
//! words the message must contain; the newest matching events first, a page
//! at a time (a cursor for the next page), how many matched, their counts by
//! severity over time (a histogram), and the SQL it ran (with the matching
//! condition alone, `sql.where`, for follow-up queries). Scopes, the query
//! limits and read-only SQL apply as for `POST /api/v1/query`.

use super::{ip, ApiError, AppState, Peer};
use crate::auth::Principal;
use crate::query::{Limits, QueryRequest, QueryResult};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use weir_dsl::sql::{quote_ident as ident, quote_str as literal};

/// Events a page holds unless the request says (at most [`MAX_PAGE`]).
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Histogram bars aimed at over the range.
const BARS: i64 = 120;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    stream: String,
    /// RFC 3339 bounds (as in `/api/v1/query`).
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    /// A `where` condition of the rules language.
    #[serde(default)]
    filter: Option<String>,
    /// Words the message contains, all of them, in any case.
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// `next_cursor` of the page before.
    #[serde(default)]
    cursor: Option<String>,
}

/// Where a page ended: the last event's time (µs), partition and offset.
struct Cursor(i64, i64, i64);

impl Cursor {
    fn parse(text: &str) -> Result<Cursor, ApiError> {
        let bad = || ApiError::BadRequest(format!("cursor `{text}` is not one this API gave"));
        let mut parts = text.split('.').map(|p| p.parse::<i64>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(t)), Some(Ok(p)), Some(Ok(o)), None) => Ok(Cursor(t, p, o)),
            _ => Err(bad()),
        }
    }

    fn of(row: &Value) -> Option<String> {
        let t = chrono::DateTime::parse_from_rfc3339(row["timestamp"].as_str()?).ok()?;
        Some(format!(
            "{}.{}.{}",
            t.timestamp_micros(),
            row["_partition"].as_i64()?,
            row["_offset"].as_i64()?
        ))
    }

    /// Events after it in newest-first order. The time is compared as a
    /// timestamp (not cast to a number), with the bound also on its own, so
    /// files and row groups newer than the page are skipped by statistics.
    fn condition(&self) -> String {
        let Cursor(t, p, o) = self;
        let at = format!(
            "TIMESTAMP '{}'",
            chrono::DateTime::from_timestamp_micros(*t)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .unwrap_or_default()
        );
        let ts = "\"timestamp\"";
        format!(
            "{ts} <= {at} AND ({ts} < {at} OR (\"_partition\" < {p} OR (\"_partition\" = {p} AND \"_offset\" < {o})))"
        )
    }
}

/// The histogram's bar width: a round number of seconds giving about
/// [`BARS`] bars over the range (a day when it is open).
fn bucket_seconds(start_us: Option<i64>, end_us: Option<i64>) -> i64 {
    let span = match (start_us, end_us) {
        (Some(s), Some(e)) if e > s => (e - s) / 1_000_000,
        _ => 86_400,
    };
    [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 21_600, 86_400]
        .into_iter()
        .find(|b| span / b <= BARS)
        .unwrap_or(86_400)
}

/// A result's rows as JSON objects.
fn rows(r: &QueryResult) -> Result<Vec<Value>, ApiError> {
    let bytes = crate::query::format::encode(
        crate::query::format::Format::Json,
        &r.schema,
        &r.batches,
        r.truncated,
    )
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(v["rows"].as_array().cloned().unwrap_or_default())
}

pub async fn search(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    req: Result<Json<SearchRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let table = app.query.table_schema(&req.stream).await?;
    let mut conditions = Vec::new();
    if let Some(filter) = req.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        match crate::query::where_sql::translate(filter, &table) {
            Ok(c) => conditions.push(format!("({c})")),
            Err(d) => {
                let at = d.first().map(|d| d.located(filter));
                return Ok((
                    axum::http::StatusCode::BAD_REQUEST,
                    Json(json!({
                        "error": at.as_ref().map_or("not a condition".to_string(), |l| l.message.clone()),
                        "col": at.as_ref().map_or(1, |l| l.col),
                    })),
                )
                    .into_response());
            }
        }
    }
    if !req.terms.is_empty() && table.field_with_name("message").is_err() {
        return Err(ApiError::BadRequest(format!(
            "stream `{}` has no `message` to search words in",
            req.stream
        )));
    }
    for term in req.terms.iter().filter(|t| !t.is_empty()) {
        conditions.push(format!(
            "strpos(lower(CAST(\"message\" AS VARCHAR)), {}) > 0",
            literal(&term.to_lowercase())
        ));
    }
    let matched = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let page = req.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let mut page_conditions = conditions.clone();
    if let Some(c) = req.cursor.as_deref() {
        page_conditions.push(Cursor::parse(c)?.condition());
    }
    let page_where = if page_conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", page_conditions.join(" AND "))
    };
    let from = ident(&req.stream);
    let events_sql = format!(
        "SELECT * FROM {from}{page_where} ORDER BY \"timestamp\" DESC, \"_partition\" DESC, \"_offset\" DESC LIMIT {}",
        page + 1
    );
    let q = QueryRequest {
        sql: String::new(),
        start: req.start.clone(),
        end: req.end.clone(),
        max_rows: None,
        timeout_ms: None,
        as_of: None,
    };
    let range = q.range()?;
    let bucket = bucket_seconds(range.start_us, range.end_us);
    let limits = q.limits(Limits::default());
    let run = |sql: String| {
        let app = app.clone();
        let scope = who.scope.clone();
        async move { app.query.run(&sql, range, limits, &scope).await }
    };
    let mut events = rows(&run(events_sql.clone()).await?)?;
    let next_cursor = if events.len() > page {
        events.truncate(page);
        events.last().and_then(Cursor::of)
    } else {
        None
    };
    // The totals belong to the search, not the page: on the first page only.
    let condition = conditions.join(" AND ");
    let (mut total, mut histogram, mut sql) = (
        Value::Null,
        Value::Null,
        json!({ "events": events_sql, "where": condition }),
    );
    if req.cursor.is_none() {
        let total_sql = format!("SELECT count(*) AS n FROM {from}{matched}");
        let histogram_sql = format!(
            "SELECT date_bin(INTERVAL '{bucket} seconds', \"timestamp\", TIMESTAMP '1970-01-01T00:00:00Z') AS t, \
             CAST(\"severity\" AS VARCHAR) AS severity, count(*) AS n FROM {from}{matched} GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let (t, h) = tokio::join!(run(total_sql.clone()), run(histogram_sql.clone()));
        total = rows(&t?)?.first().map_or(Value::Null, |r| r["n"].clone());
        histogram = json!({ "bucket_seconds": bucket, "rows": rows(&h?)? });
        sql = json!({
            "events": events_sql,
            "total": total_sql,
            "histogram": histogram_sql,
            "where": condition,
        });
    }
    app.auth.audit(
        &who.name,
        ip(&peer),
        "search",
        &req.stream,
        "ok",
        json!({ "filter": req.filter, "terms": req.terms, "events": events.len() }),
    );
    Ok(Json(json!({
        "events": events,
        "next_cursor": next_cursor,
        "total": total,
        "histogram": histogram,
        "sql": sql,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let row = json!({"timestamp": "2026-03-01T00:00:01.5Z", "_partition": 2, "_offset": 41});
        let c = Cursor::of(&row).unwrap();
        assert_eq!(c, "1772323201500000.2.41");
        let parsed = Cursor::parse(&c).unwrap();
        assert_eq!(
            (parsed.0, parsed.1, parsed.2),
            (1_772_323_201_500_000, 2, 41)
        );
        assert_eq!(
            parsed.condition(),
            "\"timestamp\" <= TIMESTAMP '2026-03-01T00:00:01.500000Z' AND (\"timestamp\" < TIMESTAMP \
             '2026-03-01T00:00:01.500000Z' OR (\"_partition\" < 2 OR (\"_partition\" = 2 AND \"_offset\" < 41)))"
        );
        for bad in ["", "1.2", "a.b.c", "1.2.3.4"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(bucket_seconds(None, None), 1800);
        assert_eq!(bucket_seconds(Some(0), Some(3_600_000_000)), 30);
    }
}
