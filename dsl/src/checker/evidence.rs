//! An alert's evidence plan: the sample count its window keeps per key and
//! window, and the SQL pieces that reproduce one window over the archive.
//! The pipeline's `where` stages before the window become conditions when
//! they read only fields the archive has (the source's own, not ones a
//! `set`, `parse`, `rename` or `geoip` made); the group-by fields and the
//! aggregates likewise. What cannot be said in SQL is left out and named in
//! the plan's caveats, so a reader knows when the query is only close.

use super::*;
use crate::plan::EvidencePlan;
use crate::sql;
use crate::types::{DEFAULT_EVIDENCE, MAX_EVIDENCE};

/// Sample events the window keeps for the alerts after it: the most any of
/// them asks for (`evidence N`, else the default), 0 without alerts.
pub(super) fn samples_wanted(after_window: &[Stage]) -> usize {
    after_window
        .iter()
        .filter_map(|s| match &s.kind {
            StageKind::Alert(a) => Some(samples_of(a)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The sample count one alert asks for, within the limit.
pub(super) fn samples_of(a: &AlertSpec) -> usize {
    let n = a.evidence.map_or(DEFAULT_EVIDENCE as u64, |(n, _)| n);
    usize::try_from(n.min(MAX_EVIDENCE)).unwrap_or(0)
}

impl Checker {
    /// `evidence N` within the limit.
    pub(super) fn check_evidence(&mut self, a: &AlertSpec) {
        if let Some((n, span)) = a.evidence {
            if n > MAX_EVIDENCE {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        span,
                        format!("an alert carries at most {MAX_EVIDENCE} sample events, not {n}"),
                    )
                    .with_hint(
                        "samples are kept per key and window in memory; `evidence 5` is plenty",
                    ),
                );
            }
        }
    }
}

/// The evidence plan of an alert with `samples` sample events, reading the
/// window `window` planned from the checked `stages` before it of a
/// pipeline on `stream`.
pub(super) fn plan(
    samples: usize,
    stream: &str,
    stages: &[Stage],
    plans: &[StagePlan],
    window: &WindowPlan,
) -> EvidencePlan {
    let mut made: HashSet<String> = HashSet::new();
    let mut conditions = Vec::new();
    let mut caveats = Vec::new();
    for (stage, plan) in stages.iter().zip(plans) {
        match &stage.kind {
            StageKind::Where(e) => match fields_in(e, &made) {
                Some(name) => caveats.push(format!(
                    "a `where` uses `{name}`, which the pipeline makes and the archive does not have"
                )),
                None => match sql::sql(e) {
                    Ok(c) => conditions.push(c),
                    Err((_, why)) => caveats.push(format!("a `where` has no SQL form: {why}")),
                },
            },
            StageKind::Set(assigns) => made.extend(assigns.iter().map(|a| a.name.name.clone())),
            StageKind::Rename(pairs) => made.extend(pairs.iter().map(|(_, to)| to.name.clone())),
            StageKind::Parse { .. } => {
                if let StagePlan::Parse(p) = plan {
                    made.extend(p.fields.iter().cloned());
                }
            }
            StageKind::Geoip { prefix, .. } => {
                let prefix = prefix.as_ref().map_or("geo", |p| p.name.as_str());
                made.extend(GEOIP_FIELDS.iter().map(|(s, _)| format!("{prefix}_{s}")));
            }
            _ => {}
        }
    }
    if made.contains(TIMESTAMP) {
        caveats.push(
            "the pipeline sets `timestamp`; the query bounds the archived `timestamp`".to_string(),
        );
    }
    let mut group = Vec::new();
    for c in &window.group_by {
        if made.contains(&c.name) {
            caveats.push(format!(
                "the window groups by `{}`, which the pipeline makes; the query does not narrow by it",
                c.name
            ));
        } else {
            group.push((c.name.clone(), c.ty));
        }
    }
    let mut select = Vec::new();
    for a in &window.aggregates {
        let uses_made = a.arg.as_ref().and_then(|e| fields_in(e, &made));
        match (uses_made, sql::aggregate(a)) {
            (_, None) => {}
            (Some(name), Some(_)) => caveats.push(format!(
                "`{}` reads `{name}`, which the pipeline makes; it is left out",
                a.name
            )),
            (None, Some(Ok(item))) => select.push(item),
            (None, Some(Err((_, why)))) => {
                caveats.push(format!("`{}` has no SQL form: {why}", a.name))
            }
        }
    }
    if select.is_empty() {
        select.push(format!("count(*) AS {}", sql::quote_ident("events")));
    }
    EvidencePlan {
        samples,
        stream: stream.to_string(),
        conditions,
        group,
        select,
        caveats,
    }
}

/// The first field of `e` among `made`.
fn fields_in(e: &Expr, made: &HashSet<String>) -> Option<String> {
    match &e.kind {
        ExprKind::Field(name) => made.contains(name).then(|| name.clone()),
        ExprKind::Lit(_) => None,
        ExprKind::List(items) => items.iter().find_map(|i| fields_in(i, made)),
        ExprKind::Call { args, .. } => args.iter().find_map(|i| fields_in(i, made)),
        ExprKind::Unary(_, a) | ExprKind::IsNull { expr: a, .. } => fields_in(a, made),
        ExprKind::Binary(_, a, b) => fields_in(a, made).or_else(|| fields_in(b, made)),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::StagePlan;

    fn evidence(text: &str) -> crate::plan::EvidencePlan {
        let program = crate::compile(text).unwrap_or_else(|e| panic!("{e:?}"));
        let p = &program.pipelines[0];
        p.plans
            .iter()
            .find_map(|s| match s {
                StagePlan::Alert(a) => Some(a.evidence.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no alert in {text}"))
    }

    #[test]
    fn conditions_groups_and_aggregates_on_archived_fields_become_sql() {
        let e = evidence(
            r#"source app = generator(rate: 10) format json fields { latency_ms: float }
pipeline p {
  from app
  | where service == "checkout" and severity >= warn
  | window tumbling 30s by service {
      errors = count(), p99 = quantile(latency_ms, 0.99), users = count_distinct(message)
    }
  | alert "x" when errors > 5 evidence 4
}"#,
        );
        assert_eq!(e.samples, 4);
        assert_eq!(e.stream, "app");
        assert_eq!(
            e.conditions,
            [
                r#"(("service" = 'checkout') AND (CAST("severity" AS VARCHAR) IN ('WARN', 'ERROR', 'FATAL')))"#
            ]
        );
        assert_eq!(
            e.group,
            [("service".to_string(), crate::types::Type::String)]
        );
        assert_eq!(
            e.select,
            [
                r#"count(*) AS "errors""#,
                r#"approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY "latency_ms") AS "p99""#,
                r#"count(DISTINCT "message") AS "users""#,
            ]
        );
        assert!(e.caveats.is_empty(), "{:?}", e.caveats);
    }

    #[test]
    fn fields_the_pipeline_makes_are_left_out_with_a_caveat() {
        let e = evidence(
            r#"source app = generator(rate: 10) format json
pipeline p {
  from app
  | set team = lower(service)
  | where team == "a" or service == "b"
  | where severity >= error
  | window tumbling 1m by team { n = count() }
  | alert "x" when n > 5
}"#,
        );
        assert_eq!(e.samples, crate::types::DEFAULT_EVIDENCE);
        assert_eq!(
            e.conditions,
            [r#"(CAST("severity" AS VARCHAR) IN ('ERROR', 'FATAL'))"#]
        );
        assert!(e.group.is_empty());
        assert_eq!(e.caveats.len(), 2, "{:?}", e.caveats);
        assert!(e.caveats[0].contains("`team`"), "{:?}", e.caveats);
    }

    #[test]
    fn evidence_past_the_limit_is_an_error_at_its_number() {
        let text = r#"source app = generator(rate: 10) format json
pipeline p {
  from app
  | window tumbling 1m { n = count() }
  | alert "x" when n > 5 evidence 500
}"#;
        let errors = crate::compile(text).err().unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(&text[errors[0].span.start..errors[0].span.end], "500");
    }

    #[test]
    fn the_window_keeps_samples_only_for_alerts_that_want_them() {
        let fields = |text: &str| {
            let program = crate::compile(text).unwrap_or_else(|e| panic!("{e:?}"));
            let out = program.pipelines[0]
                .schemas
                .last()
                .cloned()
                .unwrap_or_default();
            out.names().map(String::from).collect::<Vec<_>>()
        };
        let with = fields(
            r#"source app = generator(rate: 10) format json
pipeline p { from app | window tumbling 1m { n = count() } | alert "x" when n > 5 }"#,
        );
        assert!(with.contains(&"_evidence".to_string()), "{with:?}");
        let without = fields(
            r#"source app = generator(rate: 10) format json
pipeline p { from app | window tumbling 1m { n = count() } | alert "x" when n > 5 evidence 0 }"#,
        );
        assert!(!without.contains(&"_evidence".to_string()), "{without:?}");
        let no_alert = fields(
            r#"source app = generator(rate: 10) format json
pipeline p { from app | window tumbling 1m { n = count() } }"#,
        );
        assert!(!no_alert.contains(&"_evidence".to_string()), "{no_alert:?}");
    }
}
