//! Vectorized evaluation of `.rules` expressions over Arrow record batches.
//!
//! [`compile`] turns a checked expression into a [`PhysicalExpr`] tree once; each
//! batch is then evaluated column-at-a-time with Arrow compute kernels
//! (comparisons, boolean logic, arithmetic, string matching), never by
//! interpreting the expression per event.

use crate::error::{EngineError, Result};
use crate::functions::{self, ScalarFunction};
use crate::schema::{arrow_type, TZ};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Datum, DurationMicrosecondArray,
    Float64Array, Int64Array, Int8Array, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{cast, is_not_null, is_null};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use regex::Regex;
use std::collections::HashSet;
use std::sync::Arc;
use weir_dsl::ast::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use weir_dsl::{severity, Schema, Type};

/// The result of evaluating an expression: a column, or one value for all rows.
#[derive(Debug, Clone)]
pub enum Value {
    Array(ArrayRef),
    /// A one-element array standing for every row.
    Scalar(ArrayRef),
}

impl Datum for Value {
    fn get(&self) -> (&dyn Array, bool) {
        match self {
            Value::Array(a) => (a.as_ref(), false),
            Value::Scalar(a) => (a.as_ref(), true),
        }
    }
}

impl Value {
    /// A full column of `len` rows.
    pub fn into_array(self, len: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) => repeat(&s, len),
        }
    }

    /// Applies `f` to the column or to the single value.
    pub(crate) fn map(self, f: impl FnOnce(&ArrayRef) -> Result<ArrayRef>) -> Result<Value> {
        Ok(match self {
            Value::Array(a) => Value::Array(f(&a)?),
            Value::Scalar(a) => Value::Scalar(f(&a)?),
        })
    }
}

/// Repeats the single value of `s` `len` times.
pub fn repeat(s: &ArrayRef, len: usize) -> Result<ArrayRef> {
    let idx = arrow::array::UInt32Array::from(vec![0u32; len]);
    Ok(arrow::compute::take(s.as_ref(), &idx, None)?)
}

/// A compiled expression.
#[derive(Debug)]
pub enum PhysicalExpr {
    Column {
        index: usize,
        ty: Type,
    },
    Literal {
        value: ArrayRef,
        ty: Type,
    },
    Not(Box<PhysicalExpr>),
    Neg(Box<PhysicalExpr>),
    And(Box<PhysicalExpr>, Box<PhysicalExpr>),
    Or(Box<PhysicalExpr>, Box<PhysicalExpr>),
    Compare {
        op: BinaryOp,
        left: Box<PhysicalExpr>,
        right: Box<PhysicalExpr>,
    },
    Arith {
        op: BinaryOp,
        left: Box<PhysicalExpr>,
        right: Box<PhysicalExpr>,
        ty: Type,
    },
    Regex {
        input: Box<PhysicalExpr>,
        regex: Regex,
        negate: bool,
    },
    InList {
        input: Box<PhysicalExpr>,
        set: LiteralSet,
        negate: bool,
    },
    Contains {
        left: Box<PhysicalExpr>,
        right: Box<PhysicalExpr>,
    },
    IsNull {
        input: Box<PhysicalExpr>,
        negated: bool,
    },
    /// Severity column (text) turned into ranks, for ordering.
    SeverityRank(Box<PhysicalExpr>),
    Call {
        function: Box<dyn ScalarFunction>,
        args: Vec<PhysicalExpr>,
        ty: Type,
    },
}

/// The literal values of an `in [...]` list.
#[derive(Debug)]
pub enum LiteralSet {
    Text(HashSet<String>),
    Int(HashSet<i64>),
    Float(Vec<f64>),
    Rank(HashSet<i8>),
    Bool(HashSet<bool>),
}

/// What compiling needs besides the expression: where relative paths point, and a
/// cache of loaded lookup tables.
pub struct CompileContext<'a> {
    pub tables: &'a mut functions::TableCache,
}

/// Compiles a checked expression against the schema of its input.
pub fn compile(e: &Expr, schema: &Schema, cx: &mut CompileContext<'_>) -> Result<PhysicalExpr> {
    Ok(match &e.kind {
        ExprKind::Field(name) => {
            let index = schema
                .index_of(name)
                .ok_or_else(|| EngineError::plan(e.span, format!("unknown field `{name}`")))?;
            PhysicalExpr::Column {
                index,
                ty: schema.fields[index].ty,
            }
        }
        ExprKind::Lit(l) => literal(l),
        ExprKind::List(_) => {
            return Err(EngineError::plan(
                e.span,
                "a list can only appear on the right of `in`",
            ))
        }
        ExprKind::Unary(UnaryOp::Not, inner) => {
            PhysicalExpr::Not(Box::new(compile(inner, schema, cx)?))
        }
        ExprKind::Unary(UnaryOp::Neg, inner) => {
            PhysicalExpr::Neg(Box::new(compile(inner, schema, cx)?))
        }
        ExprKind::IsNull { expr, negated } => PhysicalExpr::IsNull {
            input: Box::new(compile(expr, schema, cx)?),
            negated: *negated,
        },
        ExprKind::Binary(op, l, r) => binary(*op, l, r, schema, cx)?,
        ExprKind::Call { name, args } => {
            let compiled: Vec<PhysicalExpr> = args
                .iter()
                .map(|a| compile(a, schema, cx))
                .collect::<Result<_>>()?;
            let types: Vec<Type> = compiled.iter().map(|a| a.ty()).collect();
            let (function, ty) = functions::resolve(name, args, &types, cx)?;
            PhysicalExpr::Call {
                function,
                args: compiled,
                ty,
            }
        }
    })
}

fn literal(l: &Literal) -> PhysicalExpr {
    let (value, ty): (ArrayRef, Type) = match l {
        Literal::Str(s) => (Arc::new(StringArray::from(vec![s.as_str()])), Type::String),
        Literal::Int(i) => (Arc::new(Int64Array::from(vec![*i])), Type::Int),
        Literal::Float(f) => (Arc::new(Float64Array::from(vec![*f])), Type::Float),
        Literal::Bool(b) => (Arc::new(BooleanArray::from(vec![*b])), Type::Bool),
        Literal::Duration(ms) => (
            Arc::new(DurationMicrosecondArray::from(
                vec![ms.saturating_mul(1000)],
            )),
            Type::Duration,
        ),
        Literal::Severity(r) => (Arc::new(Int8Array::from(vec![*r as i8])), Type::Severity),
        Literal::Null => (
            Arc::new(StringArray::from(vec![Option::<&str>::None])),
            Type::Null,
        ),
    };
    PhysicalExpr::Literal { value, ty }
}

fn binary(
    op: BinaryOp,
    l: &Expr,
    r: &Expr,
    schema: &Schema,
    cx: &mut CompileContext<'_>,
) -> Result<PhysicalExpr> {
    let left = compile(l, schema, cx)?;
    Ok(match op {
        BinaryOp::And => PhysicalExpr::And(Box::new(left), Box::new(compile(r, schema, cx)?)),
        BinaryOp::Or => PhysicalExpr::Or(Box::new(left), Box::new(compile(r, schema, cx)?)),
        BinaryOp::Match | BinaryOp::NotMatch => {
            let ExprKind::Lit(Literal::Str(pattern)) = &r.kind else {
                return Err(EngineError::plan(
                    r.span,
                    "a regex must be a string literal",
                ));
            };
            let regex = Regex::new(pattern)
                .map_err(|e| EngineError::plan(r.span, format!("invalid regex: {e}")))?;
            PhysicalExpr::Regex {
                input: Box::new(left),
                regex,
                negate: op == BinaryOp::NotMatch,
            }
        }
        BinaryOp::In | BinaryOp::NotIn => {
            let ExprKind::List(items) = &r.kind else {
                return Err(EngineError::plan(r.span, "`in` needs a list"));
            };
            let set = literal_set(left.ty(), items)?;
            PhysicalExpr::InList {
                input: Box::new(left),
                set,
                negate: op == BinaryOp::NotIn,
            }
        }
        BinaryOp::Contains => PhysicalExpr::Contains {
            left: Box::new(left),
            right: Box::new(compile(r, schema, cx)?),
        },
        _ if op.is_comparison() => {
            let right = compile(r, schema, cx)?;
            let (left, right) = coerce_pair(left, right, r)?;
            PhysicalExpr::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
            }
        }
        _ => {
            let right = compile(r, schema, cx)?;
            let ty = arith_type(op, left.ty(), right.ty());
            let (left, right) = if ty == Type::Float {
                (to_float(left), to_float(right))
            } else {
                (left, right)
            };
            PhysicalExpr::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
                ty,
            }
        }
    })
}

fn arith_type(op: BinaryOp, l: Type, r: Type) -> Type {
    match (op, l, r) {
        (_, Type::Int, Type::Int) => Type::Int,
        (BinaryOp::Sub, Type::Timestamp, Type::Timestamp) => Type::Duration,
        (_, Type::Timestamp, _) => Type::Timestamp,
        (_, Type::Duration, Type::Duration) => Type::Duration,
        _ => Type::Float,
    }
}

fn to_float(e: PhysicalExpr) -> PhysicalExpr {
    if e.ty() == Type::Int {
        PhysicalExpr::Call {
            function: Box::new(functions::CastTo(DataType::Float64)),
            args: vec![e],
            ty: Type::Float,
        }
    } else {
        e
    }
}

/// Brings both sides of a comparison to one Arrow type.
fn coerce_pair(
    left: PhysicalExpr,
    right: PhysicalExpr,
    r: &Expr,
) -> Result<(PhysicalExpr, PhysicalExpr)> {
    use Type::*;
    Ok(match (left.ty(), right.ty()) {
        (Severity, Severity) => (
            PhysicalExpr::SeverityRank(Box::new(left)),
            match right {
                PhysicalExpr::Literal { .. } => right,
                other => PhysicalExpr::SeverityRank(Box::new(other)),
            },
        ),
        (Int, Float) => (to_float(left), right),
        (Float, Int) => (left, to_float(right)),
        (Timestamp, String) => {
            let ExprKind::Lit(Literal::Str(s)) = &r.kind else {
                return Err(EngineError::plan(r.span, "expected a timestamp literal"));
            };
            let micros = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    EngineError::plan_hint(
                        r.span,
                        format!("`{s}` is not a timestamp: {e}"),
                        "write timestamps in RFC 3339, e.g. \"2026-01-31T12:00:00Z\"",
                    )
                })?
                .timestamp_micros();
            let value: ArrayRef =
                Arc::new(TimestampMicrosecondArray::from(vec![micros]).with_timezone(TZ));
            (
                left,
                PhysicalExpr::Literal {
                    value,
                    ty: Timestamp,
                },
            )
        }
        (Null, t) | (t, Null) if t != Null => {
            let (l, r) = (left, right);
            let target = arrow_type(t);
            let fix = |e: PhysicalExpr| {
                if e.ty() == Null {
                    PhysicalExpr::Call {
                        function: Box::new(functions::CastTo(target.clone())),
                        args: vec![e],
                        ty: t,
                    }
                } else {
                    e
                }
            };
            (fix(l), fix(r))
        }
        _ => (left, right),
    })
}

fn literal_set(ty: Type, items: &[Expr]) -> Result<LiteralSet> {
    let bad =
        |e: &Expr| EngineError::plan(e.span, "list items must be literals of the value's type");
    Ok(match ty {
        Type::Severity => LiteralSet::Rank(
            items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Lit(Literal::Severity(r)) => Ok(*r as i8),
                    _ => Err(bad(i)),
                })
                .collect::<Result<_>>()?,
        ),
        Type::Int => LiteralSet::Int(
            items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Lit(Literal::Int(v)) => Ok(*v),
                    _ => Err(bad(i)),
                })
                .collect::<Result<_>>()?,
        ),
        Type::Float => LiteralSet::Float(
            items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Lit(Literal::Int(v)) => Ok(*v as f64),
                    ExprKind::Lit(Literal::Float(v)) => Ok(*v),
                    _ => Err(bad(i)),
                })
                .collect::<Result<_>>()?,
        ),
        Type::Bool => LiteralSet::Bool(
            items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Lit(Literal::Bool(v)) => Ok(*v),
                    _ => Err(bad(i)),
                })
                .collect::<Result<_>>()?,
        ),
        _ => LiteralSet::Text(
            items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Lit(Literal::Str(v)) => Ok(v.clone()),
                    ExprKind::Lit(Literal::Int(v)) => Ok(v.to_string()),
                    _ => Err(bad(i)),
                })
                .collect::<Result<_>>()?,
        ),
    })
}

impl PhysicalExpr {
    /// The language type this expression produces.
    pub fn ty(&self) -> Type {
        match self {
            PhysicalExpr::Column { ty, .. }
            | PhysicalExpr::Literal { ty, .. }
            | PhysicalExpr::Arith { ty, .. }
            | PhysicalExpr::Call { ty, .. } => *ty,
            PhysicalExpr::Neg(e) => e.ty(),
            PhysicalExpr::SeverityRank(_) => Type::Int,
            _ => Type::Bool,
        }
    }

    /// Evaluates over a batch.
    pub fn eval(&self, batch: &RecordBatch) -> Result<Value> {
        Ok(match self {
            PhysicalExpr::Column { index, .. } => Value::Array(batch.column(*index).clone()),
            PhysicalExpr::Literal { value, .. } => Value::Scalar(value.clone()),
            PhysicalExpr::Not(e) => e.eval(batch)?.map(|a| {
                Ok(Arc::new(boolean::not(a.as_boolean_opt().ok_or_else(not_bool)?)?) as ArrayRef)
            })?,
            PhysicalExpr::Neg(e) => e.eval(batch)?.map(|a| Ok(numeric::neg(a)?))?,
            PhysicalExpr::And(l, r) | PhysicalExpr::Or(l, r) => {
                let n = batch.num_rows();
                let l = l.eval(batch)?.into_array(n)?;
                let r = r.eval(batch)?.into_array(n)?;
                let (l, r) = (
                    l.as_boolean_opt().ok_or_else(not_bool)?,
                    r.as_boolean_opt().ok_or_else(not_bool)?,
                );
                let out = if matches!(self, PhysicalExpr::And(..)) {
                    boolean::and_kleene(l, r)?
                } else {
                    boolean::or_kleene(l, r)?
                };
                Value::Array(Arc::new(out))
            }
            PhysicalExpr::Compare { op, left, right } => {
                let l = left.eval(batch)?;
                let r = right.eval(batch)?;
                let out = match op {
                    BinaryOp::Eq => cmp::eq(&l, &r)?,
                    BinaryOp::Ne => cmp::neq(&l, &r)?,
                    BinaryOp::Lt => cmp::lt(&l, &r)?,
                    BinaryOp::Le => cmp::lt_eq(&l, &r)?,
                    BinaryOp::Gt => cmp::gt(&l, &r)?,
                    _ => cmp::gt_eq(&l, &r)?,
                };
                scalar_or_array(&l, &r, Arc::new(out))
            }
            PhysicalExpr::Arith {
                op, left, right, ..
            } => {
                let l = left.eval(batch)?;
                let r = right.eval(batch)?;
                let out = match op {
                    BinaryOp::Add => numeric::add(&l, &r)?,
                    BinaryOp::Sub => numeric::sub(&l, &r)?,
                    BinaryOp::Mul => numeric::mul(&l, &r)?,
                    BinaryOp::Div => numeric::div(&l, &r)?,
                    _ => numeric::rem(&l, &r)?,
                };
                scalar_or_array(&l, &r, out)
            }
            PhysicalExpr::Regex {
                input,
                regex,
                negate,
            } => input.eval(batch)?.map(|a| {
                let s = text(a)?;
                let out: BooleanArray = s
                    .iter()
                    .map(|v| v.map(|v| regex.is_match(v) != *negate))
                    .collect();
                Ok(Arc::new(out) as ArrayRef)
            })?,
            PhysicalExpr::InList { input, set, negate } => {
                let v = input.eval(batch)?;
                v.map(|a| Ok(Arc::new(in_list(a, set, *negate)?) as ArrayRef))?
            }
            PhysicalExpr::Contains { left, right } => {
                let l = left.eval(batch)?;
                let r = right.eval(batch)?;
                let out = arrow::compute::kernels::comparison::contains(&l, &r)?;
                scalar_or_array(&l, &r, Arc::new(out))
            }
            PhysicalExpr::IsNull { input, negated } => input.eval(batch)?.map(|a| {
                let out = if *negated {
                    is_not_null(a)?
                } else {
                    is_null(a)?
                };
                Ok(Arc::new(out) as ArrayRef)
            })?,
            PhysicalExpr::SeverityRank(e) => e
                .eval(batch)?
                .map(|a| Ok(Arc::new(severity_ranks(a)?) as ArrayRef))?,
            PhysicalExpr::Call { function, args, .. } => {
                let values: Vec<Value> =
                    args.iter().map(|a| a.eval(batch)).collect::<Result<_>>()?;
                function.call(&values, batch.num_rows())?
            }
        })
    }

    /// Evaluates a condition to one boolean per row.
    pub fn eval_predicate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let v = self.eval(batch)?.into_array(batch.num_rows())?;
        let b = v.as_boolean_opt().ok_or_else(not_bool)?;
        Ok(b.clone())
    }
}

fn not_bool() -> EngineError {
    EngineError::Internal("expected a boolean column".into())
}

/// A kernel over two values yields a scalar only when both inputs were scalars.
fn scalar_or_array(l: &Value, r: &Value, out: ArrayRef) -> Value {
    if matches!((l, r), (Value::Scalar(_), Value::Scalar(_))) {
        Value::Scalar(out)
    } else {
        Value::Array(out)
    }
}

/// Views an array as text.
pub fn text(a: &ArrayRef) -> Result<&StringArray> {
    a.as_string_opt::<i32>()
        .ok_or_else(|| EngineError::Internal(format!("expected text, found {}", a.data_type())))
}

/// Ranks of severity names (canonical or not); unknown spellings are null.
pub fn severity_ranks(a: &ArrayRef) -> Result<Int8Array> {
    if a.data_type() == &DataType::Int8 {
        return Ok(a.as_primitive::<arrow::datatypes::Int8Type>().clone());
    }
    let s = text(a)?;
    // Values and validity apart: collecting options builds the validity a
    // bit at a time (the filter's largest cost on a `severity >= warn`).
    let mut ranks = Vec::with_capacity(s.len());
    let mut valid = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let r = if s.is_null(i) {
            None
        } else {
            let v = s.value(i);
            fast_rank(v).or_else(|| severity::rank(v))
        };
        ranks.push(r.map_or(0, |r| r as i8));
        valid.push(r.is_some());
    }
    let nulls = (!valid.iter().all(|v| *v)).then(|| arrow::buffer::NullBuffer::from(valid));
    Ok(Int8Array::new(ranks.into(), nulls))
}

/// Rank of a canonical upper-case level name, by its first byte.
fn fast_rank(v: &str) -> Option<u8> {
    let r = match v {
        "TRACE" => 0,
        "DEBUG" => 1,
        "INFO" => 2,
        "WARN" => 3,
        "ERROR" => 4,
        "FATAL" => 5,
        _ => return None,
    };
    Some(r)
}

fn in_list(a: &ArrayRef, set: &LiteralSet, negate: bool) -> Result<BooleanArray> {
    let mut b = BooleanBuilder::with_capacity(a.len());
    match set {
        LiteralSet::Text(set) => {
            let s = if a.data_type() == &DataType::Utf8 {
                a.clone()
            } else {
                cast(a, &DataType::Utf8)?
            };
            for v in text(&s)?.iter() {
                b.append_option(v.map(|v| set.contains(v) != negate));
            }
        }
        LiteralSet::Int(set) => {
            let c = cast(a, &DataType::Int64)?;
            for v in c.as_primitive::<arrow::datatypes::Int64Type>().iter() {
                b.append_option(v.map(|v| set.contains(&v) != negate));
            }
        }
        LiteralSet::Float(set) => {
            let c = cast(a, &DataType::Float64)?;
            for v in c.as_primitive::<arrow::datatypes::Float64Type>().iter() {
                b.append_option(v.map(|v| set.contains(&v) != negate));
            }
        }
        LiteralSet::Rank(set) => {
            for v in severity_ranks(a)?.iter() {
                b.append_option(v.map(|v| set.contains(&v) != negate));
            }
        }
        LiteralSet::Bool(set) => {
            let c = a.as_boolean_opt().ok_or_else(not_bool)?;
            for v in c.iter() {
                b.append_option(v.map(|v| set.contains(&v) != negate));
            }
        }
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn severity_ranks_are_null_where_there_is_no_level() {
        let words: ArrayRef = Arc::new(StringArray::from(vec![
            Some("WARN"),
            None,
            Some("warning"),
            Some("loud"),
            Some("ERROR"),
        ]));
        let ranks = severity_ranks(&words).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<Option<i8>> = ranks.iter().collect();
        assert_eq!(got, [Some(3), None, Some(3), None, Some(4)]);
        let known: ArrayRef = Arc::new(StringArray::from(vec!["INFO", "FATAL"]));
        let ranks = severity_ranks(&known).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ranks.null_count(), 0);
        assert_eq!(ranks.values().to_vec(), [2, 5]);
    }
}
