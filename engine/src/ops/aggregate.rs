//! Aggregate functions of windows: their per-window state (accumulators), how a
//! row updates them, how two merge (session windows), and their final values.

use super::distinct_sketch::DistinctSketch;
use super::quantile::Quantiles;
use super::samples::{Reservoir, Rows};
use crate::error::{EngineError, Result};
use crate::expr::PhysicalExpr;
use crate::schema::{arrow_type, TZ};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, DurationMicrosecondBuilder,
    Float64Array, Float64Builder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use weir_dsl::Type;

/// The aggregate functions, as the checker resolved them.
pub use weir_dsl::plan::Aggregate as AggKind;

/// One aggregate of a window: what it computes, over which expression, and the
/// type of its result.
pub struct AggSpec {
    pub kind: AggKind,
    pub arg: Option<PhysicalExpr>,
    pub out: Type,
}

/// A single value read from an input column.
#[derive(Debug, Clone, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
pub enum Scalar {
    I(i64),
    F(f64),
    S(Box<str>),
    B(bool),
}

/// Per-window, per-key state of one aggregate (kept in checkpoints).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub enum Acc {
    Count(i64),
    /// The 64-bit hashes of the distinct values seen.
    Distinct(Box<HashSet<u64, BuildHasherDefault<Prehashed>>>),
    /// `approx_count_distinct`: bounded memory whatever the cardinality.
    ApproxDistinct(Box<DistinctSketch>),
    SumI(i64, bool),
    SumF(f64, bool),
    Min(Option<Scalar>),
    Max(Option<Scalar>),
    Avg(f64, u64),
    Quantile(Box<Quantiles>, f64),
    /// Sample events for an alert's evidence.
    Samples(Box<Reservoir>),
}

/// An aggregate's input column for one batch, in the shape accumulators read.
pub enum Input {
    None,
    I(Int64Array),
    F(Float64Array),
    S(StringArray),
    B(BooleanArray),
    /// The whole batch's rows (sample events).
    Rows(Rows),
}

impl AggSpec {
    pub fn new_acc(&self) -> Acc {
        match self.kind {
            AggKind::Count => Acc::Count(0),
            AggKind::CountDistinct => Acc::Distinct(Box::default()),
            AggKind::ApproxCountDistinct => Acc::ApproxDistinct(Box::default()),
            AggKind::Sum if self.out == Type::Int => Acc::SumI(0, false),
            AggKind::Sum => Acc::SumF(0.0, false),
            AggKind::Min => Acc::Min(None),
            AggKind::Max => Acc::Max(None),
            AggKind::Avg => Acc::Avg(0.0, 0),
            AggKind::Quantile(q) => Acc::Quantile(Box::default(), q),
            AggKind::Samples(n) => Acc::Samples(Box::new(Reservoir::new(n))),
        }
    }

    /// Evaluates the argument over a batch.
    pub fn input(&self, batch: &RecordBatch) -> Result<Input> {
        if let AggKind::Samples(_) = self.kind {
            return Ok(Input::Rows(Rows::new(batch)));
        }
        let Some(arg) = &self.arg else {
            return Ok(Input::None);
        };
        let col = arg.eval(batch)?.into_array(batch.num_rows())?;
        let numeric_as_float = matches!(self.kind, AggKind::Avg | AggKind::Quantile(_))
            || (self.kind == AggKind::Sum && self.out == Type::Float);
        Ok(match col.data_type() {
            DataType::Utf8 => Input::S(col.as_string::<i32>().clone()),
            DataType::Boolean => Input::B(col.as_boolean().clone()),
            DataType::Float64 => Input::F(col.as_primitive().clone()),
            _ if numeric_as_float => {
                Input::F(cast(&col, &DataType::Float64)?.as_primitive().clone())
            }
            _ => Input::I(cast(&col, &DataType::Int64)?.as_primitive().clone()),
        })
    }
}

fn read(input: &Input, row: usize) -> Option<Scalar> {
    match input {
        Input::None | Input::Rows(_) => None,
        Input::I(a) => a.is_valid(row).then(|| Scalar::I(a.value(row))),
        Input::F(a) => a.is_valid(row).then(|| Scalar::F(a.value(row))),
        Input::S(a) => a.is_valid(row).then(|| Scalar::S(a.value(row).into())),
        Input::B(a) => a.is_valid(row).then(|| Scalar::B(a.value(row))),
    }
}

fn as_f64(input: &Input, row: usize) -> Option<f64> {
    match input {
        Input::F(a) => a.is_valid(row).then(|| a.value(row)),
        Input::I(a) => a.is_valid(row).then(|| a.value(row) as f64),
        _ => None,
    }
}

/// The hasher of sets of values' hashes: they are hashed already (SipHash,
/// by [`hash_of`]), so hashing them again would only cost time.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn hash_of(input: &Input, row: usize) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match input {
        Input::None | Input::Rows(_) => return None,
        Input::I(a) => a.is_valid(row).then(|| a.value(row).hash(&mut h))?,
        Input::F(a) => a
            .is_valid(row)
            .then(|| a.value(row).to_bits().hash(&mut h))?,
        Input::S(a) => a.is_valid(row).then(|| a.value(row).hash(&mut h))?,
        Input::B(a) => a.is_valid(row).then(|| a.value(row).hash(&mut h))?,
    }
    Some(h.finish())
}

impl Acc {
    /// Adds row `row` of `input`.
    #[inline]
    pub fn update(&mut self, input: &Input, row: usize) {
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Distinct(set) => {
                if let Some(h) = hash_of(input, row) {
                    set.insert(h);
                }
            }
            Acc::ApproxDistinct(sketch) => {
                if let Some(h) = hash_of(input, row) {
                    sketch.add(h);
                }
            }
            Acc::SumI(s, seen) => {
                if let Input::I(a) = input {
                    if a.is_valid(row) {
                        *s = s.wrapping_add(a.value(row));
                        *seen = true;
                    }
                }
            }
            Acc::SumF(s, seen) => {
                if let Some(v) = as_f64(input, row) {
                    *s += v;
                    *seen = true;
                }
            }
            Acc::Min(cur) => {
                if let Some(v) = read(input, row) {
                    if cur.as_ref().is_none_or(|c| v < *c) {
                        *cur = Some(v);
                    }
                }
            }
            Acc::Max(cur) => {
                if let Some(v) = read(input, row) {
                    if cur.as_ref().is_none_or(|c| v > *c) {
                        *cur = Some(v);
                    }
                }
            }
            Acc::Avg(s, n) => {
                if let Some(v) = as_f64(input, row) {
                    *s += v;
                    *n += 1;
                }
            }
            Acc::Quantile(sk, _) => {
                if let Some(v) = as_f64(input, row) {
                    sk.add(v);
                }
            }
            Acc::Samples(r) => {
                if let Input::Rows(rows) = input {
                    r.offer(rows, row);
                }
            }
        }
    }

    /// Folds `other` (same aggregate) into `self`, leaving it as it is:
    /// what a sliding window does with each of its panes.
    pub fn merge_from(&mut self, other: &Acc) {
        // Sets and sketches by reference; the rest is cheap to copy.
        match (&mut *self, other) {
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b.iter().copied()),
            (Acc::ApproxDistinct(a), Acc::ApproxDistinct(b)) => a.merge(b),
            (Acc::Quantile(a, _), Acc::Quantile(b, _)) => a.merge_from(b),
            _ => self.merge(other.clone()),
        }
    }

    /// Folds `other` (same aggregate) into `self`.
    pub fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(*b),
            (Acc::ApproxDistinct(a), Acc::ApproxDistinct(b)) => a.merge(&b),
            (Acc::SumI(a, sa), Acc::SumI(b, sb)) => {
                *a = a.wrapping_add(b);
                *sa |= sb;
            }
            (Acc::SumF(a, sa), Acc::SumF(b, sb)) => {
                *a += b;
                *sa |= sb;
            }
            (Acc::Min(a), Acc::Min(Some(b))) if a.as_ref().is_none_or(|c| b < *c) => {
                *a = Some(b);
            }
            (Acc::Max(a), Acc::Max(Some(b))) if a.as_ref().is_none_or(|c| b > *c) => {
                *a = Some(b);
            }
            (Acc::Avg(a, n), Acc::Avg(b, m)) => {
                *a += b;
                *n += m;
            }
            (Acc::Quantile(a, _), Acc::Quantile(b, _)) => a.merge_from(&b),
            (Acc::Samples(a), Acc::Samples(b)) => a.merge(*b),
            _ => {}
        }
    }

    fn finish(&self) -> Option<Scalar> {
        match self {
            Acc::Count(n) => Some(Scalar::I(*n)),
            Acc::Distinct(s) => Some(Scalar::I(s.len() as i64)),
            Acc::ApproxDistinct(s) => Some(Scalar::I(s.count())),
            Acc::SumI(s, seen) => seen.then_some(Scalar::I(*s)),
            Acc::SumF(s, seen) => seen.then_some(Scalar::F(*s)),
            Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::Avg(s, n) => (*n > 0).then(|| Scalar::F(*s / *n as f64)),
            Acc::Quantile(values, q) => values.value(*q).map(Scalar::F),
            Acc::Samples(r) => Some(Scalar::S(r.json().into())),
        }
    }
}

/// Builds the output column of one aggregate from final states.
pub fn build_column<'a>(out: Type, accs: impl Iterator<Item = &'a Acc>) -> Result<ArrayRef> {
    let values = accs.map(Acc::finish);
    let col: ArrayRef = match out {
        Type::Int => {
            let mut b = Int64Builder::new();
            for v in values {
                b.append_option(match v {
                    Some(Scalar::I(i)) => Some(i),
                    Some(Scalar::F(f)) => Some(f as i64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Type::Float => {
            let mut b = Float64Builder::new();
            for v in values {
                b.append_option(match v {
                    Some(Scalar::F(f)) => Some(f),
                    Some(Scalar::I(i)) => Some(i as f64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Type::Bool => {
            let mut b = BooleanBuilder::new();
            for v in values {
                b.append_option(match v {
                    Some(Scalar::B(x)) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Type::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone(TZ);
            for v in values {
                b.append_option(match v {
                    Some(Scalar::I(i)) => Some(i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        Type::Duration => {
            let mut b = DurationMicrosecondBuilder::new();
            for v in values {
                b.append_option(match v {
                    Some(Scalar::I(i)) => Some(i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    Some(Scalar::S(s)) => b.append_value(&*s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    };
    if col.data_type() != &arrow_type(out) {
        return Err(EngineError::Internal(format!(
            "aggregate built {} for {out}",
            col.data_type()
        )));
    }
    Ok(col)
}
