//! Joins continuation lines (a stack trace) to the line that started the
//! event: a line matching `start` begins a new event; others are appended.

use crate::config::Multiline as MultilineConfig;
use regex::Regex;
use std::time::{Duration, Instant};

pub struct Multiline {
    start: Regex,
    timeout: Duration,
    pending: Option<String>,
    since: Instant,
}

impl Multiline {
    pub fn new(cfg: &MultilineConfig) -> Option<Multiline> {
        Some(Multiline {
            start: Regex::new(&cfg.start).ok()?,
            timeout: cfg.timeout.unwrap_or(Duration::from_secs(1)),
            pending: None,
            since: Instant::now(),
        })
    }

    /// Takes a line; returns an event that it completed, if any.
    pub fn push(&mut self, line: &str) -> Option<String> {
        self.since = Instant::now();
        if self.start.is_match(line) || self.pending.is_none() {
            return self.pending.replace(line.to_string());
        }
        if let Some(p) = self.pending.as_mut() {
            p.push('\n');
            p.push_str(line);
        }
        None
    }

    /// The pending event if no line came for the timeout.
    pub fn stale(&mut self) -> Option<String> {
        if self.pending.is_some() && self.since.elapsed() >= self.timeout {
            return self.pending.take();
        }
        None
    }

    pub fn flush(&mut self) -> Option<String> {
        self.pending.take()
    }

    /// Whether `line` starts a new event.
    pub fn starts(&self, line: &str) -> bool {
        self.start.is_match(line)
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_stack_traces() {
        let mut m = Multiline::new(&MultilineConfig {
            start: r"^\d{4}-".into(),
            timeout: None,
        })
        .unwrap();
        let mut out = Vec::new();
        for l in [
            "2026-01-01 ERROR boom",
            "  at a.b(C.java:1)",
            "  at d.e(F.java:2)",
            "2026-01-01 INFO ok",
        ] {
            out.extend(m.push(l));
        }
        out.extend(m.flush());
        assert_eq!(
            out,
            vec![
                "2026-01-01 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)".to_string(),
                "2026-01-01 INFO ok".to_string()
            ]
        );
    }
}
