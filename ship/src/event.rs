//! The event schema and how a line becomes an event.
//!
//! Every event is one JSON object with at least `timestamp` (RFC 3339 UTC,
//! from the line when it has one, else arrival time), `service`,
//! `environment`, `severity` (TRACE, DEBUG, INFO, WARN, ERROR or FATAL, from
//! whatever spelling or number the line used), `host`, `message` and `source`,
//! plus the line's other fields and the source's static and environment
//! fields.

use crate::config::{LineFormat, SourceConfig};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;
use weir_dsl::severity;
use weir_formats::json_object::RawObject;
use weir_formats::timestamp::TimestampParser;

/// One structured event.
/// One event, serialized: a JSON object, standard keys first.
#[derive(Debug, Clone, PartialEq)]
pub struct Event(Vec<u8>);

impl Event {
    pub fn json(&self) -> &[u8] {
        &self.0
    }

    pub fn into_json(self) -> Vec<u8> {
        self.0
    }

    /// The event parsed back into a map (for tests and tools).
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_slice(&self.0).unwrap_or_default()
    }

    pub fn severity(&self) -> String {
        self.to_map()
            .get("severity")
            .and_then(Value::as_str)
            .unwrap_or("INFO")
            .to_string()
    }
}

/// A field as read from the line: raw JSON text (the fast path for JSON
/// lines: values the agent does not interpret are copied, not parsed) or a
/// parsed value (other formats).
#[derive(Debug, Clone, Copy)]
enum FieldValue<'a> {
    Raw(&'a RawValue),
    Parsed(&'a Value),
}

impl FieldValue<'_> {
    fn is_null(&self) -> bool {
        match self {
            FieldValue::Raw(r) => r.get() == "null",
            FieldValue::Parsed(v) => v.is_null(),
        }
    }

    fn to_value(self) -> Value {
        match self {
            FieldValue::Raw(r) => serde_json::from_str(r.get()).unwrap_or(Value::Null),
            FieldValue::Parsed(v) => v.clone(),
        }
    }

    /// The text of a string value.
    fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            FieldValue::Raw(r) if r.get().starts_with('"') => {
                serde_json::from_str::<Cow<str>>(r.get()).ok()
            }
            FieldValue::Parsed(Value::String(s)) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    /// A string's text, or any other value as JSON text.
    fn text(&self) -> String {
        match self.as_str() {
            Some(s) => s.into_owned(),
            None => match self {
                FieldValue::Raw(r) => r.get().to_string(),
                FieldValue::Parsed(v) => v.to_string(),
            },
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            FieldValue::Raw(r) => out.extend_from_slice(r.get().as_bytes()),
            FieldValue::Parsed(v) => {
                let _ = serde_json::to_writer(&mut *out, v);
            }
        }
    }
}

type Fields<'a> = Vec<(Cow<'a, str>, FieldValue<'a>)>;

/// The keys the agent writes itself; a line's own field of that name gives
/// way.
const STANDARD_KEYS: [&str; 7] = [
    "timestamp",
    "service",
    "environment",
    "severity",
    "host",
    "message",
    "source",
];

use weir_formats::fields::{
    MESSAGE_KEYS, SEVERITY_KEYS as LEVEL_KEYS, TIMESTAMP_KEYS as TIME_KEYS,
};

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
            // Grok references (`%{IP:client}`) expanded; the config check
            // has reported a pattern that does not expand or compile.
            regex: cfg
                .regex
                .as_deref()
                .and_then(|r| weir_formats::grok::expand(r).ok())
                .and_then(|e| Regex::new(&e.regex).ok()),
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
        let json = match self.format {
            LineFormat::Json => true,
            LineFormat::Auto => line.trim_start().starts_with('{'),
            _ => false,
        };
        if json {
            if let Some(o) = RawObject::parse(line) {
                let f = o.0.into_iter().map(|(k, v)| (k, FieldValue::Raw(v)));
                return self.build(f.collect(), arrival);
            }
        }
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
            LineFormat::Logfmt => weir_formats::parse_logfmt(line),
            LineFormat::Regex => match self.regex.as_ref().and_then(|re| re.captures(line)) {
                Some(caps) => weir_formats::captures_to_map(self.regex.as_ref(), &caps),
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
    pub fn fields(&self, f: Map<String, Value>, arrival: DateTime<Utc>) -> Option<Event> {
        let f: Fields = f
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), FieldValue::Parsed(v)))
            .collect();
        self.build(f, arrival)
    }

    /// The event from a line's fields: standard keys first (taken from the
    /// line's own spellings, else the source's settings), then the line's
    /// other fields, then the source's static and environment fields, less
    /// the dropped ones. `None` when below the minimum severity.
    fn build(&self, mut f: Fields, arrival: DateTime<Utc>) -> Option<Event> {
        let sev_rank = take_first(&mut f, LEVEL_KEYS)
            .and_then(|v| match v.as_str() {
                Some(s) => severity::rank(&s),
                None => match v.to_value() {
                    Value::Number(n) => n.as_u64().and_then(|n| severity::rank(&n.to_string())),
                    _ => None,
                },
            })
            .or_else(|| {
                f.iter()
                    .find(|(k, _)| k == "message")
                    .and_then(|(_, v)| v.as_str())
                    .and_then(|m| level_in_text(&m))
            })
            .unwrap_or(2);
        if self.min_rank.is_some_and(|m| sev_rank < m) {
            return None;
        }
        let ts = take_first(&mut f, TIME_KEYS)
            .and_then(|v| parse_time(&v.to_value()))
            .unwrap_or(arrival);
        let message = take_first(&mut f, MESSAGE_KEYS)
            .map(|v| v.text())
            .unwrap_or_default();
        let service = take_first(&mut f, &["service", "app", "application"]);
        let environment = take_first(&mut f, &["environment", "env"]);
        let host = take_first(&mut f, &["host", "hostname"]);

        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, k: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            let _ = serde_json::to_writer(&mut *out, k);
            out.push(b':');
        };
        let skip = |k: &str| self.drop.iter().any(|d| d == k) || self.extra.contains_key(k);
        let text = |out: &mut Vec<u8>, s: &str| {
            let _ = serde_json::to_writer(&mut *out, s);
        };
        let field = |out: &mut Vec<u8>,
                     configured: &Option<String>,
                     read: Option<FieldValue>,
                     default: &str| {
            match (configured, read) {
                (Some(c), _) => {
                    let _ = serde_json::to_writer(&mut *out, c);
                }
                (None, Some(v)) => v.write(out),
                (None, None) => {
                    let _ = serde_json::to_writer(&mut *out, default);
                }
            }
        };
        if !skip("timestamp") {
            key(&mut out, "timestamp");
            text(
                &mut out,
                &ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            );
        }
        if !skip("service") {
            key(&mut out, "service");
            field(&mut out, &self.service, service, &self.name);
        }
        if !skip("environment") {
            key(&mut out, "environment");
            field(&mut out, &self.environment, environment, "development");
        }
        if !skip("severity") {
            key(&mut out, "severity");
            text(&mut out, severity::LEVELS[sev_rank.min(5) as usize]);
        }
        if !skip("host") {
            key(&mut out, "host");
            field(&mut out, &None, host, &self.host);
        }
        if !skip("message") {
            key(&mut out, "message");
            text(&mut out, &message);
        }
        if !skip("source") {
            key(&mut out, "source");
            text(&mut out, &self.name);
        }
        for (i, (k, v)) in f.iter().enumerate() {
            let later = f[i + 1..].iter().any(|(k2, _)| k2 == k);
            if later || STANDARD_KEYS.contains(&k.as_ref()) || skip(k) {
                continue;
            }
            key(&mut out, k);
            v.write(&mut out);
        }
        for (k, v) in &self.extra {
            if !self.drop.iter().any(|d| d == k) {
                key(&mut out, k);
                let _ = serde_json::to_writer(&mut out, v);
            }
        }
        out.push(b'}');
        Some(Event(out))
    }
}

fn plain(line: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("message".into(), Value::String(line.to_string()));
    m
}

/// Removes the first of `keys` the line has (in `keys` order); its value
/// unless null.
fn take_first<'a>(f: &mut Fields<'a>, keys: &[&str]) -> Option<FieldValue<'a>> {
    let i = keys
        .iter()
        .find_map(|k| f.iter().position(|(name, _)| name == k))?;
    let (_, v) = f.remove(i);
    Some(v).filter(|v| !v.is_null())
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

/// A time in any form [`TimestampParser`] detects (RFC 3339, syslog, Common
/// Log Format, ctime, epoch seconds to nanoseconds...; zone-less times are
/// UTC): the engine's parser, so both read the same logs the same way.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let now = Utc::now().timestamp_micros();
    let us = match v {
        Value::String(s) => TimestampParser::default().parse(s, now).ok()?,
        Value::Number(n) => TimestampParser::default().parse(&n.to_string(), now).ok()?,
        _ => return None,
    };
    DateTime::<Utc>::from_timestamp_micros(us)
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
    use chrono::TimeZone;

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
    fn json_lines_keep_nested_values_and_let_standard_keys_win() {
        let e = shape("    fields: { team: pay }\n    drop_fields: [secret]\n")
            .line(
                r#"{"source":"theirs","level":null,"message":"error: disk full","ctx":{"a":[1,{"b":"\u00e9"}]},"team":"x","secret":1,"k\"q":true,"message2":"m"}"#,
                at(),
            )
            .unwrap();
        let text = String::from_utf8(e.json().to_vec()).unwrap();
        assert!(
            text.starts_with(r#"{"timestamp":"2026-01-01T00:00:00Z","service":"checkout""#),
            "{text}"
        );
        let m = e.to_map();
        assert_eq!(m["source"], "app");
        assert_eq!(
            m["severity"], "ERROR",
            "level in the message text when the level is null"
        );
        assert_eq!(m["ctx"]["a"][1]["b"], "é");
        assert_eq!(m["team"], "pay");
        assert!(!m.contains_key("secret"));
        assert_eq!(m["k\"q"], true);
        assert_eq!(m["message2"], "m");
        assert_eq!(text.matches("\"source\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"team\"").count(), 1, "{text}");
    }

    #[test]
    fn json_lines_keep_their_time_level_and_fields() {
        let e = shape("")
            .line(
                r#"{"ts":"2026-03-01T10:00:00+02:00","level":30,"msg":"paid","order":7}"#,
                at(),
            )
            .unwrap()
            .to_map();
        assert_eq!(e["timestamp"], "2026-03-01T08:00:00Z");
        assert_eq!(e["severity"], "INFO");
        assert_eq!(e["message"], "paid");
        assert_eq!(e["order"], 7);
        assert_eq!(e["service"], "checkout");
        assert_eq!(e["host"], "web-1");
        assert_eq!(e["source"], "app");
        assert_eq!(e["environment"], "development");
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
            .unwrap()
            .to_map();
        assert_eq!(e["message"], "card declined");
        assert_eq!(e["team"], "pay");
        assert!(!e.contains_key("secret"));
        assert_eq!(e["timestamp"], "2026-01-01T00:00:00Z");
    }
}
