//! The fields a pipeline reads, so a reader of the archive (a backtest) can
//! leave the other columns of its source unread. Conservative: every name a
//! stage mentions counts (a window's output names too, which are harmless
//! when the source has no such column), plus `timestamp` and `_partition`,
//! which windows read without naming them.

use crate::ast::{Expr, ExprKind, Pipeline, StageKind};
use crate::types::{PARTITION, TIMESTAMP};
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
}
