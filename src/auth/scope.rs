//! A scope: label matchers on `service` and `environment` that limit which
//! events, alerts and silences a user or token sees, e.g.
//! `environment="production", service=~"checkout|payments"`. Every matcher
//! must match; an event without the field counts as having it empty. The
//! empty scope is everything. How a scope becomes a row filter inside SQL
//! plans is `crate::query::scope`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weir_engine::alerting::{MatchOp, Matcher};

/// The fields a scope may name.
pub const FIELDS: &[&str] = &["service", "environment"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub matchers: Vec<Matcher>,
}

impl Scope {
    /// No limit.
    pub fn everything() -> Scope {
        Scope::default()
    }

    pub fn is_everything(&self) -> bool {
        self.matchers.is_empty()
    }

    /// Parses `name="value", name=~"regex", ...` (also `!=` and `!~`);
    /// empty text is everything.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let mut matchers = Vec::new();
        for part in split_outside_quotes(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let m = Matcher::parse(part)?;
            if !FIELDS.contains(&m.name.as_str()) {
                return Err(format!(
                    "a scope matches only {} (not `{}`)",
                    FIELDS.join(" and "),
                    m.name
                ));
            }
            matchers.push(m);
        }
        Ok(Scope { matchers })
    }

    /// Whether an event or alert with these field values is inside.
    pub fn admits<'a>(&self, field: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches_value(field(m.name.as_str())))
    }

    /// Whether everything `inner` admits, this scope admits too: true when
    /// every matcher of `self` appears in `inner` (a conservative test).
    pub fn contains(&self, inner: &Scope) -> bool {
        self.matchers.iter().all(|m| inner.matchers.contains(m))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    MatchOp::Equal => "=",
                    MatchOp::NotEqual => "!=",
                    MatchOp::Regex => "=~",
                    MatchOp::NotRegex => "!~",
                };
                format!("{}{op}{:?}", m.name, m.value)
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `a="x,y", b=1` → [`a="x,y"`, ` b=1`].
fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_admits() {
        let s =
            Scope::parse(r#"environment="production", service=~"checkout|pay{1,2}ments""#).unwrap();
        assert_eq!(s.matchers.len(), 2);
        assert_eq!(Scope::parse(&s.to_string()).unwrap(), s);
        let event = |svc: &'static str, env: &'static str| {
            move |f: &str| match f {
                "service" => Some(svc),
                "environment" => Some(env),
                _ => None,
            }
        };
        assert!(s.admits(event("checkout", "production")));
        assert!(s.admits(event("payments", "production")));
        assert!(!s.admits(event("checkout", "staging")));
        assert!(!s.admits(event("checkoutx", "production")));
        assert!(!s.admits(|_| None));
        assert!(Scope::everything().admits(|_| None));
    }

    #[test]
    fn only_service_and_environment_and_good_regexes() {
        assert!(Scope::parse("host=a")
            .unwrap_err()
            .contains("service and environment"));
        assert!(Scope::parse("service=~\"(\"").is_err());
        assert!(Scope::parse("").unwrap().is_everything());
    }
}
