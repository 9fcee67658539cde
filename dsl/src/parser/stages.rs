//! The stages of a pipeline (`| where`, `| set`, `| window`, `| alert`...).

use super::declarations::{duration_lit, fields_block, format_spec};
use super::expressions::expr;
use super::literals::unquote;
use super::*;

pub(super) fn stage(pair: Pair<'_, Rule>, base: usize) -> Stage {
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
        Rule::repartition_stage => StageKind::Repartition(inner.map(|p| ident(p, base)).collect()),
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
                        evidence: None,
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
                            Rule::alert_evidence => {
                                spec.evidence = opt.into_inner().next().map(|n| {
                                    (n.as_str().parse().unwrap_or(u64::MAX), span_of(&n, base))
                                })
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

pub(super) fn assignment(pair: Pair<'_, Rule>, base: usize) -> Option<Assignment> {
    let mut parts = pair.into_inner();
    Some(Assignment {
        name: ident(parts.next()?, base),
        value: expr(parts.next()?, base),
    })
}

#[cfg(test)]
mod tests {
    use crate::ast::*;
    use crate::parse;

    #[test]
    fn every_stage_kind_parses_with_its_options() {
        let p = parse(
            r#"pipeline p {
  from a
  | where x > 1
  | set y = x * 2, z = "k"
  | rename y as w
  | drop z
  | parse message as logfmt fields { user: string }
  | window session gap 5m by user lateness 30s max_keys 10 { n = count() }
  | alert "many" when n > 3 for 1m resolve after 2m severity critical labels { team: "a" } notify [oncall]
  | to out
}"#,
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        let kinds: Vec<&str> = p.pipelines[0]
            .stages
            .iter()
            .map(|s| match &s.kind {
                StageKind::Where(_) => "where",
                StageKind::Set(a) if a.len() == 2 => "set",
                StageKind::Rename(_) => "rename",
                StageKind::Drop(_) => "drop",
                StageKind::Parse { fields, .. } if fields.len() == 1 => "parse",
                StageKind::Window(w) if w.max_keys == Some(10) && w.lateness.is_some() => "window",
                StageKind::Alert(a)
                    if a.for_duration.is_some()
                        && a.resolve_after.is_some()
                        && a.notify.len() == 1 =>
                {
                    "alert"
                }
                StageKind::To(_) => "to",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            ["where", "set", "rename", "drop", "parse", "window", "alert", "to"]
        );
    }
}
