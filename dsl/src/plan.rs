//! What the checker resolved about each stage, handed to the engine with the
//! checked pipeline (as DataFusion's logical plan hands the physical planner
//! resolved columns): column positions and types, aggregate functions and
//! their result types, the fields a `parse` produces, the window an alert
//! reads. The engine builds its operators from these facts and never looks a
//! name up again.

use crate::ast::{Expr, ExprKind, Format, Literal};
use crate::types::Type;
use serde::Serialize;

/// The resolved facts of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StagePlan {
    /// `where`, `set`, `rename`, `drop`, `geoip`, `to`: the checked stage
    /// and the schemas around it say everything.
    AsWritten,
    Parse(ParsePlan),
    Window(WindowPlan),
    Alert(AlertPlan),
    Repartition(RepartitionPlan),
}

/// `repartition by KEYS`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepartitionPlan {
    /// The keys, as columns of the stage's input.
    pub keys: Vec<Column>,
    /// What the stage does where it runs.
    pub role: RepartitionRole,
}

/// Which side of the repartition topic a `repartition` stage runs on. The
/// checker plans every stage [`RepartitionRole::InProcess`]; splitting
/// the pipeline for a deployment ([`crate::repartition::split`]) makes it
/// the end of one pipeline and the start of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RepartitionRole {
    /// One process sees everything (`weir test`, a backtest): nothing to do.
    InProcess,
    /// Before the topic: each row's source position and line travel with
    /// it (`_partition`, `_offset`, `_raw` become the `_origin_` fields).
    Send,
    /// After the topic: rows already seen (a sender's replay after a
    /// crash) are dropped, and the rows are as they were sent (`_raw` the
    /// original line again).
    Receive,
}

/// `parse FIELD as FORMAT`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsePlan {
    pub format: Format,
    /// Every field the stage adds: the declared ones, then a regex's named
    /// captures.
    pub fields: Vec<String>,
}

/// A column of the stage's input schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub index: usize,
    pub name: String,
    pub ty: Type,
}

/// How events are assigned to windows, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Assigner {
    Tumbling { size_us: i64 },
    Sliding { size_us: i64, slide_us: i64 },
    Session { gap_us: i64 },
}

impl Assigner {
    /// How often windows close: the size, the slide or the gap.
    pub fn step_us(&self) -> i64 {
        match *self {
            Assigner::Tumbling { size_us } => size_us,
            Assigner::Sliding { slide_us, .. } => slide_us,
            Assigner::Session { gap_us } => gap_us,
        }
    }
}

/// `window ...`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowPlan {
    pub assigner: Assigner,
    pub lateness_us: i64,
    /// `max_keys N`; the engine's default when absent.
    pub max_keys: Option<u64>,
    /// The input's `timestamp` column.
    pub timestamp: usize,
    pub group_by: Vec<Column>,
    pub aggregates: Vec<AggregatePlan>,
    /// Each key's events come from one source partition: the source is
    /// `keyed_by` fields the window groups by, and no stage before it
    /// changes them. Its state is then kept per partition and moves with
    /// the partition between processes, and its rows carry `_partition`
    /// (the key's partition, last field).
    pub per_partition: bool,
}

/// One aggregate of a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregatePlan {
    /// The output field.
    pub name: String,
    pub func: Aggregate,
    /// The row expression it aggregates (none for `count()`).
    pub arg: Option<Expr>,
    /// The output field's type.
    pub ty: Type,
}

/// The aggregate functions. Their names, arities and types are in
/// [`crate::functions`]; this is what a call of one resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Aggregate {
    Count,
    CountDistinct,
    /// `approx_count_distinct(x)`: HyperLogLog beyond 256 distinct values.
    ApproxCountDistinct,
    Sum,
    Min,
    Max,
    Avg,
    /// `quantile(x, q)`, `p50`, `p95`, `p99`.
    Quantile(f64),
    /// Up to N sample events of the key and window (a reservoir), for an
    /// alert's evidence: not written by users, added by the checker as the
    /// field `_evidence` when an alert on the window asks for evidence.
    Samples(usize),
}

impl Aggregate {
    /// The aggregate a checked call names, with its quantile literal.
    pub fn from_call(name: &str, args: &[Expr]) -> Option<Aggregate> {
        Some(match name {
            "count" => Aggregate::Count,
            "count_distinct" => Aggregate::CountDistinct,
            "approx_count_distinct" => Aggregate::ApproxCountDistinct,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "avg" => Aggregate::Avg,
            "quantile" => Aggregate::Quantile(match args.get(1).map(|e| &e.kind) {
                Some(ExprKind::Lit(Literal::Float(f))) => *f,
                Some(ExprKind::Lit(Literal::Int(i))) => *i as f64,
                _ => return None,
            }),
            "p50" => Aggregate::Quantile(0.5),
            "p95" => Aggregate::Quantile(0.95),
            "p99" => Aggregate::Quantile(0.99),
            _ => return None,
        })
    }
}

/// `alert "NAME" when ...`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertPlan {
    /// The rule's severity word, lower case (`critical`, `warning`), as alert
    /// receivers expect; `warning` when absent.
    pub severity: String,
    /// The stage index of the window it reads.
    pub window_stage: usize,
    /// The window's group-by fields: the alert's labels.
    pub group_fields: Vec<String>,
    /// `for D`: how long it must match before firing (0: at once).
    pub for_us: i64,
    /// `resolve after D`; one window step by default.
    pub resolve_after_us: i64,
    /// What each alert carries to show why it fired.
    pub evidence: EvidencePlan,
}

/// An alert's evidence, as far as the checker resolves it: how many sample
/// events each alert carries (the window's `_evidence` field), and the
/// pieces of a SQL query over the archive that reproduces one window — the
/// engine adds the window's bounds and key values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidencePlan {
    /// Sample events per alert (0: none).
    pub samples: usize,
    /// The archived stream the pipeline reads.
    pub stream: String,
    /// The pipeline's `where` conditions before the window, as SQL.
    pub conditions: Vec<String>,
    /// The window's group-by fields the archive has, with their types.
    pub group: Vec<(String, Type)>,
    /// The window's aggregates as SQL select items.
    pub select: Vec<String>,
    /// Why the query can differ from the window (empty when it cannot):
    /// fields the pipeline makes, conditions SQL cannot say.
    pub caveats: Vec<String>,
}

/// A window's definition as canonical text (its plan as JSON, without
/// source positions): equal for the same window whatever else moved in
/// the file, so checkpointed window state survives a rules change that
/// leaves the window alone and is discarded when the window changed.
pub fn definition(w: &WindowPlan) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("span");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(w).unwrap_or_default();
    strip(&mut v);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn lit(l: Literal) -> Expr {
        Expr {
            kind: ExprKind::Lit(l),
            span: Span::default(),
        }
    }

    #[test]
    fn calls_resolve_to_aggregates_with_their_quantile() {
        let x = lit(Literal::Int(1));
        assert_eq!(Aggregate::from_call("count", &[]), Some(Aggregate::Count));
        assert_eq!(
            Aggregate::from_call("quantile", &[x.clone(), lit(Literal::Float(0.9))]),
            Some(Aggregate::Quantile(0.9))
        );
        assert_eq!(
            Aggregate::from_call("p99", std::slice::from_ref(&x)),
            Some(Aggregate::Quantile(0.99))
        );
        assert_eq!(Aggregate::from_call("quantile", &[x]), None);
        assert_eq!(Aggregate::from_call("lower", &[]), None);
        let every_aggregate = crate::functions::FUNCTIONS
            .iter()
            .filter(|f| f.aggregate)
            .map(|f| f.name);
        for name in every_aggregate {
            let args = [lit(Literal::Int(1)), lit(Literal::Float(0.5))];
            assert!(
                Aggregate::from_call(name, &args).is_some(),
                "aggregate `{name}` has no plan"
            );
        }
    }
}
