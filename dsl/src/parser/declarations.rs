//! Top-level items: `source`, `output`, `archive`, `pipeline`, and the
//! connector calls, formats and field lists they hold.

use super::literals::{parse_duration, parse_size, unquote};
use super::stages::stage;
use super::*;

pub(super) fn add_item(program: &mut Program, item: Pair<'_, Rule>, base: usize) {
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
                timestamp_format: None,
                timezone: None,
                span,
            };
            for p in inner {
                let text_of = |p: Pair<'_, Rule>| {
                    let at = span_of(&p, base);
                    p.into_inner()
                        .next()
                        .map(|s| (unquote(s.as_str()), span_of(&s, base)))
                        .unwrap_or((String::new(), at))
                };
                match p.as_rule() {
                    Rule::ts_format_opt => decl.timestamp_format = Some(text_of(p)),
                    Rule::tz_opt => decl.timezone = Some(text_of(p)),
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
                index: None,
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
                        let opt_span = span_of(&opt, base);
                        let Some(v) = opt.into_inner().next() else {
                            continue;
                        };
                        match rule {
                            Rule::partition_opt => decl.partition = Some(ident(v, base)),
                            Rule::raw_opt => decl.raw = Some(ident(v, base)),
                            Rule::index_opt => {
                                decl.index = Some(if v.as_rule() == Rule::index_list {
                                    ArchiveIndex {
                                        columns: v.into_inner().map(|c| ident(c, base)).collect(),
                                        word: None,
                                        span: opt_span,
                                    }
                                } else {
                                    ArchiveIndex {
                                        columns: Vec::new(),
                                        word: Some(ident(v, base)),
                                        span: opt_span,
                                    }
                                })
                            }
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

pub(super) fn connector(pair: Pair<'_, Rule>, base: usize) -> Connector {
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

pub(super) fn arg_value(pair: Pair<'_, Rule>) -> ArgValue {
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

pub(super) fn format_spec(pair: Pair<'_, Rule>, base: usize) -> FormatSpec {
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
                other => crate::presets::lookup(other).map(|p| Format::Regex(p.regex.into())),
            };
            FormatSpec { format, name, span }
        }
    }
}

pub(super) fn fields_block(pair: Pair<'_, Rule>, base: usize) -> Vec<FieldDecl> {
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

pub(super) fn duration_lit(pair: Pair<'_, Rule>, base: usize) -> DurationLit {
    DurationLit {
        millis: parse_duration(pair.as_str()),
        span: span_of(&pair, base),
    }
}

#[cfg(test)]
mod tests {
    use crate::ast::*;
    use crate::parse;

    #[test]
    fn sources_outputs_and_archives() {
        let p = parse(
            r#"source web = file(path: "a.log", follow: true) format regex "(?P<x>\d+)" fields { x: int }
output out = kafka(topic: "t", options: ["linger.ms=5"])
archive web partition by day roll every 1m roll at 64MB raw full index (x, host)
pipeline p { from web | to out }"#,
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        let web = &p.sources[0];
        assert_eq!(web.connector.kind.name, "file");
        assert!(matches!(
            web.connector.arg("follow").map(|a| &a.value),
            Some(ArgValue::Bool(true))
        ));
        assert_eq!(web.fields.len(), 1);
        assert_eq!(p.outputs[0].connector.kind.name, "kafka");
        let a = &p.archives[0];
        assert_eq!(a.roll_every, Some(60_000));
        assert_eq!(a.roll_size, Some(64_000_000));
        assert_eq!(a.partition.as_ref().map(|p| p.name.as_str()), Some("day"));
        let index = a.index.as_ref().map(|i| {
            let names: Vec<&str> = i.columns.iter().map(|c| c.name.as_str()).collect();
            (names, i.word.is_none())
        });
        assert_eq!(index, Some((vec!["x", "host"], true)));
        let none = parse("source s = stdin() format json\narchive s index none\n")
            .unwrap_or_else(|d| panic!("{d:?}"));
        let i = none.archives[0].index.as_ref();
        assert_eq!(
            i.and_then(|i| i.word.as_ref()).map(|w| w.name.as_str()),
            Some("none")
        );
        assert!(i.is_some_and(|i| i.columns.is_empty()));
    }
}
