//! What an alert carries to show why it fired: sample events of its key and
//! window (kept by the window, see `ops::samples`), a SQL query over the
//! archive that reproduces the window — the pipeline's conditions, the
//! window's bounds and key, its aggregates — and, when the console has a
//! public address, a link to that search in the console.

use super::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_dsl::plan::EvidencePlan;
use weir_dsl::sql::{quote_ident, quote_str};
use weir_dsl::types::{Type, TIMESTAMP};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Up to the rule's `evidence N` events of the key and window.
    #[serde(default)]
    pub samples: Vec<Map<String, Value>>,
    /// Reproduces the window over the archive (`POST /api/v1/query`).
    pub sql: String,
    /// The archived stream the query reads.
    pub stream: String,
    /// Why the query can differ from the window (empty when it cannot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
    /// The same search in the console, when `[alerting] console_url` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Evidence {
    /// The evidence of one window row: its samples (the `_evidence` field,
    /// a JSON array, of which the first `samples` are kept) and its query.
    pub fn of_window(
        plan: &EvidencePlan,
        start_us: i64,
        end_us: i64,
        row: &Map<String, Value>,
        samples: Option<&str>,
    ) -> Evidence {
        let samples = samples
            .and_then(|s| serde_json::from_str::<Vec<Map<String, Value>>>(s).ok())
            .map(|mut v| {
                v.truncate(plan.samples);
                // In event time order, as a reader expects a log.
                v.sort_by(|a, b| {
                    let t = |e: &Map<String, Value>| e.get(TIMESTAMP).map(Value::to_string);
                    t(a).cmp(&t(b))
                });
                v
            })
            .unwrap_or_default();
        Evidence {
            samples,
            sql: sql(plan, start_us, end_us, row),
            stream: plan.stream.clone(),
            caveats: plan.caveats.clone(),
            url: None,
        }
    }

    /// Sets the console link from its public address (`https://weir.example`).
    pub fn link(&mut self, console: &str, start: &str, end: &str) {
        let q = [
            ("stream", self.stream.as_str()),
            ("range", "abs"),
            ("start", start),
            ("end", end),
            ("sql", self.sql.as_str()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        self.url = Some(format!("{}/#/search?{q}", console.trim_end_matches('/')));
    }
}

/// The query reproducing one window: `SELECT <aggregates> FROM <stream>
/// WHERE <window bounds> AND <pipeline conditions> AND <key>`.
pub fn sql(plan: &EvidencePlan, start_us: i64, end_us: i64, row: &Map<String, Value>) -> String {
    let ts = quote_ident(TIMESTAMP);
    let mut conds = vec![
        format!("{ts} >= TIMESTAMP '{}'", rfc3339(start_us)),
        format!("{ts} < TIMESTAMP '{}'", rfc3339(end_us)),
    ];
    conds.extend(plan.conditions.iter().cloned());
    for (name, ty) in &plan.group {
        conds.push(equals(name, *ty, row.get(name).unwrap_or(&Value::Null)));
    }
    format!(
        "SELECT {} FROM {} WHERE {}",
        plan.select.join(", "),
        quote_ident(&plan.stream),
        conds.join(" AND ")
    )
}

/// `field = value` for a group-by value of the window's row.
fn equals(name: &str, ty: Type, v: &Value) -> String {
    let col = quote_ident(name);
    match (ty, v) {
        (_, Value::Null) => format!("{col} IS NULL"),
        (Type::Severity, Value::String(s)) => format!(
            "upper(CAST({col} AS VARCHAR)) = {}",
            quote_str(&s.to_uppercase())
        ),
        (Type::Timestamp, Value::String(s)) => format!("{col} = TIMESTAMP {}", quote_str(s)),
        (_, Value::String(s)) => format!("{col} = {}", quote_str(s)),
        (_, Value::Bool(b)) => format!("{col} = {}", if *b { "TRUE" } else { "FALSE" }),
        (_, Value::Number(n)) => format!("{col} = {n}"),
        (_, other) => format!("CAST({col} AS VARCHAR) = {}", quote_str(&other.to_string())),
    }
}

/// Percent-encodes a URL query value (RFC 3986 unreserved kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> EvidencePlan {
        EvidencePlan {
            samples: 2,
            stream: "shop".into(),
            conditions: vec!["(\"status\" >= 500)".into()],
            group: vec![
                ("service".into(), Type::String),
                ("code".into(), Type::Int),
                ("severity".into(), Type::Severity),
            ],
            select: vec!["count(*) AS \"errors\"".into()],
            caveats: Vec::new(),
        }
    }

    #[test]
    fn the_query_bounds_the_window_and_its_key() {
        let row = json!({"service": "check'out", "code": 502, "severity": "error"});
        let Value::Object(row) = row else {
            unreachable!()
        };
        assert_eq!(
            sql(&plan(), 0, 30_000_000, &row),
            "SELECT count(*) AS \"errors\" FROM \"shop\" WHERE \"timestamp\" >= TIMESTAMP '1970-01-01T00:00:00Z' \
             AND \"timestamp\" < TIMESTAMP '1970-01-01T00:00:30Z' AND (\"status\" >= 500) \
             AND \"service\" = 'check''out' AND \"code\" = 502 AND upper(CAST(\"severity\" AS VARCHAR)) = 'ERROR'"
        );
    }

    #[test]
    fn samples_are_cut_to_the_rule_and_the_link_carries_the_query() {
        let row = Map::new();
        let samples = r#"[{"n":1},{"n":2},{"n":3}]"#;
        let mut e = Evidence::of_window(&plan(), 0, 1_000_000, &row, Some(samples));
        assert_eq!(e.samples.len(), 2);
        assert!(e.sql.contains("\"service\" IS NULL"), "{}", e.sql);
        e.link("https://weir.example/", "a", "b");
        let url = e.url.unwrap_or_default();
        assert!(
            url.starts_with("https://weir.example/#/search?stream=shop&range=abs&start=a&end=b&sql=SELECT%20count%28%2A%29"),
            "{url}"
        );
    }
}
