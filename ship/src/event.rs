//! The event schema and how a line becomes an event.
//!
//! Every event is one JSON object with at least `timestamp` (RFC 3339 UTC,
//! from the line when it has one, else arrival time), `service`,
//! `environment`, `severity` (TRACE, DEBUG, INFO, WARN, ERROR or FATAL, from
//! whatever spelling or number the line used), `host`, `message` and `source`,
//! plus the line's other fields and the source's static and environment
//! fields.

use crate::config::{LineFormat, SourceConfig};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use regex::Regex;
use serde_json::{Map, Value};
use std::sync::Arc;
use weir_dsl::severity;

/// One structured event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event(pub Map<String, Value>);

impl Event {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    pub fn severity(&self) -> &str {
        self.0
            .get("severity")
            .and_then(Value::as_str)
            .unwrap_or("INFO")
    }
}

const TIME_KEYS: [&str; 6] = ["timestamp", "time", "ts", "@timestamp", "datetime", "date"];
const LEVEL_KEYS: [&str; 6] = [
    "severity",
    "level",
    "lvl",
    "loglevel",
    "log_level",
    "priority",
];
const MESSAGE_KEYS: [&str; 3] = ["message", "msg", "log"];

/// A source's settings made ready for building events.
#[derive(Debug)]
pub struct EventShape {
    pub name: Arc<str>,
    pub topic: Arc<str>,
    format: LineFormat,
    regex: Option<Regex>,
    min_rank: Option<u8>,
    service: Option<String>,
    environment: Option<String>,
    host: String,
    extra: Map<String, Value>,
    drop: Vec<String>,
}

impl EventShape {
    /// `default_topic` is the config's top-level topic; `host` the agent's.
    pub fn new(cfg: &SourceConfig, default_topic: Option<&str>, host: &str) -> EventShape {
        let mut extra = Map::new();
        for (k, v) in &cfg.fields {
            extra.insert(k.clone(), Value::String(v.clone()));
        }
        for (k, var) in &cfg.env_fields {
            match std::env::var(var) {
                Ok(v) => {
                    extra.insert(k.clone(), Value::String(v));
                }
                Err(_) => {
                    tracing::warn!(source = %cfg.name, "environment variable {var} for field `{k}` is not set");
                    extra.insert(k.clone(), Value::Null);
                }
            }
        }
        EventShape {
            name: cfg.name.as_str().into(),
            topic: cfg
                .topic
                .as_deref()
                .or(default_topic)
                .unwrap_or("logs")
                .into(),
            format: cfg.format,
            regex: cfg.regex.as_deref().and_then(|r| Regex::new(r).ok()),
            min_rank: cfg.min_severity.as_deref().and_then(severity::rank),
            service: cfg.service.clone(),
            environment: cfg.environment.clone(),
            host: host.to_string(),
            extra,
            drop: cfg.drop_fields.clone(),
        }
    }

    /// The event for one line, or `None` when it is below `min_severity`.
    pub fn line(&self, line: &str, arrival: DateTime<Utc>) -> Option<Event> {
        let fields = match self.format {
            LineFormat::Json => match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(m)) => m,
                _ => {
                    let mut m = Map::new();
                    m.insert("message".into(), Value::String(line.to_string()));
                    m.insert(
                        "parse_error".into(),
                        Value::String("not a JSON object".into()),
                    );
                    m
                }
            },
            LineFormat::Auto => match line.trim_start().starts_with('{') {
                true => match serde_json::from_str::<Value>(line) {
                    Ok(Value::Object(m)) => m,
                    _ => plain(line),
                },
                false => plain(line),
            },
            LineFormat::Logfmt => weir_engine::decode::parse_logfmt(line),
            LineFormat::Regex => match self.regex.as_ref().and_then(|re| re.captures(line)) {
                Some(caps) => weir_engine::decode::captures_to_map(self.regex.as_ref(), &caps),
                None => {
                    let mut m = plain(line);
                    m.insert(
                        "parse_error".into(),
                        Value::String("the regex did not match".into()),
                    );
                    m
                }
            },
            LineFormat::Plain => plain(line),
        };
        self.fields(fields, arrival)
    }

    /// The event for already-parsed fields (syslog, tracing).
    pub fn fields(&self, mut f: Map<String, Value>, arrival: DateTime<Utc>) -> Option<Event> {
        let sev_rank = take_first(&mut f, &LEVEL_KEYS)
            .and_then(|v| match &v {
                Value::String(s) => severity::rank(s),
                Value::Number(n) => n.as_u64().and_then(|n| severity::rank(&n.to_string())),
                _ => None,
            })
            .or_else(|| {
                f.get("message")
                    .and_then(Value::as_str)
                    .and_then(level_in_text)
            })
            .unwrap_or(2);
        if self.min_rank.is_some_and(|m| sev_rank < m) {
            return None;
        }
        let ts = take_first(&mut f, &TIME_KEYS)
            .and_then(|v| parse_time(&v))
            .unwrap_or(arrival);
        let message = take_first(&mut f, &MESSAGE_KEYS)
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_default();
        let service = take_first(&mut f, &["service", "app", "application"]);
        let environment = take_first(&mut f, &["environment", "env"]);
        let host = take_first(&mut f, &["host", "hostname"]);
        let mut out = Map::new();
        out.insert(
            "timestamp".into(),
            Value::String(ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        );
        out.insert(
            "service".into(),
            self.service
                .clone()
                .map(Value::String)
                .or(service)
                .unwrap_or_else(|| Value::String(self.name.to_string())),
        );
        out.insert(
            "environment".into(),
            self.environment
                .clone()
                .map(Value::String)
                .or(environment)
                .unwrap_or_else(|| Value::String("development".into())),
        );
        out.insert(
            "severity".into(),
            Value::String(severity::LEVELS[sev_rank.min(5) as usize].into()),
        );
        out.insert(
            "host".into(),
            host.unwrap_or_else(|| Value::String(self.host.clone())),
        );
        out.insert("message".into(), Value::String(message));
        out.insert("source".into(), Value::String(self.name.to_string()));
        for (k, v) in f {
            out.entry(k).or_insert(v);
        }
        for (k, v) in &self.extra {
            out.insert(k.clone(), v.clone());
        }
        for k in &self.drop {
            out.remove(k);
        }
        Some(Event(out))
    }
}

fn plain(line: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("message".into(), Value::String(line.to_string()));
    m
}

fn take_first(f: &mut Map<String, Value>, keys: &[&str]) -> Option<Value> {
    keys.iter()
        .find_map(|k| f.remove(*k))
        .filter(|v| !v.is_null())
}

/// A level word near the start of a plain line: `ERROR ...`, `[warn] ...`,
/// `2026-01-01 12:00:00 E ...`.
fn level_in_text(text: &str) -> Option<u8> {
    text.split_whitespace().take(4).find_map(|tok| {
        let t = tok.trim_matches(|c: char| "[]():<>|".contains(c));
        let word = t.len() >= 4 || (t.len() == 1 && t.chars().all(|c| c.is_ascii_uppercase()));
        if word && t.chars().all(|c| c.is_ascii_alphabetic()) {
            return severity::rank(t);
        }
        None
    })
}

/// RFC 3339, Common Log Format, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), or a Unix
/// time in seconds, milliseconds or microseconds.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => {
            let s = weir_engine::decode::normalize_timestamp(s.trim());
            if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
                return Some(t.with_timezone(&Utc));
            }
            for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(&s, f) {
                    return Some(Utc.from_utc_datetime(&t));
                }
            }
            s.parse::<f64>().ok().and_then(epoch)
        }
        Value::Number(n) => n.as_f64().and_then(epoch),
        _ => None,
    }
}

fn epoch(x: f64) -> Option<DateTime<Utc>> {
    let us = if x > 1e14 {
        x
    } else if x > 1e11 {
        x * 1e3
    } else {
        x * 1e6
    };
    DateTime::from_timestamp_micros(us as i64)
}

/// This machine's name.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShipConfig;

    fn shape(extra: &str) -> EventShape {
        let cfg = ShipConfig::parse(&format!(
            "topic: logs\nsources:\n  - name: app\n    type: stdin\n    service: checkout\n{extra}"
        ))
        .unwrap();
        EventShape::new(&cfg.sources[0], cfg.topic.as_deref(), "web-1")
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn json_lines_keep_their_time_level_and_fields() {
        let e = shape("")
            .line(
                r#"{"ts":"2026-03-01T10:00:00+02:00","level":30,"msg":"paid","order":7}"#,
                at(),
            )
            .unwrap();
        assert_eq!(e.0["timestamp"], "2026-03-01T08:00:00Z");
        assert_eq!(e.0["severity"], "INFO");
        assert_eq!(e.0["message"], "paid");
        assert_eq!(e.0["order"], 7);
        assert_eq!(e.0["service"], "checkout");
        assert_eq!(e.0["host"], "web-1");
        assert_eq!(e.0["source"], "app");
        assert_eq!(e.0["environment"], "development");
    }

    #[test]
    fn severities_are_normalised() {
        let s = shape("");
        for (line, want) in [
            (r#"{"level":"warning"}"#, "WARN"),
            (r#"{"level":"E"}"#, "ERROR"),
            (r#"{"level":50}"#, "ERROR"),
            (r#"{"severity":"crit"}"#, "FATAL"),
            (r#"{"priority":3}"#, "ERROR"),
            ("ERROR payment failed", "ERROR"),
            ("[warn] disk almost full", "WARN"),
            ("plain words only", "INFO"),
        ] {
            assert_eq!(s.line(line, at()).unwrap().severity(), want, "{line}");
        }
    }

    #[test]
    fn filters_formats_and_static_fields() {
        let s = shape("    min_severity: warn\n    format: logfmt\n    fields: { team: pay }\n    drop_fields: [secret]\n");
        assert!(s.line("level=info msg=ok", at()).is_none());
        let e = s
            .line(
                "level=error msg=\"card declined\" secret=x time=1767225600",
                at(),
            )
            .unwrap();
        assert_eq!(e.0["message"], "card declined");
        assert_eq!(e.0["team"], "pay");
        assert!(!e.0.contains_key("secret"));
        assert_eq!(e.0["timestamp"], "2026-01-01T00:00:00Z");
    }
}
