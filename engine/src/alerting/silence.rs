//! Silences: label matchers with a time range. A silenced alert still changes
//! state and is recorded, but its notifications are held back.

use super::tracker::Alert;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// `name=value`, `name!=value`, `name=~regex` or `name!~regex`. The names
/// `alertname` (the rule), `severity` and `pipeline` match those fields; any
/// other name matches a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub op: MatchOp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    #[default]
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl Matcher {
    /// Parses `service=checkout`, `severity!=info`, `alertname=~"disk.*"`.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let ops = [
            ("!~", MatchOp::NotRegex),
            ("=~", MatchOp::Regex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ];
        for (tok, op) in ops {
            if let Some(at) = text.find(tok) {
                let name = text[..at].trim();
                let value = text[at + tok.len()..].trim().trim_matches('"');
                if name.is_empty() {
                    break;
                }
                let m = Matcher {
                    name: name.to_string(),
                    value: value.to_string(),
                    op,
                };
                m.validate()?;
                return Ok(m);
            }
        }
        Err(format!(
            "`{text}` is not a matcher; write name=value, name!=value, name=~regex or name!~regex"
        ))
    }

    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.op, MatchOp::Regex | MatchOp::NotRegex) {
            Regex::new(&format!("^(?:{})$", self.value))
                .map_err(|e| format!("bad regex in matcher `{}`: {e}", self.name))?;
        }
        Ok(())
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        let actual = match self.name.as_str() {
            "alertname" | "rule" => Some(alert.rule.as_str()),
            "severity" => Some(alert.severity.as_str()),
            "pipeline" => Some(alert.pipeline.as_str()),
            n => alert.labels.get(n).map(String::as_str),
        }
        .unwrap_or("");
        match self.op {
            MatchOp::Equal => actual == self.value,
            MatchOp::NotEqual => actual != self.value,
            MatchOp::Regex | MatchOp::NotRegex => {
                let hit = Regex::new(&format!("^(?:{})$", self.value))
                    .map(|re| re.is_match(actual))
                    .unwrap_or(false);
                hit == (self.op == MatchOp::Regex)
            }
        }
    }
}

/// A silence: every matcher must match for an alert to be silenced, between
/// `starts_at_us` and `ends_at_us` (wall-clock microseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at_us: i64,
    pub ends_at_us: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    pub fn is_active(&self, now_us: i64) -> bool {
        self.starts_at_us <= now_us && now_us < self.ends_at_us
    }

    pub fn silences(&self, alert: &Alert, now_us: i64) -> bool {
        self.is_active(now_us) && self.matchers.iter().all(|m| m.matches(alert))
    }

    /// `active`, `pending` (starts later) or `expired`.
    pub fn status(&self, now_us: i64) -> &'static str {
        if now_us < self.starts_at_us {
            "pending"
        } else if now_us < self.ends_at_us {
            "active"
        } else {
            "expired"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::tracker::AlertState;
    use std::collections::BTreeMap;

    fn alert() -> Alert {
        Alert {
            fingerprint: "f".into(),
            rule: "checkout burst".into(),
            pipeline: "p".into(),
            severity: "critical".into(),
            state: AlertState::Firing,
            labels: BTreeMap::from([("service".to_string(), "checkout".to_string())]),
            annotations: BTreeMap::new(),
            values: Default::default(),
            window_start: String::new(),
            window_end: String::new(),
            active_since: String::new(),
            fired_at: None,
            resolved_at: None,
            notify: vec![],
            silenced_by: None,
            active_since_us: 0,
            last_match_us: 0,
            last_notified_us: None,
        }
    }

    #[test]
    fn matchers_parse_and_match() {
        let a = alert();
        for (text, want) in [
            ("service=checkout", true),
            ("service!=checkout", false),
            ("alertname=~\"checkout.*\"", true),
            ("severity!~warn.*", true),
            ("missing=", true),
            ("service=cart", false),
        ] {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.matches(&a), want, "{text}");
        }
        assert!(Matcher::parse("nonsense").is_err());
        assert!(Matcher::parse("a=~(").is_err());
    }

    #[test]
    fn silences_only_while_active() {
        let s = Silence {
            id: "s".into(),
            matchers: vec![Matcher::parse("service=checkout").unwrap()],
            starts_at_us: 10,
            ends_at_us: 20,
            created_by: String::new(),
            comment: String::new(),
        };
        assert!(!s.silences(&alert(), 5));
        assert!(s.silences(&alert(), 15));
        assert!(!s.silences(&alert(), 20));
        assert_eq!(s.status(25), "expired");
    }
}
