//! Semantic checks: resolves names, types, aggregates and window specs before
//! anything runs, and reports every problem found in one pass.
//!
//! The result, [`CheckedProgram`], carries the schema each stage sees and the
//! program with its expressions resolved (e.g. `warn` in `severity >= warn` becomes a
//! severity literal), so the engine never has to repeat the reasoning.

use crate::ast::*;
use crate::connectors::{self, ArgType, ConnectorSpec};
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::functions::{self, Param};
use crate::severity;
use crate::span::Span;
use crate::types::{Schema, Type, OFFSET, RAW, TIMESTAMP, WINDOW_END, WINDOW_START};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A source with the schema its events have after parsing.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedSource {
    pub decl: SourceDecl,
    pub format: Format,
    pub schema: Schema,
    /// Whether its positions replay after a restart (see
    /// [`ConnectorSpec::replayable`]).
    pub replayable: bool,
}

/// A pipeline with the schema seen by each stage: `schemas[i]` is the input of
/// `stages[i]`, and the last entry is the pipeline's output.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedPipeline {
    pub pipeline: Pipeline,
    pub schemas: Vec<Schema>,
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
    let source_schemas: HashMap<&str, &Schema> = sources
        .iter()
        .map(|s| (s.decl.name.name.as_str(), &s.schema))
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
        cx.archive(a, &source_names, &mut archived);
    }
    let output_names: Vec<&str> = program
        .outputs
        .iter()
        .map(|o| o.name.name.as_str())
        .chain(connectors::BUILTIN_OUTPUTS.iter().copied())
        .collect();
    let mut pipelines = Vec::new();
    for p in &program.pipelines {
        let Some(schema) = source_schemas.get(p.from.name.as_str()) else {
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
        if let Some(cp) = cx.pipeline(p, (*schema).clone(), &output_names) {
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

const STAGES: [&str; 10] = [
    "where", "set", "rename", "drop", "parse", "geoip", "window", "alert", "to", "from",
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

    fn connector(&mut self, c: &Connector, table: &[ConnectorSpec], what: &str) -> bool {
        let Some(spec) = table.iter().find(|s| s.kind == c.kind.name) else {
            let kinds: Vec<&str> = table.iter().map(|s| s.kind).collect();
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownSourceKind,
                    c.kind.span,
                    format!("unknown {what} kind `{}`", c.kind.name),
                )
                .with_suggestion(&c.kind.name, kinds.iter().copied())
                .or_hint(&format!("{what} kinds are: {}", kinds.join(", "))),
            );
            return false;
        };
        let mut ok = true;
        for a in &c.args {
            let Some(aspec) = spec.args.iter().find(|s| s.name == a.name.name) else {
                let names: Vec<&str> = spec.args.iter().map(|s| s.name).collect();
                self.push(
                    Diagnostic::new(
                        ErrorKind::UnknownArgument,
                        a.name.span,
                        format!("`{}` takes no argument `{}`", spec.kind, a.name.name),
                    )
                    .with_suggestion(&a.name.name, names.iter().copied())
                    .or_hint(&if names.is_empty() {
                        format!("`{}` takes no arguments", spec.kind)
                    } else {
                        format!("`{}` takes: {}", spec.kind, names.join(", "))
                    }),
                );
                ok = false;
                continue;
            };
            if !arg_fits(aspec.ty, &a.value) {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        a.span,
                        format!(
                            "argument `{}` must be {}, found {}",
                            a.name.name,
                            aspec.ty.describe(),
                            a.value.type_name()
                        ),
                    )
                    .with_hint(aspec.doc),
                );
                ok = false;
            }
        }
        for req in spec.args.iter().filter(|a| a.required) {
            if c.arg(req.name).is_none() {
                self.push(
                    Diagnostic::new(
                        ErrorKind::MissingArgument,
                        c.span,
                        format!("`{}` needs the argument `{}`", spec.kind, req.name),
                    )
                    .with_hint(format!("{}: {}", req.name, req.doc)),
                );
                ok = false;
            }
        }
        ok
    }

    fn field_type(&mut self, f: &FieldDecl) -> Option<Type> {
        let t = Type::from_name(&f.ty.name);
        if t.is_none() {
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownType,
                    f.ty.span,
                    format!("unknown type `{}`", f.ty.name),
                )
                .with_suggestion(&f.ty.name, Type::NAMES)
                .or_hint(&format!("types are: {}", Type::NAMES.join(", "))),
            );
        }
        t
    }

    fn source(&mut self, s: &SourceDecl) -> Option<CheckedSource> {
        let mut ok = self.connector(&s.connector, connectors::SOURCES, "source");
        let mut schema = Schema::core();
        let format = match &s.format {
            None => Format::Json,
            Some(spec) => match &spec.format {
                Some(Format::Regex(pattern)) => {
                    match self.regex_fields(pattern, spec.span) {
                        Some(names) => {
                            for n in names {
                                if schema.get(&n).is_none() {
                                    schema.push(&n, Type::String);
                                }
                            }
                        }
                        None => ok = false,
                    }
                    Format::Regex(pattern.clone())
                }
                Some(f) => f.clone(),
                None => {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::UnknownFormat,
                            spec.span,
                            format!("unknown format `{}`", spec.name),
                        )
                        .with_suggestion(&spec.name, ["json", "logfmt", "plain", "regex"])
                        .or_hint("formats are: json, logfmt, plain, regex \"...\""),
                    );
                    ok = false;
                    Format::Json
                }
            },
        };
        for f in &s.fields {
            match self.field_type(f) {
                Some(t) => {
                    if f.name.name == TIMESTAMP && t != Type::Timestamp
                        || f.name.name == OFFSET
                        || f.name.name == RAW
                    {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::TypeMismatch,
                                f.name.span,
                                format!("`{}` is a built-in field and cannot be redeclared as {t}", f.name.name),
                            )
                            .with_hint("every source has timestamp: timestamp, _offset: int and _raw: string"),
                        );
                        ok = false;
                    } else {
                        schema.push(&f.name.name, t);
                    }
                }
                None => ok = false,
            }
        }
        ok.then(|| CheckedSource {
            replayable: connectors::source(&s.connector.kind.name).is_some_and(|c| c.replayable),
            decl: s.clone(),
            format,
            schema,
        })
    }

    /// Compiles a format regex and returns its capture names.
    fn regex_fields(&mut self, pattern: &str, span: Span) -> Option<Vec<String>> {
        match regex::Regex::new(pattern) {
            Err(e) => {
                self.push(
                    Diagnostic::new(ErrorKind::InvalidRegex, span, "invalid regex")
                        .with_label(first_line(&e.to_string()))
                        .with_hint("the syntax is Rust's regex crate: https://docs.rs/regex"),
                );
                None
            }
            Ok(re) => {
                let names: Vec<String> = re.capture_names().flatten().map(String::from).collect();
                if names.is_empty() {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidRegex,
                            span,
                            "the regex has no named captures, so it would produce no fields",
                        )
                        .with_hint("name what you capture: (?P<status>\\d{3})"),
                    );
                    return None;
                }
                Some(names)
            }
        }
    }

    fn archive(&mut self, a: &ArchiveDecl, sources: &[&str], archived: &mut HashSet<String>) {
        if !sources.contains(&a.source.name.as_str()) {
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownSource,
                    a.source.span,
                    format!("cannot archive unknown source `{}`", a.source.name),
                )
                .with_suggestion(&a.source.name, sources.iter().copied()),
            );
        } else if !archived.insert(a.source.name.clone()) {
            self.push(
                Diagnostic::new(
                    ErrorKind::DuplicateArchive,
                    a.span,
                    format!("source `{}` is archived twice", a.source.name),
                )
                .with_hint("one archive per source; its events are written once"),
            );
        }
        if let Some(p) = &a.partition {
            if p.name != "hour" && p.name != "day" {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        p.span,
                        format!("cannot partition by `{}`", p.name),
                    )
                    .with_hint("partition by hour or by day"),
                );
            }
        }
        if let Some(r) = &a.raw {
            if !["full", "rest", "none"].contains(&r.name.as_str()) {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        r.span,
                        format!("`raw {}` is not an archive option", r.name),
                    )
                    .with_hint("raw rest (a JSON line's undeclared fields; the default), raw full (the whole line) or raw none"),
                );
            }
        }
        if let Some((url, span)) = &a.url {
            if let Some((scheme, _)) = url.split_once("://") {
                if !["file", "s3", "s3a", "gs", "az", "abfs", "memory"].contains(&scheme) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidArgument,
                            *span,
                            format!("unsupported archive scheme `{scheme}://`"),
                        )
                        .with_hint("use file://, s3://, gs:// or az://, or a plain folder path"),
                    );
                }
            }
        }
        if a.roll_size == Some(0) || a.roll_every == Some(0) {
            self.push(Diagnostic::new(
                ErrorKind::InvalidArgument,
                a.span,
                "archive files cannot roll at size or age zero",
            ));
        }
    }

    fn pipeline(
        &mut self,
        p: &Pipeline,
        mut schema: Schema,
        outputs: &[&str],
    ) -> Option<CheckedPipeline> {
        let errors_before = self.diags.len();
        let mut schemas = Vec::with_capacity(p.stages.len() + 1);
        let mut stages = Vec::with_capacity(p.stages.len());
        let mut windowed = false;
        for stage in &p.stages {
            schemas.push(schema.clone());
            let kind = match &stage.kind {
                StageKind::Where(e) => {
                    let (e, t) = self.expr(e, &schema, Ctx::Row);
                    self.expect_bool(&e, t, "`where`");
                    StageKind::Where(e)
                }
                StageKind::Set(assigns) => {
                    let mut out = Vec::new();
                    for a in assigns {
                        let (v, t) = self.expr(&a.value, &schema, Ctx::Row);
                        if t == Type::List {
                            self.push(list_misuse(v.span));
                        }
                        if a.name.name == TIMESTAMP && !matches!(t, Type::Timestamp | Type::Null) {
                            self.push(Diagnostic::new(
                                ErrorKind::TypeMismatch,
                                a.value.span,
                                format!("`timestamp` must stay a timestamp, this is {t}"),
                            ));
                        }
                        schema.push(&a.name.name, if t == Type::Null { Type::String } else { t });
                        out.push(Assignment {
                            name: a.name.clone(),
                            value: v,
                        });
                    }
                    StageKind::Set(out)
                }
                StageKind::Rename(pairs) => {
                    for (from, to) in pairs {
                        if schema.get(&from.name).is_none() {
                            self.unknown_field(&from.name, from.span, &schema);
                        } else {
                            schema.rename(&from.name, &to.name);
                        }
                    }
                    stage.kind.clone()
                }
                StageKind::Drop(names) => {
                    for n in names {
                        if !schema.remove(&n.name) {
                            self.unknown_field(&n.name, n.span, &schema);
                        }
                    }
                    stage.kind.clone()
                }
                StageKind::Parse {
                    field,
                    format,
                    fields,
                } => {
                    self.parse_stage(field, format, fields, &mut schema);
                    stage.kind.clone()
                }
                StageKind::Geoip { field, prefix, .. } => {
                    match schema.get(&field.name) {
                        None => self.unknown_field(&field.name, field.span, &schema),
                        Some(Type::Ip | Type::String) => {}
                        Some(t) => self.push(Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            field.span,
                            format!("geoip needs an ip or string field, `{}` is {t}", field.name),
                        )),
                    }
                    let prefix = prefix.as_ref().map(|p| p.name.as_str()).unwrap_or("geo");
                    for (suffix, t) in GEOIP_FIELDS {
                        schema.push(&format!("{prefix}_{suffix}"), t);
                    }
                    stage.kind.clone()
                }
                StageKind::Window(w) => {
                    if windowed {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::InvalidWindow,
                                stage.span,
                                "a pipeline can have only one window",
                            )
                            .with_hint(
                                "window results can feed another pipeline through an output",
                            ),
                        );
                    }
                    windowed = true;
                    let (w, out) = self.window(w, stage.span, &schema);
                    schema = out;
                    StageKind::Window(w)
                }
                StageKind::Alert(a) => {
                    if !windowed {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::AlertWithoutWindow,
                                stage.span,
                                "an alert needs a window before it",
                            )
                            .with_hint("alerts evaluate window results, e.g. `| window tumbling 1m { errors = count() } | alert \"x\" when errors > 10`"),
                        );
                    }
                    let (cond, t) = self.expr(&a.condition, &schema, Ctx::Row);
                    self.expect_bool(&cond, t, "an alert condition");
                    if let Some(sev) = &a.severity {
                        if severity::rank(&sev.name).is_none() {
                            self.push(unknown_severity(&sev.name, sev.span));
                        }
                    }
                    for (key, text) in &a.annotations {
                        for (_, name) in crate::template::placeholders(text) {
                            if schema.get(name).is_none() {
                                let names: Vec<&str> =
                                    schema.fields.iter().map(|f| f.name.as_str()).collect();
                                self.push(
                                    Diagnostic::new(
                                        ErrorKind::UnknownField,
                                        key.span,
                                        format!("annotation `{}` uses `{{{{{name}}}}}`, which is not a field of the window", key.name),
                                    )
                                    .with_suggestion(name, names.iter().copied())
                                    .or_hint(&format!("a template can use the window's fields: {}", names.join(", "))),
                                );
                            }
                        }
                    }
                    for d in [&a.for_duration, &a.resolve_after].into_iter().flatten() {
                        if d.millis == 0 {
                            self.push(
                                Diagnostic::new(
                                    ErrorKind::InvalidWindow,
                                    d.span,
                                    "the duration must be above zero",
                                )
                                .with_hint("leave `for` out to fire on the first matching window"),
                            );
                        }
                    }
                    StageKind::Alert(AlertSpec {
                        condition: cond,
                        ..a.clone()
                    })
                }
                StageKind::To(name) => {
                    if !outputs.contains(&name.name.as_str()) {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::UnknownOutput,
                                name.span,
                                format!("unknown output `{}`", name.name),
                            )
                            .with_suggestion(&name.name, outputs.iter().copied())
                            .or_hint("declare it: `output alerts = file(path: \"alerts.ndjson\")`, or use `to stdout`"),
                        );
                    }
                    stage.kind.clone()
                }
                StageKind::Unknown(word) => {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::UnknownStage,
                            word.span,
                            format!("unknown stage `{}`", word.name),
                        )
                        .with_suggestion(&word.name, STAGES)
                        .or_hint(&format!("stages are: {}", STAGES[..9].join(", "))),
                    );
                    stage.kind.clone()
                }
            };
            stages.push(Stage {
                kind,
                span: stage.span,
            });
        }
        schemas.push(schema);
        (self.diags.len() == errors_before).then(|| CheckedPipeline {
            pipeline: Pipeline {
                stages,
                ..p.clone()
            },
            schemas,
        })
    }

    fn parse_stage(
        &mut self,
        field: &Ident,
        format: &FormatSpec,
        fields: &[FieldDecl],
        schema: &mut Schema,
    ) {
        match schema.get(&field.name) {
            None => self.unknown_field(&field.name, field.span, schema),
            Some(t) if !t.is_textual() => self.push(Diagnostic::new(
                ErrorKind::TypeMismatch,
                field.span,
                format!("can only parse text, `{}` is {t}", field.name),
            )),
            _ => {}
        }
        match &format.format {
            Some(Format::Regex(p)) => {
                if let Some(names) = self.regex_fields(p, format.span) {
                    for n in names {
                        schema.push(&n, Type::String);
                    }
                }
            }
            Some(Format::Json | Format::Logfmt) => {
                if fields.is_empty() {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::MissingArgument,
                            format.span,
                            format!("`parse ... as {}` needs the fields to extract", format.name),
                        )
                        .with_hint("name them with types: `parse payload as json fields { user: string, bytes: int }`"),
                    );
                }
            }
            Some(Format::Plain) => self.push(
                Diagnostic::new(
                    ErrorKind::UnknownFormat,
                    format.span,
                    "`plain` is not a parse format",
                )
                .with_hint("parse as json, logfmt or regex \"...\""),
            ),
            None => self.push(
                Diagnostic::new(
                    ErrorKind::UnknownFormat,
                    format.span,
                    format!("unknown format `{}`", format.name),
                )
                .with_suggestion(&format.name, ["json", "logfmt", "regex"])
                .or_hint("parse as json, logfmt or regex \"...\""),
            ),
        }
        for f in fields {
            if let Some(t) = self.field_type(f) {
                schema.push(&f.name.name, t);
            }
        }
    }

    fn window(&mut self, w: &WindowSpec, span: Span, input: &Schema) -> (WindowSpec, Schema) {
        let mut out = Schema::default();
        out.push(WINDOW_START, Type::Timestamp);
        out.push(WINDOW_END, Type::Timestamp);
        if input.get(TIMESTAMP) != Some(Type::Timestamp) {
            self.push(
                Diagnostic::new(
                    ErrorKind::InvalidWindow,
                    span,
                    "windows need the event-time field `timestamp`, which an earlier stage removed",
                )
                .with_hint("do not drop or rename `timestamp` before a window"),
            );
        }
        let durations: Vec<&DurationLit> = match &w.kind {
            WindowKind::Tumbling { size } => vec![size],
            WindowKind::Sliding { size, every } => {
                if every.millis > size.millis {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidWindow,
                            every.span,
                            "a sliding window cannot slide further than its size",
                        )
                        .with_hint("use `sliding 5m every 1m`: size first, then the step"),
                    );
                } else if every.millis > 0 && size.millis % every.millis != 0 {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidWindow,
                            every.span,
                            "a sliding window's size must be a whole number of steps",
                        )
                        .with_hint("e.g. `sliding 10m every 2m`"),
                    );
                }
                vec![size, every]
            }
            WindowKind::Session { gap } => vec![gap],
        };
        for d in durations {
            if d.millis == 0 {
                self.push(Diagnostic::new(
                    ErrorKind::InvalidWindow,
                    d.span,
                    "a window duration must be greater than zero",
                ));
            }
        }
        for g in &w.group_by {
            match input.get(&g.name) {
                Some(t) => out.push(&g.name, t),
                None => self.unknown_field(&g.name, g.span, input),
            }
        }
        let mut aggregates = Vec::new();
        for a in &w.aggregates {
            if out.get(&a.name.name).is_some() {
                self.push(
                    Diagnostic::new(
                        ErrorKind::FieldCollision,
                        a.name.span,
                        format!("window output already has a field `{}`", a.name.name),
                    )
                    .with_hint("give each aggregate a name distinct from the group-by fields and window bounds"),
                );
            }
            let is_agg_call = matches!(&a.value.kind, ExprKind::Call { name, .. }
                if functions::lookup(&name.name).is_some_and(|f| f.aggregate));
            if !is_agg_call {
                self.push(
                    Diagnostic::new(
                        ErrorKind::NotAnAggregate,
                        a.value.span,
                        format!("`{}` in a window must be an aggregate", a.name.name),
                    )
                    .with_hint("use count(), count_distinct(x), sum(x), min(x), max(x), avg(x), quantile(x, 0.99), p50/p95/p99(x); compute other values after the window with `| set`"),
                );
            }
            let (v, t) = self.expr(&a.value, input, Ctx::Aggregate);
            out.push(&a.name.name, t);
            aggregates.push(Assignment {
                name: a.name.clone(),
                value: v,
            });
        }
        if w.aggregates.is_empty() {
            self.push(
                Diagnostic::new(
                    ErrorKind::NotAnAggregate,
                    span,
                    "a window needs at least one aggregate",
                )
                .with_hint("e.g. `{ events = count() }`"),
            );
        }
        (
            WindowSpec {
                aggregates,
                ..w.clone()
            },
            out,
        )
    }

    fn unknown_field(&mut self, name: &str, span: Span, schema: &Schema) {
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

    fn expect_bool(&mut self, e: &Expr, t: Type, what: &str) {
        if !matches!(t, Type::Bool | Type::Null) {
            self.push(
                Diagnostic::new(
                    ErrorKind::NotBoolean,
                    e.span,
                    format!("{what} must be true or false, this is {t}"),
                )
                .with_hint("compare it with something, e.g. `status >= 500`"),
            );
        }
    }

    /// Types an expression and returns it resolved. On error, reports and returns
    /// `Null` so that checking continues without cascades.
    fn expr(&mut self, e: &Expr, schema: &Schema, ctx: Ctx) -> (Expr, Type) {
        let span = e.span;
        let same = |kind: ExprKind, t: Type| (Expr { kind, span }, t);
        match &e.kind {
            ExprKind::Field(name) => match schema.get(name) {
                Some(t) => (e.clone(), t),
                None => {
                    if severity::rank(name).is_some() && severity::WORDS.contains(&name.as_str()) {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::UnknownField,
                                span,
                                format!("`{name}` is a severity level, not a field"),
                            )
                            .with_hint(format!("compare it with severity: `severity >= {name}`")),
                        );
                    } else {
                        self.unknown_field(name, span, schema);
                    }
                    (e.clone(), Type::Null)
                }
            },
            ExprKind::Lit(l) => {
                let t = match l {
                    Literal::Str(_) => Type::String,
                    Literal::Int(_) => Type::Int,
                    Literal::Float(_) => Type::Float,
                    Literal::Bool(_) => Type::Bool,
                    Literal::Duration(_) => Type::Duration,
                    Literal::Severity(_) => Type::Severity,
                    Literal::Null => Type::Null,
                };
                (e.clone(), t)
            }
            ExprKind::List(items) => {
                let items = items.iter().map(|i| self.expr(i, schema, ctx).0).collect();
                same(ExprKind::List(items), Type::List)
            }
            ExprKind::Unary(op, inner) => {
                let (inner, t) = self.expr(inner, schema, ctx);
                let out = match op {
                    UnaryOp::Not => {
                        self.expect_bool(&inner, t, "the operand of `not`");
                        Type::Bool
                    }
                    UnaryOp::Neg => {
                        if !(t.is_numeric() || t == Type::Duration) {
                            self.push(Diagnostic::new(
                                ErrorKind::TypeMismatch,
                                inner.span,
                                format!("cannot negate a {t}"),
                            ));
                        }
                        t
                    }
                };
                same(ExprKind::Unary(*op, Box::new(inner)), out)
            }
            ExprKind::IsNull { expr, negated } => {
                let (inner, _) = self.expr(expr, schema, ctx);
                same(
                    ExprKind::IsNull {
                        expr: Box::new(inner),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, span, schema, ctx),
            ExprKind::Call { name, args } => self.call(name, args, span, schema, ctx),
        }
    }

    /// Resolves the right side of a comparison with a severity: bare words and
    /// strings become severity literals.
    fn severity_operand(&mut self, e: &Expr, schema: &Schema) -> Option<Expr> {
        let word = match &e.kind {
            ExprKind::Field(n) if schema.get(n).is_none() => n,
            ExprKind::Lit(Literal::Str(s)) => s,
            _ => return None,
        };
        match severity::rank(word) {
            Some(r) => Some(Expr {
                kind: ExprKind::Lit(Literal::Severity(r)),
                span: e.span,
            }),
            None => {
                self.push(unknown_severity(word, e.span));
                Some(Expr {
                    kind: ExprKind::Lit(Literal::Null),
                    span: e.span,
                })
            }
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        span: Span,
        schema: &Schema,
        ctx: Ctx,
    ) -> (Expr, Type) {
        let (le, lt) = self.expr(l, schema, ctx);
        // Severity comparisons accept bare level words on the right.
        // An unknown field on the left was already reported: a severity word on
        // the right then only repeats the mistake.
        let left_unknown = lt == Type::Null && matches!(l.kind, ExprKind::Field(_));
        let (re, rt) = if (lt == Type::Severity || left_unknown)
            && (op.is_comparison() || matches!(op, BinaryOp::In | BinaryOp::NotIn))
        {
            match &r.kind {
                ExprKind::List(items) => {
                    let items: Vec<Expr> = items
                        .iter()
                        .map(|i| {
                            self.severity_operand(i, schema)
                                .unwrap_or_else(|| self.expr(i, schema, ctx).0)
                        })
                        .collect();
                    (
                        Expr {
                            kind: ExprKind::List(items),
                            span: r.span,
                        },
                        Type::List,
                    )
                }
                _ => match self.severity_operand(r, schema) {
                    Some(e) => (e, Type::Severity),
                    None => self.expr(r, schema, ctx),
                },
            }
        } else {
            self.expr(r, schema, ctx)
        };
        let mismatch = |cx: &mut Checker, hint: &str| {
            cx.push(
                Diagnostic::new(
                    ErrorKind::TypeMismatch,
                    span,
                    format!("cannot apply `{}` to {lt} and {rt}", op.symbol()),
                )
                .with_hint(hint),
            );
        };
        let out = match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_bool(&le, lt, &format!("the left side of `{}`", op.symbol()));
                self.expect_bool(&re, rt, &format!("the right side of `{}`", op.symbol()));
                Type::Bool
            }
            _ if op.is_comparison() => {
                if !comparable(lt, rt, &re) {
                    mismatch(
                        self,
                        "compare values of the same type; convert with to_int(), to_float() or to_string()",
                    );
                }
                Type::Bool
            }
            BinaryOp::Match | BinaryOp::NotMatch => {
                if !lt.is_textual() {
                    mismatch(self, "regex matching works on text fields");
                }
                match &re.kind {
                    ExprKind::Lit(Literal::Str(p)) => {
                        if let Err(err) = regex::Regex::new(p) {
                            self.push(
                                Diagnostic::new(ErrorKind::InvalidRegex, re.span, "invalid regex")
                                    .with_label(first_line(&err.to_string()))
                                    .with_hint(
                                        "the syntax is Rust's regex crate: https://docs.rs/regex",
                                    ),
                            );
                        }
                    }
                    _ => self.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            re.span,
                            "the right side of a regex match must be a string literal",
                        )
                        .with_hint("e.g. `message =~ \"timeout after \\\\d+ms\"`"),
                    ),
                }
                Type::Bool
            }
            BinaryOp::In | BinaryOp::NotIn => {
                match &re.kind {
                    ExprKind::List(items) => {
                        for i in items {
                            let it = self.literal_type(i);
                            if !comparable(lt, it, i) {
                                self.push(
                                    Diagnostic::new(
                                        ErrorKind::TypeMismatch,
                                        i.span,
                                        format!("list item is {it}, but the value is {lt}"),
                                    )
                                    .with_hint("every item of the list must have the type of the value left of `in`"),
                                );
                            }
                            if !matches!(i.kind, ExprKind::Lit(_)) {
                                self.push(Diagnostic::new(
                                    ErrorKind::TypeMismatch,
                                    i.span,
                                    "list items must be literal values",
                                ));
                            }
                        }
                    }
                    _ => self.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            re.span,
                            "`in` needs a list on its right",
                        )
                        .with_hint("e.g. `status in [500, 502, 503]`"),
                    ),
                }
                Type::Bool
            }
            BinaryOp::Contains => {
                if !(lt.is_textual() && rt.is_textual()) {
                    mismatch(self, "`contains` looks for text in text");
                }
                Type::Bool
            }
            _ => {
                // Arithmetic.
                use Type::*;
                match (op, lt, rt) {
                    (_, Int, Int) => Int,
                    (_, Int | Float | Null, Int | Float | Null) => Float,
                    (BinaryOp::Add | BinaryOp::Sub, Timestamp, Duration) => Timestamp,
                    (BinaryOp::Sub, Timestamp, Timestamp) => Duration,
                    (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
                    _ => {
                        mismatch(
                            self,
                            "arithmetic works on numbers, and on timestamps with durations",
                        );
                        Null
                    }
                }
            }
        };
        (
            Expr {
                kind: ExprKind::Binary(op, Box::new(le), Box::new(re)),
                span,
            },
            out,
        )
    }

    fn literal_type(&self, e: &Expr) -> Type {
        match &e.kind {
            ExprKind::Lit(Literal::Str(_)) => Type::String,
            ExprKind::Lit(Literal::Int(_)) => Type::Int,
            ExprKind::Lit(Literal::Float(_)) => Type::Float,
            ExprKind::Lit(Literal::Bool(_)) => Type::Bool,
            ExprKind::Lit(Literal::Duration(_)) => Type::Duration,
            ExprKind::Lit(Literal::Severity(_)) => Type::Severity,
            _ => Type::Null,
        }
    }

    fn call(
        &mut self,
        name: &Ident,
        args: &[Expr],
        span: Span,
        schema: &Schema,
        ctx: Ctx,
    ) -> (Expr, Type) {
        let Some(sig) = functions::lookup(&name.name) else {
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownFunction,
                    name.span,
                    format!("unknown function `{}`", name.name),
                )
                .with_suggestion(&name.name, functions::names())
                .or_hint("see docs/language.md for the functions"),
            );
            return (
                Expr {
                    kind: ExprKind::Call {
                        name: name.clone(),
                        args: args.to_vec(),
                    },
                    span,
                },
                Type::Null,
            );
        };
        if sig.aggregate && ctx != Ctx::Aggregate {
            self.push(
                Diagnostic::new(
                    ErrorKind::AggregateOutsideWindow,
                    span,
                    format!("aggregate `{}` can only be used inside a window", sig.name),
                )
                .with_hint(
                    "aggregate in a window: `| window tumbling 1m { n = count() }`, then use `n`",
                ),
            );
        }
        let arity_ok = if sig.variadic {
            args.len() >= sig.params.len()
        } else {
            args.len() == sig.params.len()
        };
        if !arity_ok {
            self.push(
                Diagnostic::new(
                    ErrorKind::WrongArity,
                    span,
                    format!(
                        "`{}` takes {} argument{}, found {}",
                        sig.name,
                        sig.arity_text(),
                        if sig.params.len() == 1 && !sig.variadic {
                            ""
                        } else {
                            "s"
                        },
                        args.len()
                    ),
                )
                .with_hint(sig.doc),
            );
        }
        // Arguments of an aggregate are row expressions.
        let arg_ctx = if sig.aggregate { Ctx::Row } else { ctx };
        let mut typed = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            let (a2, t) = self.expr(a, schema, arg_ctx);
            let param = sig
                .params
                .get(i)
                .or(if sig.variadic {
                    sig.params.last()
                } else {
                    None
                })
                .copied();
            if let Some(p) = param {
                if !p.accepts(t) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            a.span,
                            format!(
                                "argument {} of `{}` must be {}, found {t}",
                                i + 1,
                                sig.name,
                                p.describe()
                            ),
                        )
                        .with_hint(sig.doc),
                    );
                } else if p == Param::StrLit && !matches!(a2.kind, ExprKind::Lit(Literal::Str(_))) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidArgument,
                            a.span,
                            format!(
                                "argument {} of `{}` must be a string literal",
                                i + 1,
                                sig.name
                            ),
                        )
                        .with_hint(sig.doc),
                    );
                } else if p == Param::Fraction {
                    let q = match a2.kind {
                        ExprKind::Lit(Literal::Float(f)) => Some(f),
                        ExprKind::Lit(Literal::Int(i)) => Some(i as f64),
                        _ => None,
                    };
                    if !q.is_some_and(|q| (0.0..=1.0).contains(&q)) {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::InvalidQuantile,
                                a.span,
                                "a quantile must be a number literal between 0 and 1",
                            )
                            .with_hint("e.g. quantile(latency_ms, 0.99) for the 99th percentile"),
                        );
                    }
                }
            }
            typed.push(a2);
            types.push(t);
        }
        if sig.name == "cidr_match" {
            if let Some(ExprKind::Lit(Literal::Str(net))) = typed.get(1).map(|e| &e.kind) {
                if parse_cidr(net).is_none() {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidArgument,
                            typed[1].span,
                            format!("`{net}` is not a network"),
                        )
                        .with_hint("write a network as address/prefix, e.g. \"10.0.0.0/8\" or \"2001:db8::/32\""),
                    );
                }
            }
        }
        let out = sig.result_type(&types);
        (
            Expr {
                kind: ExprKind::Call {
                    name: name.clone(),
                    args: typed,
                },
                span,
            },
            out,
        )
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

fn comparable(l: Type, r: Type, r_expr: &Expr) -> bool {
    use Type::*;
    match (l, r) {
        (Null, _) | (_, Null) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Severity, Severity) => true,
        (Severity, _) | (_, Severity) => false,
        (a, b) if a.is_textual() && b.is_textual() => true,
        // `timestamp > "2026-01-01T00:00:00Z"`
        (Timestamp, String) => matches!(r_expr.kind, ExprKind::Lit(Literal::Str(_))),
        (a, b) => a == b && a != List,
    }
}

fn arg_fits(ty: ArgType, v: &ArgValue) -> bool {
    match (ty, v) {
        (ArgType::Any, _) => true,
        (ArgType::Str, ArgValue::Str(_)) => true,
        (ArgType::Int, ArgValue::Int(i)) => *i >= 0,
        (ArgType::Bool, ArgValue::Bool(_)) => true,
        (ArgType::Duration, ArgValue::Duration(_)) => true,
        (ArgType::Size, ArgValue::Size(_)) => true,
        (ArgType::StrOrList, ArgValue::Str(_)) => true,
        (ArgType::StrOrList, ArgValue::List(items)) => {
            !items.is_empty() && items.iter().all(|i| matches!(i, ArgValue::Str(_)))
        }
        (ArgType::Word(words), ArgValue::Ident(w)) => words.contains(&w.as_str()),
        _ => false,
    }
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
