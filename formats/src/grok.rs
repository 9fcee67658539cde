//! Grok-style named patterns inside a regex, as Logstash, Vector and
//! Elasticsearch's ingest pipelines spell them: `%{IP:client}` becomes
//! `(?P<client>…IP's regex…)`, `%{NUMBER}` a group that captures nothing,
//! and `%{NUMBER:bytes:int}` also says the field's type. Everything else in
//! the pattern is regex, left as written.
//!
//! The pattern library is the common core of Logstash's `grok-patterns`,
//! rewritten for Rust's regex crate (no look-around, no atomic groups), so a
//! pattern matches in linear time whatever the line. Patterns refer to each
//! other (`IP` is `IPV6` or `IPV4`); expansion is depth-limited.

use std::fmt;

/// A named pattern of the library.
pub struct Pattern {
    pub name: &'static str,
    /// The regex, which may refer to other patterns as `%{NAME}`.
    pub regex: &'static str,
}

macro_rules! patterns {
    ($($name:literal => $re:literal,)*) => {
        /// The pattern library, by name.
        pub const PATTERNS: &[Pattern] = &[$(Pattern { name: $name, regex: $re }),*];
    };
}

patterns! {
    "USERNAME" => r"[a-zA-Z0-9._-]+",
    "USER" => r"%{USERNAME}",
    "EMAILLOCALPART" => r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*",
    "EMAILADDRESS" => r"%{EMAILLOCALPART}@%{HOSTNAME}",
    "INT" => r"[+-]?[0-9]+",
    "BASE10NUM" => r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)",
    "NUMBER" => r"%{BASE10NUM}",
    "BASE16NUM" => r"[+-]?(?:0[xX])?[0-9A-Fa-f]+",
    "POSINT" => r"\b[1-9][0-9]*\b",
    "NONNEGINT" => r"\b[0-9]+\b",
    "WORD" => r"\b\w+\b",
    "NOTSPACE" => r"\S+",
    "SPACE" => r"\s*",
    "DATA" => r".*?",
    "GREEDYDATA" => r".*",
    "QUOTEDSTRING" => r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`"#,
    "QS" => r"%{QUOTEDSTRING}",
    "UUID" => r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "MAC" => r"(?:[A-Fa-f0-9]{2}[:-]){5}[A-Fa-f0-9]{2}|(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4}",
    "IPV4" => r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
    "IPV6" => r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){6}%{IPV4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:(?:[0-9A-Fa-f]{1,4}:){0,5}%{IPV4}|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?|::(?:(?:[0-9A-Fa-f]{1,4}:){0,5}%{IPV4}|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?",
    "IP" => r"%{IPV6}|%{IPV4}",
    "HOSTNAME" => r"\b[0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\.?",
    "HOST" => r"%{HOSTNAME}",
    "IPORHOST" => r"%{IP}|%{HOSTNAME}",
    "HOSTPORT" => r"%{IPORHOST}:%{POSINT}",
    "PATH" => r"%{UNIXPATH}|%{WINPATH}",
    "UNIXPATH" => r"(?:/[\w_%!$@:.,+~-]*)+",
    "WINPATH" => r"(?:[A-Za-z]+:|\\)(?:\\[^\\?*]*)+",
    "URIPROTO" => r"[A-Za-z][A-Za-z0-9+.-]*",
    "URIHOST" => r"%{IPORHOST}(?::%{POSINT})?",
    "URIPATH" => r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+",
    "URIPARAM" => r"\?[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*",
    "URIPATHPARAM" => r"%{URIPATH}(?:%{URIPARAM})?",
    "URI" => r"%{URIPROTO}://(?:%{USER}(?::[^@]*)?@)?%{URIHOST}?(?:%{URIPATHPARAM})?",
    "MONTH" => r"\b(?:[Jj]an(?:uary)?|[Ff]eb(?:ruary)?|[Mm]ar(?:ch)?|[Aa]pr(?:il)?|[Mm]ay|[Jj]un(?:e)?|[Jj]ul(?:y)?|[Aa]ug(?:ust)?|[Ss]ep(?:tember)?|[Oo]ct(?:ober)?|[Nn]ov(?:ember)?|[Dd]ec(?:ember)?)\b",
    "MONTHNUM" => r"0?[1-9]|1[0-2]",
    "MONTHDAY" => r"0[1-9]|[12][0-9]|3[01]|[1-9]",
    "DAY" => r"\b(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)\b",
    "YEAR" => r"[0-9]{4}|[0-9]{2}",
    "HOUR" => r"2[0123]|[01]?[0-9]",
    "MINUTE" => r"[0-5][0-9]",
    "SECOND" => r"(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?",
    "TIME" => r"%{HOUR}:%{MINUTE}(?::%{SECOND})?",
    "ISO8601_TIMEZONE" => r"Z|[+-]%{HOUR}(?::?%{MINUTE})",
    "TIMESTAMP_ISO8601" => r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?(?:%{ISO8601_TIMEZONE})?",
    "DATE_US" => r"%{MONTHNUM}[/-]%{MONTHDAY}[/-]%{YEAR}",
    "DATE_EU" => r"%{MONTHDAY}[./-]%{MONTHNUM}[./-]%{YEAR}",
    "DATESTAMP" => r"(?:%{DATE_US}|%{DATE_EU})[- ]%{TIME}",
    "HTTPDATE" => r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}",
    "SYSLOGTIMESTAMP" => r"%{MONTH} +%{MONTHDAY} %{TIME}",
    "SYSLOGHOST" => r"%{IPORHOST}",
    "PROG" => r"[\x21-\x5a\x5c\x5e-\x7e]+",
    "LOGLEVEL" => r"(?i:alert|trace|debug|notice|info(?:rmation)?|warn(?:ing)?|err(?:or)?|crit(?:ical)?|fatal|severe|emerg(?:ency)?)",
}

/// Expansion stops at this depth (a pattern referring to itself).
const MAX_DEPTH: usize = 16;

/// A pattern with its `%{…}` references expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    /// The plain regex.
    pub regex: String,
    /// `(field, type)` for every `%{NAME:field:type}`, in order (the type as
    /// written: `int`, `float`, …).
    pub types: Vec<(String, String)>,
}

/// Why a pattern cannot be expanded, with where in it (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct GrokError {
    pub at: usize,
    pub len: usize,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for GrokError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.hint)
    }
}

impl std::error::Error for GrokError {}

/// Whether the pattern uses any `%{…}` reference.
pub fn has_patterns(pattern: &str) -> bool {
    pattern.contains("%{")
}

/// The library's pattern of that name.
pub fn lookup(name: &str) -> Option<&'static Pattern> {
    PATTERNS.iter().find(|p| p.name == name)
}

/// Expands every `%{NAME}`, `%{NAME:field}` and `%{NAME:field:type}` of a
/// user's pattern. A pattern without references comes back unchanged.
pub fn expand(pattern: &str) -> Result<Expanded, GrokError> {
    let mut out = Expanded {
        regex: String::with_capacity(pattern.len()),
        types: Vec::new(),
    };
    let mut rest = pattern;
    let mut at = 0;
    while let Some(i) = rest.find("%{") {
        out.regex.push_str(&rest[..i]);
        let start = at + i;
        let body_start = i + 2;
        let Some(close) = rest[body_start..].find('}') else {
            return Err(GrokError {
                at: start,
                len: rest.len() - i,
                message: "unclosed `%{`".into(),
                hint: "write %{NAME}, %{NAME:field} or %{NAME:field:int}".into(),
            });
        };
        let body = &rest[body_start..body_start + close];
        let len = close + 3;
        let err = |message: String, hint: String| GrokError {
            at: start,
            len,
            message,
            hint,
        };
        let mut parts = body.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let field = parts.next();
        let ty = parts.next();
        let Some(p) = lookup(name) else {
            return Err(err(
                format!("unknown pattern `{name}`"),
                match closest(name) {
                    Some(c) => format!("did you mean `{c}`? patterns are: {}", names()),
                    None => format!("patterns are: {}", names()),
                },
            ));
        };
        let inner = inline(p.regex, 0).map_err(|m| err(m, "a pattern refers to itself".into()))?;
        match field {
            None => out.regex.push_str(&format!("(?:{inner})")),
            Some(f) => {
                if !valid_field(f) {
                    return Err(err(
                        format!("`{f}` cannot name a field"),
                        "a field name is letters, digits and `_`, starting with a letter or `_` (nested names are not supported: extract, then `set`)".into(),
                    ));
                }
                out.regex.push_str(&format!("(?P<{f}>{inner})"));
                if let Some(t) = ty {
                    out.types.push((f.to_string(), t.to_string()));
                }
            }
        }
        rest = &rest[body_start + close + 1..];
        at = start + len;
    }
    out.regex.push_str(rest);
    Ok(out)
}

/// A library pattern with its references expanded (groups that capture
/// nothing).
fn inline(regex: &str, depth: usize) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err("patterns nest too deeply".into());
    }
    let mut out = String::with_capacity(regex.len());
    let mut rest = regex;
    while let Some(i) = rest.find("%{") {
        out.push_str(&rest[..i]);
        let close = rest[i..]
            .find('}')
            .ok_or_else(|| "a library pattern is unclosed".to_string())?;
        let name = &rest[i + 2..i + close];
        let p = lookup(name).ok_or_else(|| format!("the library lacks `{name}`"))?;
        out.push_str(&format!("(?:{})", inline(p.regex, depth + 1)?));
        rest = &rest[i + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_field(f: &str) -> bool {
    let mut c = f.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn names() -> String {
    PATTERNS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The library name nearest to a misspelt one (case-insensitive match, or
/// an edit distance of at most 2).
fn closest(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    PATTERNS
        .iter()
        .map(|p| (distance(&upper, p.name), p.name))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn captures(pattern: &str, line: &str) -> Vec<(String, String)> {
        let e = expand(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let re = Regex::new(&e.regex).unwrap_or_else(|err| panic!("{}: {err}", e.regex));
        let c = re
            .captures(line)
            .unwrap_or_else(|| panic!("{line} !~ {}", e.regex));
        re.capture_names()
            .flatten()
            .filter_map(|n| c.name(n).map(|m| (n.to_string(), m.as_str().to_string())))
            .collect()
    }

    #[test]
    fn every_library_pattern_compiles() {
        for p in PATTERNS {
            let e =
                expand(&format!("%{{{}:x}}", p.name)).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            Regex::new(&e.regex).unwrap_or_else(|err| panic!("{}: {err}", p.name));
        }
    }

    #[test]
    fn named_references_become_fields_and_keep_the_rest_of_the_regex() {
        let got = captures(
            r"^%{IP:client} %{WORD:method} %{URIPATHPARAM:path} %{NUMBER:bytes:int} %{NUMBER:duration:float}$",
            "55.3.244.1 GET /index.html?a=1 15824 0.043",
        );
        let want = [
            ("client", "55.3.244.1"),
            ("method", "GET"),
            ("path", "/index.html?a=1"),
            ("bytes", "15824"),
            ("duration", "0.043"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        let e = expand(r"%{NUMBER:bytes:int} %{NUMBER:d:float} %{WORD}").unwrap();
        assert_eq!(
            e.types,
            vec![("bytes".into(), "int".into()), ("d".into(), "float".into())]
        );
        assert_eq!(expand(r"^(?P<a>\d+)$").unwrap().regex, r"^(?P<a>\d+)$");
    }

    #[test]
    fn addresses_and_times_match_what_logs_hold() {
        for ip in [
            "10.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(
                captures("^%{IP:a}$", ip),
                vec![("a".into(), ip.into())],
                "{ip}"
            );
        }
        assert!(Regex::new(&expand("^%{IPV4}$").unwrap().regex)
            .unwrap()
            .find("256.1.1.1")
            .is_none());
        for (p, t) in [
            ("TIMESTAMP_ISO8601", "2026-10-11T22:14:15.003Z"),
            ("TIMESTAMP_ISO8601", "2015-07-29 17:41:44,747"),
            ("HTTPDATE", "10/Oct/2026:13:55:36 -0700"),
            ("SYSLOGTIMESTAMP", "Dec  4 06:55:46"),
            ("LOGLEVEL", "WARNING"),
            ("UUID", "123e4567-e89b-12d3-a456-426614174000"),
            ("QUOTEDSTRING", r#""a \"quoted\" word""#),
            ("HOSTNAME", "db-1.eu.example.com"),
            ("EMAILADDRESS", "ops@example.com"),
        ] {
            assert_eq!(
                captures(&format!("^%{{{p}:v}}$"), t),
                vec![("v".into(), t.into())],
                "{p}"
            );
        }
    }

    #[test]
    fn mistakes_say_where_and_what_to_write() {
        let e = expand(r"^%{IPP:client} x").unwrap_err();
        assert_eq!((e.at, e.len), (1, 13));
        assert!(e.message.contains("unknown pattern `IPP`"), "{e}");
        assert!(e.hint.contains("did you mean `IP`"), "{e}");
        assert!(expand("%{ip:a}").unwrap_err().hint.contains("`IP`"));
        let e = expand("a %{WORD:a.b}").unwrap_err();
        assert!(e.message.contains("`a.b` cannot name a field"), "{e}");
        let e = expand("a %{WORD").unwrap_err();
        assert_eq!((e.at, e.message.as_str()), (2, "unclosed `%{`"));
    }
}
