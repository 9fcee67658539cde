//! `GROUP BY` on dictionary-encoded text, by number.
//!
//! Archive files mark their fully dictionary-encoded text columns (service,
//! severity, message templates, ...), so they are read as
//! `Dictionary(Int32, Utf8)`: the distinct texts once per row group and a
//! small number per row. DataFusion would group them by hashing every row's
//! text. [`DictionaryGroupBy`] groups by a number instead: a per-query
//! [`Interner`] numbers each distinct text (once per batch, not once per
//! row), the aggregation groups by the number (DataFusion's fast path for
//! integers, or [`dense_count`](super::dense_count) for counts), and only the
//! result rows are turned back into text. `EXPLAIN` shows it as
//! `weir_intern(col)` and `weir_lookup(...)`. (`LIKE` on such columns:
//! [`dictionary_like`](super::dictionary_like).)

use arrow::array::{Array, AsArray, DictionaryArray, Int32Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Int32Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{internal_err, Column, Result};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Projection, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use weir_connectors::sinks::archive_file::dictionary_text;

/// Numbers for texts, shared by the `weir_intern` and `weir_lookup` of one
/// rewritten aggregation (and its [`DenseCountExec`](super::dense_count)).
#[derive(Debug, Default)]
pub struct Interner {
    state: Mutex<Texts>,
}

#[derive(Debug, Default)]
struct Texts {
    ids: HashMap<Box<str>, u32>,
    texts: Vec<Box<str>>,
}

/// The number of a dictionary entry no row uses.
pub const UNUSED: u32 = u32::MAX;

impl Interner {
    /// The number of each entry of a dictionary's `values` that `used`
    /// marks ([`UNUSED`] for the others): one lookup per distinct text.
    pub fn number(&self, values: &dyn Array, used: &[bool]) -> Result<Vec<u32>> {
        let Some(values) = values.as_string_opt::<i32>() else {
            return internal_err!("weir_intern: dictionary of {}", values.data_type());
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        used.iter()
            .enumerate()
            .map(|(k, &u)| match u && values.is_valid(k) {
                true => st.id(values.value(k)),
                false => Ok(UNUSED),
            })
            .collect()
    }

    /// The number of each row's text.
    fn intern(&self, dict: &DictionaryArray<Int32Type>) -> Result<UInt32Array> {
        let nulls = dict.logical_nulls();
        let keys = dict.keys().values();
        // Mark the texts this batch uses (a dictionary holds a whole row
        // group's texts), number them, then map the rows.
        let mut used = vec![false; dict.values().len()];
        for (row, &k) in keys.iter().enumerate() {
            if nulls.as_ref().is_none_or(|n| n.is_valid(row)) {
                match used.get_mut(k as usize) {
                    Some(u) => *u = true,
                    None => return internal_err!("weir_intern: key {k} out of range"),
                }
            }
        }
        let local = self.number(dict.values().as_ref(), &used)?;
        let ids: Vec<u32> = keys
            .iter()
            .zip(0..)
            .map(|(&k, row)| match local.get(k as usize) {
                Some(&id) if nulls.as_ref().is_none_or(|n| n.is_valid(row)) => id,
                _ => 0,
            })
            .collect();
        Ok(UInt32Array::new(ids.into(), nulls))
    }

    /// The texts of numbers, as a dictionary again.
    fn lookup(&self, ids: &UInt32Array) -> Result<DictionaryArray<Int32Type>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let texts: StringArray = ids
            .iter()
            .map(|id| {
                id.and_then(|id| st.texts.get(id as usize))
                    .map(|t| t.as_ref())
            })
            .collect();
        let keys: Int32Array = (0..ids.len() as i32)
            .map(|i| texts.is_valid(i as usize).then_some(i))
            .collect();
        Ok(DictionaryArray::try_new(keys, Arc::new(texts))?)
    }
}

impl Texts {
    fn id(&mut self, text: &str) -> Result<u32> {
        if let Some(&id) = self.ids.get(text) {
            return Ok(id);
        }
        let id = match u32::try_from(self.texts.len()) {
            Ok(id) if id != UNUSED => id,
            _ => return internal_err!("weir_intern: more than {UNUSED} distinct texts"),
        };
        self.texts.push(text.into());
        self.ids.insert(text.into(), id);
        Ok(id)
    }
}

/// `weir_intern(col)`: a text column's dictionary as numbers.
#[derive(Debug)]
pub struct Intern {
    interner: Arc<Interner>,
    signature: Signature,
}

/// `weir_lookup(n)`: the numbers as the texts again.
#[derive(Debug)]
struct Lookup {
    interner: Arc<Interner>,
    signature: Signature,
}

/// Two functions are the same when they share an interner.
macro_rules! same_by_interner {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.interner, &other.interner)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, h: &mut H) {
                (Arc::as_ptr(&self.interner) as usize).hash(h);
            }
        }
    };
}
same_by_interner!(Intern);
same_by_interner!(Lookup);

impl Intern {
    /// The interner this function numbers texts with.
    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }
}

/// The one array argument of a function.
fn one_array(name: &str, args: ScalarFunctionArgs) -> Result<arrow::array::ArrayRef> {
    match args.args.as_slice() {
        [arg] => arg.to_array(args.number_rows),
        _ => internal_err!("{name} takes one argument"),
    }
}

impl ScalarUDFImpl for Intern {
    fn name(&self) -> &str {
        "weir_intern"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = one_array(self.name(), args)?;
        let Some(dict) = array.as_dictionary_opt::<Int32Type>() else {
            return internal_err!("weir_intern: {} is not a dictionary", array.data_type());
        };
        Ok(ColumnarValue::Array(Arc::new(self.interner.intern(dict)?)))
    }
}

impl ScalarUDFImpl for Lookup {
    fn name(&self) -> &str {
        "weir_lookup"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(dictionary_text())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = one_array(self.name(), args)?;
        let Some(ids) = array.as_primitive_opt::<arrow::datatypes::UInt32Type>() else {
            return internal_err!("weir_lookup: {} is not a number", array.data_type());
        };
        Ok(ColumnarValue::Array(Arc::new(self.interner.lookup(ids)?)))
    }
}

/// Groups dictionary-encoded text columns by number; see the module doc.
#[derive(Debug, Default)]
pub struct DictionaryGroupBy;

impl OptimizerRule for DictionaryGroupBy {
    fn name(&self) -> &str {
        "weir_dictionary_group_by"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = plan else {
            return Ok(Transformed::no(plan));
        };
        let input = agg.input.schema();
        let encoded: Vec<bool> = agg
            .group_expr
            .iter()
            .map(|e| {
                matches!(e, Expr::Column(_))
                    && e.get_type(input.as_ref())
                        .is_ok_and(|t| t == dictionary_text())
            })
            .collect();
        let grouping_sets = agg
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)));
        if grouping_sets || !encoded.contains(&true) {
            return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
        }
        let interner = Arc::new(Interner::default());
        let signature = Signature::any(1, Volatility::Immutable);
        let intern = ScalarUDF::new_from_impl(Intern {
            interner: interner.clone(),
            signature: signature.clone(),
        });
        let lookup = ScalarUDF::new_from_impl(Lookup {
            interner,
            signature,
        });
        let group: Vec<Expr> = agg
            .group_expr
            .iter()
            .zip(&encoded)
            .enumerate()
            .map(|(i, (e, &enc))| match enc {
                true => intern
                    .call(vec![e.clone()])
                    .alias(format!("__weir_group_{i}")),
                false => e.clone(),
            })
            .collect();
        let inner = Aggregate::try_new(agg.input.clone(), group, agg.aggr_expr.clone())?;
        // The same columns as before, in the same order and with the same
        // names: numbers turned back into texts.
        let exprs: Vec<Expr> = agg
            .schema
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                let (q, f) = inner.schema.qualified_field(i);
                let col = Expr::Column(Column::new(q.cloned(), f.name()));
                let e = match encoded.get(i) {
                    Some(true) => lookup.call(vec![col]),
                    _ => col,
                };
                e.alias_qualified(qualifier.cloned(), field.name())
            })
            .collect();
        let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(inner)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_numbers_come_back_as_the_same_texts() {
        let interner = Interner::default();
        let a: DictionaryArray<Int32Type> = vec![Some("b"), None, Some("a"), Some("b")]
            .into_iter()
            .collect();
        let b: DictionaryArray<Int32Type> = vec![Some("a"), Some("c")].into_iter().collect();
        let ia = interner.intern(&a).unwrap();
        let ib = interner.intern(&b).unwrap();
        assert_eq!(ia.value(0), ia.value(3));
        assert!(ia.is_null(1));
        assert_eq!(ia.value(2), ib.value(0));
        assert_ne!(ib.value(1), ib.value(0));
        let back = interner.lookup(&ia).unwrap();
        let back = arrow::compute::cast(&back, &DataType::Utf8).unwrap();
        let back: Vec<Option<&str>> = back.as_string::<i32>().iter().collect();
        assert_eq!(back, vec![Some("b"), None, Some("a"), Some("b")]);
    }
}
