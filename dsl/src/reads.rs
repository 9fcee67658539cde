//! The fields a pipeline reads, so a reader of the archive (a backtest) can
//! leave the other columns of its source unread, and a live source's
//! decoder can leave them unbuilt ([`decoded_needs`]). Conservative: every
//! name a stage mentions counts (a window's output names too, which are
//! harmless when the source has no such column), plus `timestamp` and
//! `_partition`, which windows read without naming them.

use crate::ast::{Expr, ExprKind, Pipeline, StageKind};
use crate::types::{PARTITION, RAW, TIMESTAMP};
use std::collections::BTreeSet;

/// Every field name `p` reads or mentions.
pub fn fields_read(p: &Pipeline) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = [TIMESTAMP, PARTITION]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for stage in &p.stages {
        match &stage.kind {
            StageKind::Where(e) => fields_in(e, &mut out),
            StageKind::Set(assigns) => assigns.iter().for_each(|a| fields_in(&a.value, &mut out)),
            StageKind::Rename(pairs) => out.extend(pairs.iter().map(|(from, _)| from.name.clone())),
            StageKind::Drop(_) | StageKind::To(_) => {}
            StageKind::Repartition(keys) => out.extend(keys.iter().map(|k| k.name.clone())),
            StageKind::Parse { field, .. } | StageKind::Geoip { field, .. } => {
                out.insert(field.name.clone());
            }
            StageKind::Window(w) => {
                out.extend(w.group_by.iter().map(|g| g.name.clone()));
                w.aggregates
                    .iter()
                    .for_each(|a| fields_in(&a.value, &mut out));
            }
            StageKind::Alert(a) => fields_in(&a.condition, &mut out),
            StageKind::Unknown(_) => {}
        }
    }
    out
}

/// What a pipeline needs decoded from its source's lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    /// The fields it reads; `None`: every field of the event.
    pub fields: Option<BTreeSet<String>>,
    /// The original line (`_raw`).
    pub raw: bool,
}

impl Needs {
    /// Whole events, line and all.
    pub fn everything() -> Needs {
        Needs {
            fields: None,
            raw: true,
        }
    }

    /// What two readers of one source need between them.
    pub fn and(self, other: Needs) -> Needs {
        Needs {
            fields: match (self.fields, other.fields) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                _ => None,
            },
            raw: self.raw || other.raw,
        }
    }
}

/// What `p` needs of its source's events. Only a pipeline that reaches a
/// window through `where` stages alone needs less than whole events: its
/// rows end in the window, so only the fields its stages name are read. A
/// `set`, `parse`, `rename` or `to` before the window hands rows on (or
/// rejects them with their line), and an alert with evidence keeps sample
/// events of the window (every field but the line), so those need more.
pub fn decoded_needs(p: &Pipeline) -> Needs {
    let Some(window) = p
        .stages
        .iter()
        .position(|s| matches!(s.kind, StageKind::Window(_)))
    else {
        return Needs::everything();
    };
    if !p.stages[..window]
        .iter()
        .all(|s| matches!(s.kind, StageKind::Where(_)))
    {
        return Needs::everything();
    }
    let read = fields_read(p);
    let raw = read.contains(RAW);
    let samples = p.stages[window..].iter().any(|s| match &s.kind {
        StageKind::Alert(a) => a.evidence.is_none_or(|(n, _)| n > 0),
        _ => false,
    });
    Needs {
        fields: (!samples).then_some(read),
        raw,
    }
}

fn fields_in(e: &Expr, out: &mut BTreeSet<String>) {
    match &e.kind {
        ExprKind::Field(name) => {
            out.insert(name.clone());
        }
        ExprKind::Lit(_) => {}
        ExprKind::List(items) | ExprKind::Call { args: items, .. } => {
            items.iter().for_each(|i| fields_in(i, out))
        }
        ExprKind::Unary(_, a) | ExprKind::IsNull { expr: a, .. } => fields_in(a, out),
        ExprKind::Binary(_, a, b) => {
            fields_in(a, out);
            fields_in(b, out);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_named_field_and_the_event_time_are_read() {
        let program = crate::compile(
            r#"source app = generator(rate: 10) format json fields { latency_ms: float, user: string, path: string }
pipeline p {
  from app
  | where service == "checkout" and lower(host) contains "eu"
  | set slow = latency_ms > 500
  | window tumbling 1m by environment { n = count(), u = count_distinct(user) }
  | alert "x" when n > 5
}"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let needs = super::decoded_needs(&program.pipelines[0].pipeline);
        assert_eq!(needs, super::Needs::everything(), "`set` before the window");
        let read = super::fields_read(&program.pipelines[0].pipeline);
        let read: Vec<&str> = read.iter().map(String::as_str).collect();
        assert_eq!(
            read,
            [
                "_partition",
                "environment",
                "host",
                "latency_ms",
                "n",
                "service",
                "timestamp",
                "user"
            ]
        );
    }

    #[test]
    fn a_window_reached_through_where_alone_needs_only_what_it_names() {
        let needs = |rules: &str| {
            let program = crate::compile(&format!(
                "source app = generator(rate: 10) format json fields {{ latency_ms: float, user: string }}\n\
                 output out = stdout()\n{rules}"
            ))
            .unwrap_or_else(|e| panic!("{e:?}"));
            let n = super::decoded_needs(&program.pipelines[0].pipeline);
            (
                n.fields
                    .map(|f| f.into_iter().collect::<Vec<_>>().join(" ")),
                n.raw,
            )
        };
        let window = "window tumbling 1m by service { n = count(), p = quantile(latency_ms, 0.9) }";
        assert_eq!(
            needs(&format!(
                "pipeline p {{ from app | where severity >= warn | {window} | to out }}"
            )),
            (
                Some("_partition latency_ms service severity timestamp".into()),
                false
            )
        );
        assert!(
            needs(&format!(
                "pipeline p {{ from app | where _raw contains \"x\" | {window} | to out }}"
            ))
            .1,
            "a stage that names the line needs it"
        );
        assert_eq!(
            needs(&format!(
                "pipeline p {{ from app | {window} | alert \"a\" when n > 1 }}"
            )),
            (None, false),
            "evidence keeps whole sample events (without the line)"
        );
        assert!(
            needs(&format!(
                "pipeline p {{ from app | {window} | alert \"a\" when n > 1 evidence 0 }}"
            ))
            .0
            .is_some(),
            "no evidence, no sample events"
        );
        assert_eq!(
            needs("pipeline p { from app | where severity >= warn | to out }"),
            (None, true)
        );
        assert_eq!(
            needs(&format!(
                "pipeline p {{ from app | rename user as u | {window} | to out }}"
            )),
            (None, true)
        );
    }
}
