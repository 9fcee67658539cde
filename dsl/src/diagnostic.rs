//! Diagnostics: what the parser and checker report, and how they are printed
//! (`file:line:col: error: message`, the source line with a caret, and a hint).

use crate::span::{SourceMap, Span};
use serde::Serialize;
use std::fmt::Write as _;

/// What kind of mistake a diagnostic reports. Stable names, used by the HTTP API
/// and by tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Syntax,
    DuplicateName,
    UnknownSource,
    UnknownSourceKind,
    UnknownOutput,
    UnknownArgument,
    MissingArgument,
    InvalidArgument,
    UnknownFormat,
    UnknownType,
    UnknownField,
    UnknownFunction,
    UnknownStage,
    UnknownSeverity,
    TypeMismatch,
    NotBoolean,
    WrongArity,
    InvalidRegex,
    AggregateOutsideWindow,
    NotAnAggregate,
    InvalidWindow,
    /// A `repartition` stage in the wrong place or on the wrong source.
    InvalidRepartition,
    AlertWithoutWindow,
    InvalidQuantile,
    StageAfterAlert,
    DuplicateArchive,
    FieldCollision,
    /// The text is larger or nests deeper than [`crate::limits`] allows.
    TooComplex,
    /// Refused by the server's security settings (a path, broker or
    /// address a rule submitted over the API may not use).
    NotAllowed,
}

/// One error found in a `.rules` text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Span,
    /// A short note printed under the caret.
    pub label: Option<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            kind,
            message: message.into(),
            span,
            label: None,
            hint: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a "did you mean" hint when one of `candidates` is close to `word`.
    pub fn with_suggestion<'a>(
        self,
        word: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match closest(word, candidates) {
            Some(best) => self.with_hint(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    /// Line/column form of this diagnostic against `text`.
    pub fn located(&self, text: &str) -> LocatedDiagnostic {
        let map = SourceMap::new(text);
        let start = map.line_col(self.span.start);
        let end = map.line_col(self.span.end);
        LocatedDiagnostic {
            kind: self.kind,
            message: self.message.clone(),
            line: start.line,
            col: start.col,
            end_line: end.line,
            end_col: end.col,
            snippet: map.line_text(start.line).to_string(),
            label: self.label.clone(),
            hint: self.hint.clone(),
        }
    }

    /// Renders the diagnostic the way compilers do:
    ///
    /// ```text
    /// rules/app.rules:3:11: error: unknown field `sevrity`
    ///   |
    /// 3 |   | where sevrity >= warn
    ///   |           ^^^^^^^ not a field here
    ///   = hint: did you mean `severity`?
    /// ```
    pub fn render(&self, file: &str, text: &str) -> String {
        let loc = self.located(text);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{file}:{}:{}: error: {}",
            loc.line, loc.col, self.message
        );
        let gutter = loc.line.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{} | {}", loc.line, loc.snippet);
        let width = if loc.end_line == loc.line {
            loc.end_col.saturating_sub(loc.col).max(1)
        } else {
            loc.snippet
                .chars()
                .count()
                .saturating_sub(loc.col - 1)
                .max(1)
        };
        let _ = write!(
            out,
            "{pad} | {}{}",
            " ".repeat(loc.col - 1),
            "^".repeat(width)
        );
        if let Some(label) = &self.label {
            let _ = write!(out, " {label}");
        }
        out.push('\n');
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
        out
    }
}

/// A diagnostic with positions resolved to lines and columns, for JSON output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocatedDiagnostic {
    pub kind: ErrorKind,
    pub message: String,
    pub line: usize,
    pub col: usize,
    pub end_line: usize,
    pub end_col: usize,
    pub snippet: String,
    pub label: Option<String>,
    pub hint: Option<String>,
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a
/// plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (word.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Renders every diagnostic, in source order.
pub fn render_all(diags: &[Diagnostic], file: &str, text: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| d.span.start);
    let mut out = String::new();
    for d in sorted {
        out.push_str(&d.render(file, text));
        out.push('\n');
    }
    let n = diags.len();
    let _ = writeln!(
        out,
        "{file}: {n} error{} found",
        if n == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_offending_text() {
        let text = "pipeline p {\n  from app\n  | where sevrity >= warn\n}\n";
        let start = text.find("sevrity").unwrap_or(0);
        let d = Diagnostic::new(
            ErrorKind::UnknownField,
            Span::new(start, start + 7),
            "unknown field `sevrity`",
        )
        .with_label("not a field here")
        .with_suggestion("sevrity", ["severity", "service"]);
        let out = d.render("a.rules", text);
        assert_eq!(
            out,
            "a.rules:3:11: error: unknown field `sevrity`\n  |\n3 |   | where sevrity >= warn\n  |           ^^^^^^^ not a field here\n  = hint: did you mean `severity`?\n"
        );
    }

    #[test]
    fn closest_ignores_far_words() {
        assert_eq!(closest("xyz", ["severity", "service"]), None);
        assert_eq!(closest("servce", ["severity", "service"]), Some("service"));
    }
}
