//! Turns `.rules` text into a [`Program`] with the pest grammar in `rules.pest`.
//!
//! On a syntax error the file is cut into its top-level items (`source`, `output`,
//! `archive`, `pipeline`) and each item is parsed on its own, so one pass reports the
//! first syntax error of every broken item rather than only the first of the file.

use crate::ast::*;
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::span::Span;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;
use pest_derive::Parser;
use std::sync::OnceLock;

#[derive(Parser)]
#[grammar = "rules.pest"]
struct RulesParser;

/// Parses a whole `.rules` text.
pub fn parse(text: &str) -> Result<Program, Vec<Diagnostic>> {
    crate::limits::check(text).map_err(|d| vec![d])?;
    match RulesParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let mut program = Program::default();
            if let Some(file) = pairs.next() {
                for item in file.into_inner() {
                    add_item(&mut program, item, 0);
                }
            }
            Ok(program)
        }
        Err(_) => Err(recover(text)),
    }
}

/// Re-parses each top-level item separately and collects every item's error.
fn recover(text: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let starts = item_starts(text);
    if starts.is_empty() {
        if let Err(e) = RulesParser::parse(Rule::file, text) {
            diags.push(syntax_diagnostic(e, 0));
        }
        return diags;
    }
    // Text before the first item keyword is itself an error.
    if let Some(&first) = starts.first() {
        if !text[..first].trim().is_empty() && !only_comments(&text[..first]) {
            if let Err(e) = RulesParser::parse(Rule::file, &text[..first]) {
                diags.push(syntax_diagnostic(e, 0));
            }
        }
    }
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let chunk = &text[start..end];
        if let Err(e) = RulesParser::parse(Rule::item_only, chunk) {
            diags.push(syntax_diagnostic(e, start));
        }
    }
    if diags.is_empty() {
        // The items parse alone but not together; report the whole-file error.
        if let Err(e) = RulesParser::parse(Rule::file, text) {
            diags.push(syntax_diagnostic(e, 0));
        }
    }
    diags
}

fn only_comments(s: &str) -> bool {
    s.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with("//") || t.starts_with('#')
    })
}

/// Byte offsets of lines that start (after indentation) with a top-level keyword,
/// outside braces.
fn item_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth: i32 = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if depth <= 0 {
            for kw in ["source", "output", "archive", "pipeline"] {
                if trimmed.starts_with(kw)
                    && trimmed[kw.len()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_whitespace)
                {
                    starts.push(offset + indent);
                    depth = 0;
                    break;
                }
            }
        }
        let code = trimmed.split("//").next().unwrap_or("");
        let mut in_str = false;
        for c in code.chars() {
            match c {
                '"' => in_str = !in_str,
                '{' if !in_str => depth += 1,
                '}' if !in_str => depth -= 1,
                _ => {}
            }
        }
        offset += line.len();
    }
    starts
}

fn friendly(rule: &Rule) -> String {
    let s = match rule {
        Rule::EOI => "end of file",
        Rule::pipe => "`|` and a stage",
        Rule::rbrace => "`}`",
        Rule::name | Rule::ident => "a name",
        Rule::string | Rule::str_inner => "a string",
        Rule::duration => "a duration (e.g. 30s, 5m, 1h)",
        Rule::size => "a size (e.g. 128MB)",
        Rule::int => "an integer",
        Rule::float => "a number",
        Rule::expr => "an expression",
        Rule::source_decl => "`source`",
        Rule::output_decl => "`output`",
        Rule::archive_decl => "`archive`",
        Rule::pipeline_decl => "`pipeline`",
        Rule::connector => "a connector like kafka(...)",
        Rule::named_arg => "an argument like `name: value`",
        Rule::format_clause => "`format`",
        Rule::fields_block => "`fields { ... }`",
        Rule::field_decl => "a field like `name: type`",
        Rule::from_clause => "`from SOURCE`",
        Rule::where_stage
        | Rule::set_stage
        | Rule::rename_stage
        | Rule::drop_stage
        | Rule::parse_stage
        | Rule::geoip_stage
        | Rule::window_stage
        | Rule::alert_stage
        | Rule::to_stage
        | Rule::bad_stage => "a stage",
        Rule::window_kind | Rule::tumbling | Rule::sliding | Rule::session => {
            "a window kind (tumbling, sliding, session)"
        }
        Rule::assignment => "an assignment like `name = expr`",
        Rule::archive_option
        | Rule::partition_opt
        | Rule::roll_size_opt
        | Rule::roll_time_opt
        | Rule::raw_opt => "an archive option (partition by, roll at, roll every, raw)",
        Rule::alert_severity
        | Rule::alert_labels
        | Rule::alert_notify
        | Rule::alert_for
        | Rule::alert_resolve
        | Rule::alert_annotations => {
            "an alert option (for, resolve after, severity, labels, annotations, notify)"
        }
        Rule::eq
        | Rule::ne
        | Rule::ge
        | Rule::le
        | Rule::gt
        | Rule::lt
        | Rule::re_match
        | Rule::re_not_match
        | Rule::in_op
        | Rule::not_in_op
        | Rule::contains_op
        | Rule::matches_op
        | Rule::and_op
        | Rule::or_op
        | Rule::add
        | Rule::sub
        | Rule::mul
        | Rule::div
        | Rule::rem => "an operator",
        Rule::is_null | Rule::is_not_null => "`is null`",
        Rule::list => "a list",
        Rule::neg => "`-`",
        Rule::not_op => "`not`",
        Rule::boolean => "true or false",
        Rule::null => "null",
        Rule::call => "a function call",
        Rule::field => "a field",
        Rule::group_by => "`by`",
        Rule::lateness => "`lateness`",
        Rule::max_keys => "`max_keys`",
        other => return format!("{other:?}").replace('_', " "),
    };
    s.to_string()
}

fn syntax_diagnostic(e: pest::error::Error<Rule>, base: usize) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let (start, end) = match e.location {
        InputLocation::Pos(p) => (p, p + 1),
        InputLocation::Span((s, e)) => (s, e.max(s + 1)),
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<String> = positives.iter().map(friendly).collect();
            names.sort();
            names.dedup();
            match names.len() {
                0 => "syntax error".to_string(),
                1 => format!("syntax error: expected {}", names[0]),
                _ => {
                    let last = names.pop().unwrap_or_default();
                    format!("syntax error: expected {} or {last}", names.join(", "))
                }
            }
        }
        ErrorVariant::CustomError { message } => format!("syntax error: {message}"),
    };
    let span = Span::new(base + start, base + end);
    let hint = syntax_hint(&message);
    let d = Diagnostic::new(ErrorKind::Syntax, span, message).with_label("here");
    match hint {
        Some(h) => d.with_hint(h),
        None => d,
    }
}

fn syntax_hint(message: &str) -> Option<&'static str> {
    if message.contains("a field") {
        Some("an expression compares fields and values, e.g. `status >= 500 and service == \"api\"`; strings need closing quotes")
    } else if message.contains("a stage") {
        Some("pipeline stages start with `|`, e.g. `| where ...`, `| set x = ...`, `| window tumbling 1m { n = count() }`")
    } else if message.contains("`from SOURCE`") {
        Some("a pipeline starts with `from SOURCE_NAME`")
    } else if message.contains("a duration") {
        Some("durations are a number and a unit: ms, s, m, h, d, w")
    } else if message.contains("an expression") {
        Some(
            "an expression compares fields and values, e.g. `status >= 500 and service == \"api\"`",
        )
    } else {
        None
    }
}

fn span_of(pair: &Pair<'_, Rule>, base: usize) -> Span {
    let s = Span::from_pest(pair.as_span());
    Span::new(s.start + base, s.end + base)
}

fn ident(pair: Pair<'_, Rule>, base: usize) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span_of(&pair, base),
    }
}

fn next<'a>(pairs: &mut Pairs<'a, Rule>) -> Option<Pair<'a, Rule>> {
    pairs.next()
}

fn add_item(program: &mut Program, item: Pair<'_, Rule>, base: usize) {
    let span = span_of(&item, base);
    match item.as_rule() {
        Rule::source_decl => {
            let mut inner = item.into_inner();
            let (Some(name), Some(conn)) = (next(&mut inner), next(&mut inner)) else {
                return;
            };
            let mut decl = SourceDecl {
                name: ident(name, base),
                connector: connector(conn, base),
                format: None,
                fields: Vec::new(),
                span,
            };
            for p in inner {
                match p.as_rule() {
                    Rule::format_clause => {
                        if let Some(f) = p.into_inner().next() {
                            decl.format = Some(format_spec(f, base));
                        }
                    }
                    Rule::fields_block => decl.fields = fields_block(p, base),
                    _ => {}
                }
            }
            program.sources.push(decl);
        }
        Rule::output_decl => {
            let mut inner = item.into_inner();
            let (Some(name), Some(conn)) = (next(&mut inner), next(&mut inner)) else {
                return;
            };
            program.outputs.push(OutputDecl {
                name: ident(name, base),
                connector: connector(conn, base),
                span,
            });
        }
        Rule::archive_decl => {
            let mut inner = item.into_inner();
            let Some(source) = next(&mut inner) else {
                return;
            };
            let mut decl = ArchiveDecl {
                source: ident(source, base),
                url: None,
                partition: None,
                raw: None,
                roll_size: None,
                roll_every: None,
                span,
            };
            for p in inner {
                match p.as_rule() {
                    Rule::string => decl.url = Some((unquote(p.as_str()), span_of(&p, base))),
                    Rule::archive_option => {
                        let Some(opt) = p.into_inner().next() else {
                            continue;
                        };
                        let rule = opt.as_rule();
                        let Some(v) = opt.into_inner().next() else {
                            continue;
                        };
                        match rule {
                            Rule::partition_opt => decl.partition = Some(ident(v, base)),
                            Rule::raw_opt => decl.raw = Some(ident(v, base)),
                            Rule::roll_size_opt => decl.roll_size = Some(parse_size(v.as_str())),
                            Rule::roll_time_opt => {
                                decl.roll_every = Some(parse_duration(v.as_str()))
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            program.archives.push(decl);
        }
        Rule::pipeline_decl => {
            let mut inner = item.into_inner();
            let (Some(name), Some(from)) = (next(&mut inner), next(&mut inner)) else {
                return;
            };
            let Some(from_ident) = from.into_inner().next() else {
                return;
            };
            let stages = inner
                .filter(|p| !matches!(p.as_rule(), Rule::pipe | Rule::rbrace))
                .map(|s| stage(s, base))
                .collect();
            program.pipelines.push(Pipeline {
                name: ident(name, base),
                from: ident(from_ident, base),
                stages,
                span,
            });
        }
        _ => {}
    }
}

fn connector(pair: Pair<'_, Rule>, base: usize) -> Connector {
    let span = span_of(&pair, base);
    let mut inner = pair.into_inner();
    let kind = inner
        .next()
        .map(|p| ident(p, base))
        .unwrap_or_else(|| Ident {
            name: String::new(),
            span,
        });
    let args = inner
        .filter_map(|arg| {
            let arg_span = span_of(&arg, base);
            let mut parts = arg.into_inner();
            let name = ident(parts.next()?, base);
            let value = arg_value(parts.next()?);
            Some(Arg {
                name,
                value,
                span: arg_span,
            })
        })
        .collect();
    Connector { kind, args, span }
}

fn arg_value(pair: Pair<'_, Rule>) -> ArgValue {
    let s = pair.as_str();
    match pair.as_rule() {
        Rule::string => ArgValue::Str(unquote(s)),
        Rule::int => s.parse().map(ArgValue::Int).unwrap_or(ArgValue::Null),
        Rule::float => s.parse().map(ArgValue::Float).unwrap_or(ArgValue::Null),
        Rule::boolean => ArgValue::Bool(s == "true"),
        Rule::duration => ArgValue::Duration(parse_duration(s)),
        Rule::size => ArgValue::Size(parse_size(s)),
        Rule::ident => ArgValue::Ident(s.to_string()),
        Rule::arg_list => ArgValue::List(pair.into_inner().map(arg_value).collect()),
        _ => ArgValue::Null,
    }
}

fn format_spec(pair: Pair<'_, Rule>, base: usize) -> FormatSpec {
    let span = span_of(&pair, base);
    match pair.as_rule() {
        Rule::fmt_regex => {
            let pattern = pair
                .into_inner()
                .next()
                .map(|p| unquote(p.as_str()))
                .unwrap_or_default();
            FormatSpec {
                format: Some(Format::Regex(pattern)),
                name: "regex".into(),
                span,
            }
        }
        _ => {
            let name = pair.as_str().trim().to_string();
            let format = match name.as_str() {
                "json" => Some(Format::Json),
                "logfmt" | "kv" => Some(Format::Logfmt),
                "plain" | "text" => Some(Format::Plain),
                _ => None,
            };
            FormatSpec { format, name, span }
        }
    }
}

fn fields_block(pair: Pair<'_, Rule>, base: usize) -> Vec<FieldDecl> {
    pair.into_inner()
        .filter_map(|f| {
            let mut parts = f.into_inner();
            Some(FieldDecl {
                name: ident(parts.next()?, base),
                ty: ident(parts.next()?, base),
            })
        })
        .collect()
}

fn duration_lit(pair: Pair<'_, Rule>, base: usize) -> DurationLit {
    DurationLit {
        millis: parse_duration(pair.as_str()),
        span: span_of(&pair, base),
    }
}

fn stage(pair: Pair<'_, Rule>, base: usize) -> Stage {
    let span = span_of(&pair, base);
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    let kind = match rule {
        Rule::where_stage => match inner.next() {
            Some(e) => StageKind::Where(expr(e, base)),
            None => StageKind::Unknown(Ident {
                name: "where".into(),
                span,
            }),
        },
        Rule::set_stage => StageKind::Set(inner.filter_map(|a| assignment(a, base)).collect()),
        Rule::rename_stage => StageKind::Rename(
            inner
                .filter_map(|p| {
                    let mut parts = p.into_inner();
                    Some((ident(parts.next()?, base), ident(parts.next()?, base)))
                })
                .collect(),
        ),
        Rule::drop_stage => StageKind::Drop(inner.map(|p| ident(p, base)).collect()),
        Rule::parse_stage => {
            let field = inner.next().map(|p| ident(p, base));
            let format = inner
                .next()
                .and_then(|p| p.into_inner().next())
                .map(|p| format_spec(p, base));
            let fields = inner
                .next()
                .map(|p| fields_block(p, base))
                .unwrap_or_default();
            match (field, format) {
                (Some(field), Some(format)) => StageKind::Parse {
                    field,
                    format,
                    fields,
                },
                _ => StageKind::Unknown(Ident {
                    name: "parse".into(),
                    span,
                }),
            }
        }
        Rule::geoip_stage => {
            let field = inner.next().map(|p| ident(p, base));
            let db = inner
                .next()
                .map(|p| (unquote(p.as_str()), span_of(&p, base)));
            let prefix = inner.next().map(|p| ident(p, base));
            match (field, db) {
                (Some(field), Some(database)) => StageKind::Geoip {
                    field,
                    database,
                    prefix,
                },
                _ => StageKind::Unknown(Ident {
                    name: "geoip".into(),
                    span,
                }),
            }
        }
        Rule::window_stage => {
            let mut spec = WindowSpec {
                kind: WindowKind::Tumbling {
                    size: DurationLit { millis: 0, span },
                },
                group_by: Vec::new(),
                lateness: None,
                max_keys: None,
                aggregates: Vec::new(),
            };
            for p in inner {
                match p.as_rule() {
                    Rule::window_kind => {
                        if let Some(k) = p.into_inner().next() {
                            let r = k.as_rule();
                            let mut d = k.into_inner().map(|d| duration_lit(d, base));
                            spec.kind = match (r, d.next(), d.next()) {
                                (Rule::tumbling, Some(size), _) => WindowKind::Tumbling { size },
                                (Rule::sliding, Some(size), Some(every)) => {
                                    WindowKind::Sliding { size, every }
                                }
                                (Rule::session, Some(gap), _) => WindowKind::Session { gap },
                                _ => spec.kind,
                            };
                        }
                    }
                    Rule::group_by => {
                        spec.group_by = p.into_inner().map(|g| ident(g, base)).collect()
                    }
                    Rule::lateness => {
                        spec.lateness = p.into_inner().next().map(|d| duration_lit(d, base))
                    }
                    Rule::max_keys => {
                        spec.max_keys = p.into_inner().next().and_then(|n| n.as_str().parse().ok())
                    }
                    Rule::assignment => {
                        if let Some(a) = assignment(p, base) {
                            spec.aggregates.push(a);
                        }
                    }
                    _ => {}
                }
            }
            StageKind::Window(spec)
        }
        Rule::alert_stage => {
            let name = inner.next();
            let cond = inner.next();
            match (name, cond) {
                (Some(name), Some(cond)) => {
                    let mut spec = AlertSpec {
                        name: unquote(name.as_str()),
                        name_span: span_of(&name, base),
                        condition: expr(cond, base),
                        severity: None,
                        labels: Vec::new(),
                        notify: Vec::new(),
                        for_duration: None,
                        resolve_after: None,
                        annotations: Vec::new(),
                    };
                    for opt in inner {
                        match opt.as_rule() {
                            Rule::alert_severity => {
                                spec.severity = opt.into_inner().next().map(|p| ident(p, base))
                            }
                            Rule::alert_labels | Rule::alert_annotations => {
                                let into = if opt.as_rule() == Rule::alert_labels {
                                    &mut spec.labels
                                } else {
                                    &mut spec.annotations
                                };
                                for l in opt.into_inner() {
                                    let mut parts = l.into_inner();
                                    if let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                                        into.push((ident(k, base), unquote(v.as_str())));
                                    }
                                }
                            }
                            Rule::alert_for => {
                                spec.for_duration =
                                    opt.into_inner().next().map(|p| duration_lit(p, base))
                            }
                            Rule::alert_resolve => {
                                spec.resolve_after =
                                    opt.into_inner().next().map(|p| duration_lit(p, base))
                            }
                            Rule::alert_notify => {
                                spec.notify = opt.into_inner().map(|p| ident(p, base)).collect()
                            }
                            _ => {}
                        }
                    }
                    StageKind::Alert(spec)
                }
                _ => StageKind::Unknown(Ident {
                    name: "alert".into(),
                    span,
                }),
            }
        }
        Rule::to_stage => match inner.next() {
            Some(p) => StageKind::To(ident(p, base)),
            None => StageKind::Unknown(Ident {
                name: "to".into(),
                span,
            }),
        },
        _ => {
            let word = inner.next().map(|p| ident(p, base)).unwrap_or(Ident {
                name: String::new(),
                span,
            });
            StageKind::Unknown(word)
        }
    };
    Stage { kind, span }
}

fn assignment(pair: Pair<'_, Rule>, base: usize) -> Option<Assignment> {
    let mut parts = pair.into_inner();
    Some(Assignment {
        name: ident(parts.next()?, base),
        value: expr(parts.next()?, base),
    })
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::or_op, Assoc::Left))
            .op(Op::infix(Rule::and_op, Assoc::Left))
            .op(Op::prefix(Rule::not_op))
            .op(Op::infix(Rule::eq, Assoc::Left)
                | Op::infix(Rule::ne, Assoc::Left)
                | Op::infix(Rule::lt, Assoc::Left)
                | Op::infix(Rule::le, Assoc::Left)
                | Op::infix(Rule::gt, Assoc::Left)
                | Op::infix(Rule::ge, Assoc::Left)
                | Op::infix(Rule::re_match, Assoc::Left)
                | Op::infix(Rule::re_not_match, Assoc::Left)
                | Op::infix(Rule::matches_op, Assoc::Left)
                | Op::infix(Rule::in_op, Assoc::Left)
                | Op::infix(Rule::not_in_op, Assoc::Left)
                | Op::infix(Rule::contains_op, Assoc::Left))
            .op(Op::postfix(Rule::is_null) | Op::postfix(Rule::is_not_null))
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::rem, Assoc::Left))
            .op(Op::prefix(Rule::neg))
    })
}

fn expr(pair: Pair<'_, Rule>, base: usize) -> Expr {
    pratt()
        .map_primary(|p| primary(p, base))
        .map_prefix(|op, rhs| {
            let span = span_of(&op, base).join(rhs.span);
            let u = if op.as_rule() == Rule::not_op {
                UnaryOp::Not
            } else {
                UnaryOp::Neg
            };
            Expr {
                kind: ExprKind::Unary(u, Box::new(rhs)),
                span,
            }
        })
        .map_postfix(|lhs, op| {
            let span = lhs.span.join(span_of(&op, base));
            Expr {
                kind: ExprKind::IsNull {
                    expr: Box::new(lhs),
                    negated: op.as_rule() == Rule::is_not_null,
                },
                span,
            }
        })
        .map_infix(|lhs, op, rhs| {
            let span = lhs.span.join(rhs.span);
            let b = match op.as_rule() {
                Rule::or_op => BinaryOp::Or,
                Rule::and_op => BinaryOp::And,
                Rule::eq => BinaryOp::Eq,
                Rule::ne => BinaryOp::Ne,
                Rule::lt => BinaryOp::Lt,
                Rule::le => BinaryOp::Le,
                Rule::gt => BinaryOp::Gt,
                Rule::ge => BinaryOp::Ge,
                Rule::re_match | Rule::matches_op => BinaryOp::Match,
                Rule::re_not_match => BinaryOp::NotMatch,
                Rule::in_op => BinaryOp::In,
                Rule::not_in_op => BinaryOp::NotIn,
                Rule::contains_op => BinaryOp::Contains,
                Rule::add => BinaryOp::Add,
                Rule::sub => BinaryOp::Sub,
                Rule::mul => BinaryOp::Mul,
                Rule::div => BinaryOp::Div,
                _ => BinaryOp::Rem,
            };
            Expr {
                kind: ExprKind::Binary(b, Box::new(lhs), Box::new(rhs)),
                span,
            }
        })
        .parse(pair.into_inner())
}

fn primary(pair: Pair<'_, Rule>, base: usize) -> Expr {
    let span = span_of(&pair, base);
    let s = pair.as_str();
    let kind = match pair.as_rule() {
        Rule::expr => return expr(pair, base),
        Rule::field => ExprKind::Field(s.to_string()),
        Rule::string => ExprKind::Lit(Literal::Str(unquote(s))),
        Rule::int => s
            .parse()
            .map(|v| ExprKind::Lit(Literal::Int(v)))
            .unwrap_or(ExprKind::Lit(Literal::Null)),
        Rule::float => s
            .parse()
            .map(|v| ExprKind::Lit(Literal::Float(v)))
            .unwrap_or(ExprKind::Lit(Literal::Null)),
        Rule::boolean => ExprKind::Lit(Literal::Bool(s == "true")),
        Rule::null => ExprKind::Lit(Literal::Null),
        Rule::duration => ExprKind::Lit(Literal::Duration(parse_duration(s) as i64)),
        Rule::size => ExprKind::Lit(Literal::Int(parse_size(s) as i64)),
        Rule::list => ExprKind::List(pair.into_inner().map(|e| expr(e, base)).collect()),
        Rule::call => {
            let mut inner = pair.into_inner();
            let name = inner.next().map(|p| ident(p, base)).unwrap_or(Ident {
                name: String::new(),
                span,
            });
            ExprKind::Call {
                name,
                args: inner.map(|e| expr(e, base)).collect(),
            }
        }
        _ => ExprKind::Lit(Literal::Null),
    };
    Expr { kind, span }
}

/// Removes the quotes of a string literal and resolves `\"`, `\\`, `\n`, `\t`.
/// Other escapes are kept as written so regexes like `"\d+"` read naturally.
pub fn unquote(s: &str) -> String {
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Milliseconds in a duration literal such as `500ms`, `30s`, `5m`, `1h`, `2d`, `1w`.
pub fn parse_duration(s: &str) -> u64 {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits_end].parse().unwrap_or(u64::MAX);
    let unit = match &s[digits_end..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => 1,
    };
    n.saturating_mul(unit)
}

/// Bytes in a size literal such as `128MB` or `1GiB`.
pub fn parse_size(s: &str) -> u64 {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits_end].parse().unwrap_or(u64::MAX);
    let unit: u64 = match &s[digits_end..] {
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => 1,
    };
    n.saturating_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let text = r#"
source app = generator(rate: 1000) format json fields { latency_ms: float }
pipeline checkout_errors {
  from app
  | where service == "checkout" and severity >= warn
  | set team = lookup("teams.csv", service, "team")
  | window tumbling 1m by service, environment lateness 30s { errors = count(), p99 = quantile(latency_ms, 0.99) }
  | alert "checkout error burst" when errors > 50 severity critical notify [oncall]
}
archive app to "file://./weir-data/archive" partition by hour
"#;
        let p = parse(text).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(p.sources.len(), 1);
        assert_eq!(p.pipelines[0].stages.len(), 4);
        assert_eq!(
            p.archives[0].partition.as_ref().map(|i| i.name.as_str()),
            Some("hour")
        );
        match &p.pipelines[0].stages[0].kind {
            StageKind::Where(e) => match &e.kind {
                ExprKind::Binary(BinaryOp::And, l, _) => {
                    assert!(matches!(l.kind, ExprKind::Binary(BinaryOp::Eq, _, _)))
                }
                other => panic!("bad precedence: {other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arithmetic_binds_tighter_than_comparison() {
        let p = parse("pipeline p { from a | where x + 1 * 2 > 3 or not y is null }")
            .unwrap_or_else(|d| panic!("{d:?}"));
        let StageKind::Where(e) = &p.pipelines[0].stages[0].kind else {
            panic!()
        };
        let ExprKind::Binary(BinaryOp::Or, l, r) = &e.kind else {
            panic!("{e:?}")
        };
        assert!(matches!(l.kind, ExprKind::Binary(BinaryOp::Gt, _, _)));
        assert!(matches!(r.kind, ExprKind::Unary(UnaryOp::Not, _)));
    }

    #[test]
    fn reports_one_error_per_broken_item() {
        let text = "source a = file(path: \"x\") format json\npipeline p {\n  from a\n  | where x ==\n}\npipeline q {\n  from a\n  | window tumbling { n = count() }\n}\n";
        let errs = parse(text).err().unwrap_or_default();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.kind == ErrorKind::Syntax));
    }

    #[test]
    fn literals() {
        assert_eq!(parse_duration("5m"), 300_000);
        assert_eq!(parse_duration("250ms"), 250);
        assert_eq!(parse_size("128MB"), 128_000_000);
        assert_eq!(unquote(r#""a\"b\d""#), "a\"b\\d");
    }
}
