//! Reading a connector's arguments (`kind(name: value, ...)` in the rules)
//! into typed settings. The checker has already checked names and types
//! against `weir_dsl::connectors`; these read the values.

use std::time::Duration;
use weir_dsl::ast::{ArgValue, Connector};
use weir_engine::{EngineError, Result};

/// The arguments of one connector declaration.
#[derive(Clone, Copy)]
pub struct Args<'a>(pub &'a Connector);

impl<'a> Args<'a> {
    fn value(&self, name: &str) -> Option<&'a ArgValue> {
        self.0.arg(name).map(|a| &a.value)
    }

    pub fn str(&self, name: &str) -> Option<&'a str> {
        match self.value(name) {
            Some(ArgValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A required string argument.
    pub fn required_str(&self, name: &str) -> Result<&'a str> {
        self.str(name).ok_or_else(|| {
            EngineError::plan(self.0.span, format!("{} needs `{name}`", self.0.kind.name))
        })
    }

    pub fn int(&self, name: &str) -> Option<u64> {
        match self.value(name) {
            Some(ArgValue::Int(i)) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.value(name) {
            Some(ArgValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.value(name) {
            Some(ArgValue::Duration(ms)) => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }

    /// A bare word (`start: latest`).
    pub fn word(&self, name: &str) -> Option<&'a str> {
        match self.value(name) {
            Some(ArgValue::Ident(w)) => Some(w),
            _ => None,
        }
    }

    /// A string-or-list argument as a list.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.value(name).map(ArgValue::strings).unwrap_or_default()
    }

    /// An RFC 3339 time argument.
    pub fn time(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>> {
        self.str(name)
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
                    EngineError::plan_hint(
                        self.0.span,
                        format!("{name} `{s}` is not a timestamp: {e}"),
                        "write it in RFC 3339, e.g. \"2026-01-01T00:00:00Z\"",
                    )
                })
            })
            .transpose()
    }
}
