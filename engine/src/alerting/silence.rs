//! Silences: label matchers with a time range. A silenced alert still changes
//! state and is recorded, but its notifications are held back.

use super::tracker::Alert;
use std::time::Duration;

/// Silences kept at once (active, pending, or expired less than a day ago).
pub const MAX_SILENCES: usize = 1_000;
/// Matchers in one silence.
pub const MAX_MATCHERS: usize = 32;
/// Bytes of one matcher's name and value together.
pub const MAX_MATCHER_BYTES: usize = 1_024;
/// Bytes of `comment` and of `created_by`.
pub const MAX_TEXT_BYTES: usize = 4_096;
/// The longest silence, and how far ahead one may start.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why a silence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// Malformed: no matcher, a bad regex, a zero duration.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but past a limit.
    #[error("{0}")]
    OverLimit(String),
}

/// Checks a new silence's size against the limits above.
pub fn check_limits(
    matchers: &[Matcher],
    starts_in: Duration,
    duration: Duration,
    created_by: &str,
    comment: &str,
) -> Result<(), SilenceError> {
    let over = |m: String| Err(SilenceError::OverLimit(m));
    if matchers.len() > MAX_MATCHERS {
        return over(format!(
            "a silence has at most {MAX_MATCHERS} matchers ({} given)",
            matchers.len()
        ));
    }
    if let Some(m) = matchers
        .iter()
        .find(|m| m.name.len() + m.value.len() > MAX_MATCHER_BYTES)
    {
        return over(format!(
            "matcher `{}` is longer than {MAX_MATCHER_BYTES} bytes",
            m.name.chars().take(40).collect::<String>()
        ));
    }
    if duration > MAX_DURATION {
        return over(format!(
            "a silence lasts at most {} days; expire and renew long ones",
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    if starts_in > MAX_DURATION {
        return over(format!(
            "a silence starts at most {} days ahead",
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    for (what, text) in [("created_by", created_by), ("comment", comment)] {
        if text.len() > MAX_TEXT_BYTES {
            return over(format!("{what} is longer than {MAX_TEXT_BYTES} bytes"));
        }
    }
    Ok(())
}
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
    /// A regex matcher's pattern, compiled once on first use (silences are
    /// checked against every alert transition).
    #[serde(skip)]
    compiled: Compiled,
}

/// A compiled matcher regex; not part of what a matcher is (equal whatever
/// it holds, never serialized).
#[derive(Debug, Clone, Default)]
struct Compiled(std::sync::OnceLock<Option<Regex>>);

impl PartialEq for Compiled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
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
                    compiled: Compiled::default(),
                };
                m.validate()?;
                return Ok(m);
            }
        }
        Err(format!(
            "`{text}` is not a matcher; write name=value, name!=value, name=~regex or name!~regex"
        ))
    }

    /// Checks the regex of a regex matcher and keeps it compiled (copies
    /// of the matcher share it), so matching never compiles it again.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.op, MatchOp::Regex | MatchOp::NotRegex) {
            let re = Regex::new(&format!("^(?:{})$", self.value))
                .map_err(|e| format!("bad regex in matcher `{}`: {e}", self.name))?;
            let _ = self.compiled.0.set(Some(re));
        }
        Ok(())
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        let actual = match self.name.as_str() {
            "alertname" | "rule" => Some(alert.rule.as_str()),
            "severity" => Some(alert.severity.as_str()),
            "pipeline" => Some(alert.pipeline.as_str()),
            n => alert.labels.get(n).map(String::as_str),
        };
        self.matches_value(actual)
    }

    /// Whether a value matches; an absent one counts as empty text (as in
    /// Alertmanager).
    pub fn matches_value(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.op {
            MatchOp::Equal => actual == self.value,
            MatchOp::NotEqual => actual != self.value,
            MatchOp::Regex | MatchOp::NotRegex => {
                let re = self
                    .compiled
                    .0
                    .get_or_init(|| Regex::new(&format!("^(?:{})$", self.value)).ok());
                let hit = re.as_ref().is_some_and(|re| re.is_match(actual));
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
            evidence: None,
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
