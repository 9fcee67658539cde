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

mod declarations;
mod expressions;
mod literals;
mod stages;

use declarations::add_item;
pub use literals::{parse_duration, parse_size, unquote};

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

/// Parses one condition on its own, as it would follow `| where`.
pub fn parse_condition(text: &str) -> Result<Expr, Vec<Diagnostic>> {
    crate::limits::check(text).map_err(|d| vec![d])?;
    let mut pairs =
        RulesParser::parse(Rule::condition, text).map_err(|e| vec![syntax_diagnostic(e, 0)])?;
    pairs
        .next()
        .and_then(|c| c.into_inner().find(|p| p.as_rule() == Rule::expr))
        .map(|p| expressions::expr(p, 0))
        .ok_or_else(|| {
            vec![Diagnostic::new(
                ErrorKind::Syntax,
                Span::new(0, text.len().max(1)),
                "expected a condition",
            )]
        })
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
        Rule::ts_format_opt => "`timestamp_format \"...\"`",
        Rule::tz_opt => "`timezone \"...\"`",
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
        | Rule::raw_opt
        | Rule::index_opt
        | Rule::index_list => "an archive option (partition by, roll at, roll every, raw, index)",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_parses_and_checks_on_its_own() {
        let program =
            crate::compile("source s = generator() format json\npipeline p {\n  from s\n}\n")
                .unwrap_or_else(|d| panic!("{d:?}"));
        let schema = &program.sources[0].schema;
        let e = parse_condition(r#"severity >= warn and service == "checkout""#).unwrap();
        assert!(crate::check_condition(&e, schema).is_ok());
        // A typo is reported at its column in the condition's own text.
        let e = parse_condition("servce == 1").unwrap();
        let d = crate::check_condition(&e, schema).unwrap_err();
        assert_eq!(d[0].span.start, 0);
        assert!(d[0].message.contains("servce"), "{:?}", d[0]);
        // Not a condition; not an expression.
        let e = parse_condition("len(message)").unwrap();
        assert!(crate::check_condition(&e, schema).is_err());
        let d = parse_condition("service == ").unwrap_err();
        assert_eq!(d[0].kind, ErrorKind::Syntax);
    }

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
    fn reports_one_error_per_broken_item() {
        let text = "source a = file(path: \"x\") format json\npipeline p {\n  from a\n  | where x ==\n}\npipeline q {\n  from a\n  | window tumbling { n = count() }\n}\n";
        let errs = parse(text).err().unwrap_or_default();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.kind == ErrorKind::Syntax));
    }
}
