//! Semantic checks: resolves names, types, aggregates and window specs before
//! anything runs, and reports every problem found in one pass.
//!
//! The result, [`CheckedProgram`], carries the schema each stage sees, the
//! program with its expressions resolved (e.g. `warn` in `severity >= warn`
//! becomes a severity literal) and, per stage, the facts the engine builds
//! its operators from ([`crate::plan`]), so the engine never has to repeat
//! the reasoning.

use crate::ast::*;
use crate::connectors::{self, ArgType, ConnectorSpec};
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::functions::{self, Param};
use crate::plan::{
    Aggregate, AggregatePlan, AlertPlan, Assigner, Column, ParsePlan, RepartitionPlan,
    RepartitionRole, StagePlan, WindowPlan,
};
use crate::severity;
use crate::span::Span;
use crate::types::{Schema, Type, EVIDENCE, OFFSET, RAW, TIMESTAMP, WINDOW_END, WINDOW_START};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

mod declarations;
mod evidence;
mod expressions;
mod stages;

/// A source with the schema its events have after parsing.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedSource {
    pub decl: SourceDecl,
    pub format: Format,
    pub schema: Schema,
    /// Whether its positions replay after a restart (see
    /// [`ConnectorSpec::replayable`]).
    pub replayable: bool,
    /// `keyed_by`: the fields its messages are keyed (partitioned) by —
    /// every event with the same values is in one partition. Checked to
    /// be fields of the schema.
    pub keyed_by: Vec<String>,
}

/// A pipeline with the schema seen by each stage: `schemas[i]` is the input of
/// `stages[i]`, and the last entry is the pipeline's output; `plans[i]` is
/// what the checker resolved about `stages[i]`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedPipeline {
    pub pipeline: Pipeline,
    pub schemas: Vec<Schema>,
    pub plans: Vec<StagePlan>,
}

/// A program that passed every check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedProgram {
    pub sources: Vec<CheckedSource>,
    pub outputs: Vec<OutputDecl>,
    pub archives: Vec<ArchiveDecl>,
    pub pipelines: Vec<CheckedPipeline>,
}

impl CheckedProgram {
    pub fn source(&self, name: &str) -> Option<&CheckedSource> {
        self.sources.iter().find(|s| s.decl.name.name == name)
    }
}

/// Checks a parsed program.
pub fn check(program: &Program) -> Result<CheckedProgram, Vec<Diagnostic>> {
    let mut cx = Checker::default();
    let sources: Vec<CheckedSource> = program
        .sources
        .iter()
        .filter_map(|s| cx.source(s))
        .collect();
    let checked_sources: HashMap<&str, &CheckedSource> = sources
        .iter()
        .map(|s| (s.decl.name.name.as_str(), s))
        .collect();
    cx.check_duplicates(program.sources.iter().map(|s| &s.name), "source");
    cx.check_duplicates(program.outputs.iter().map(|o| &o.name), "output");
    cx.check_duplicates(program.pipelines.iter().map(|p| &p.name), "pipeline");
    for o in &program.outputs {
        cx.connector(&o.connector, connectors::OUTPUTS, "output");
    }
    let source_names: Vec<&str> = program
        .sources
        .iter()
        .map(|s| s.name.name.as_str())
        .collect();
    let mut archived = HashSet::new();
    for a in &program.archives {
        let schema = checked_sources
            .get(a.source.name.as_str())
            .map(|s| &s.schema);
        cx.archive(a, &source_names, schema, &mut archived);
    }
    let output_names: Vec<&str> = program
        .outputs
        .iter()
        .map(|o| o.name.name.as_str())
        .chain(connectors::BUILTIN_OUTPUTS.iter().copied())
        .collect();
    let mut pipelines = Vec::new();
    for p in &program.pipelines {
        let Some(source) = checked_sources.get(p.from.name.as_str()) else {
            // Undeclared, or declared with errors (already reported).
            if !source_names.contains(&p.from.name.as_str()) {
                cx.push(
                    Diagnostic::new(
                        ErrorKind::UnknownSource,
                        p.from.span,
                        format!("unknown source `{}`", p.from.name),
                    )
                    .with_label("not declared")
                    .with_suggestion(&p.from.name, source_names.iter().copied())
                    .or_hint(
                        "declare it first, e.g. `source app = file(path: \"app.log\") format json`",
                    ),
                );
            }
            continue;
        };
        if let Some(cp) = cx.pipeline(p, source, &output_names) {
            pipelines.push(cp);
        }
    }
    if cx.diags.is_empty() {
        Ok(CheckedProgram {
            sources,
            outputs: program.outputs.clone(),
            archives: program.archives.clone(),
            pipelines,
        })
    } else {
        Err(cx.diags)
    }
}

/// Checks a condition on its own against `schema` (the console's tail
/// filter), as `| where` would: the resolved expression, or why not.
pub fn check_condition(e: &Expr, schema: &Schema) -> Result<Expr, Vec<Diagnostic>> {
    let mut cx = Checker::default();
    let (e, t) = cx.expr(e, schema, Ctx::Row);
    cx.expect_bool(&e, t, "a filter");
    if cx.diags.is_empty() {
        Ok(e)
    } else {
        Err(cx.diags)
    }
}

impl Diagnostic {
    fn or_hint(self, hint: &str) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.with_hint(hint)
        }
    }
}

/// Where an expression appears, which decides whether aggregates are allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Row,
    Aggregate,
}

#[derive(Default)]
struct Checker {
    diags: Vec<Diagnostic>,
}

const STAGES: [&str; 11] = [
    "where",
    "set",
    "rename",
    "drop",
    "parse",
    "geoip",
    "window",
    "alert",
    "to",
    "repartition",
    "from",
];

impl Checker {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn check_duplicates<'a>(&mut self, names: impl Iterator<Item = &'a Ident>, what: &str) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for n in names {
            if seen.insert(n.name.as_str(), n.span).is_some() {
                self.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateName,
                        n.span,
                        format!("{what} `{}` is declared twice", n.name),
                    )
                    .with_label("second declaration")
                    .with_hint(format!("rename one of them; {what} names must be unique")),
                );
            }
        }
    }

    pub(super) fn unknown_field(&mut self, name: &str, span: Span, schema: &Schema) {
        let mut d = Diagnostic::new(
            ErrorKind::UnknownField,
            span,
            format!("unknown field `{name}`"),
        )
        .with_label("not a field at this point of the pipeline")
        .with_suggestion(name, schema.names());
        if d.hint.is_none() {
            d = d.with_hint(if name.contains('.') {
                "nested JSON values are read with json_get(_raw, \"a.b\")".to_string()
            } else {
                "declare it in the source's `fields { name: type }` block, or create it with `| set`".to_string()
            });
        }
        self.push(d);
    }
}

/// Fields added by `geoip FIELD using "db" [as PREFIX]`, after `PREFIX_`.
pub const GEOIP_FIELDS: [(&str, Type); 4] = [
    ("country", Type::String),
    ("city", Type::String),
    ("latitude", Type::Float),
    ("longitude", Type::Float),
];

/// Parses `addr/prefix` into a network address and prefix length.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn unknown_severity(word: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::UnknownSeverity,
        span,
        format!("unknown severity level `{word}`"),
    )
    .with_suggestion(word, severity::WORDS)
    .or_hint("levels are trace, debug, info, warn, error, fatal (and their usual spellings)")
}

fn list_misuse(span: Span) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::TypeMismatch,
        span,
        "a list can only appear on the right of `in`",
    )
}

fn first_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| s.lines().next().unwrap_or(""))
        .trim()
        .to_string()
}
