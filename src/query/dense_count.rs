//! Partial `count` aggregation over interned numbers.
//!
//! [`DictionaryGroupBy`](super::dictionary::DictionaryGroupBy) groups
//! dictionary-encoded text by `weir_intern(col)`, whose numbers are dense
//! (0, 1, 2, ...). Where every aggregate is a plain `count`, the
//! [`DenseCountRule`] puts a [`DenseCountExec`] in place of DataFusion's
//! partial aggregation: counts live in a vector indexed by the number
//! instead of a hash table (one add per row instead of a hash and a probe).
//! Its output is the partial aggregation's, so DataFusion's final
//! aggregation merges it unchanged.

use super::dictionary::{Intern, Interner, UNUSED};
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{Int32Type, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Replaces partial `count`s grouped by `weir_intern(...)`; see the module doc.
#[derive(Debug, Default)]
pub struct DenseCountRule;

impl PhysicalOptimizerRule for DenseCountRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|p| {
            Ok(match dense_count(p.as_ref()) {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(p),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "weir_dense_count"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The replacement for `plan`, when it is a partial aggregation of plain
/// counts grouped by one `weir_intern(...)`.
fn dense_count(plan: &dyn ExecutionPlan) -> Option<DenseCountExec> {
    let agg = plan.downcast_ref::<AggregateExec>()?;
    let group = agg.group_expr();
    let [(key, _)] = group.expr() else {
        return None;
    };
    let call = key.downcast_ref::<ScalarFunctionExpr>()?;
    let intern = (call.fun().inner().as_ref() as &dyn Any).downcast_ref::<Intern>()?;
    let [column] = call.args() else {
        return None;
    };
    if !matches!(agg.mode(), AggregateMode::Partial)
        || group.has_grouping_set()
        || agg.limit_options().is_some()
        || agg.filter_expr().iter().any(Option::is_some)
    {
        return None;
    }
    let mut args = Vec::new();
    for a in agg.aggr_expr() {
        let plain_count = a.fun().name() == "count" && !a.is_distinct();
        match a.expressions().as_slice() {
            [arg] if plain_count => args.push(arg.clone()),
            _ => return None,
        }
    }
    Some(DenseCountExec::new(
        agg.input().clone(),
        Grouping {
            key: key.clone(),
            column: column.clone(),
            interner: intern.interner().clone(),
        },
        args,
        agg.schema(),
    ))
}

/// What a [`DenseCountExec`] groups by: `key` is `weir_intern(column)`.
#[derive(Debug, Clone)]
struct Grouping {
    key: Arc<dyn PhysicalExpr>,
    column: Arc<dyn PhysicalExpr>,
    interner: Arc<Interner>,
}

/// Counts rows (and non-null values of each `count` argument) per interned
/// number of one input partition; emits them once the input ends, as a
/// partial aggregation does.
#[derive(Debug)]
pub struct DenseCountExec {
    input: Arc<dyn ExecutionPlan>,
    group: Grouping,
    args: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DenseCountExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        group: Grouping,
        args: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> DenseCountExec {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.properties().output_partitioning().clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DenseCountExec {
            input,
            group,
            args,
            schema,
            properties,
        }
    }
}

impl DisplayAs for DenseCountExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DenseCountExec: gby=[{}], counts={}",
            self.group.key,
            self.args.len()
        )
    }
}

impl ExecutionPlan for DenseCountExec {
    fn name(&self) -> &str {
        "DenseCountExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let mut r = f(&self.group.key)?;
        for a in &self.args {
            if r == TreeNodeRecursion::Stop {
                break;
            }
            r = f(a)?;
        }
        Ok(r)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [input] => Ok(Arc::new(DenseCountExec::new(
                input.clone(),
                self.group.clone(),
                self.args.clone(),
                self.schema.clone(),
            ))),
            _ => internal_err!("DenseCountExec takes one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, context)?;
        let mut counts = Counts::new(self.group.clone(), self.args.clone());
        let schema = self.schema.clone();
        let out = async move {
            while let Some(batch) = input.next().await {
                counts.add(&batch?)?;
            }
            counts.finish(schema)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(out),
        )))
    }
}

/// Counts by number, and of the null group.
#[derive(Debug, Clone, Default)]
struct Tally {
    by_id: Vec<i64>,
    null: i64,
}

impl Tally {
    /// Adds a batch's counts per dictionary entry (`per_key`, the null
    /// group last) under the entries' numbers.
    fn add(&mut self, ids: &[u32], per_key: &[i64]) {
        for (&id, &c) in ids.iter().zip(per_key) {
            if c == 0 || id == UNUSED {
                continue;
            }
            let id = id as usize;
            if id >= self.by_id.len() {
                self.by_id.resize(id + 1, 0);
            }
            self.by_id[id] += c;
        }
        self.null += per_key.get(ids.len()).copied().unwrap_or(0);
    }

    fn get(&self, id: Option<usize>) -> i64 {
        match id {
            Some(id) => self.by_id.get(id).copied().unwrap_or(0),
            None => self.null,
        }
    }
}

/// The counts of one partition.
struct Counts {
    group: Grouping,
    args: Vec<Arc<dyn PhysicalExpr>>,
    rows: Tally,
    /// Per argument, its non-null values; `None` while the argument has
    /// never been null (its counts are `rows`).
    values: Vec<Option<Tally>>,
}

impl Counts {
    fn new(group: Grouping, args: Vec<Arc<dyn PhysicalExpr>>) -> Counts {
        let values = vec![None; args.len()];
        Counts {
            group,
            args,
            rows: Tally::default(),
            values,
        }
    }

    /// Counts a batch per dictionary entry (one add per row), then adds
    /// the counts under the entries' numbers (one lookup per entry).
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let column = self.group.column.evaluate(batch)?.into_array(n)?;
        let Some(dict) = column.as_dictionary_opt::<Int32Type>() else {
            return internal_err!("DenseCountExec: {} is not a dictionary", column.data_type());
        };
        let width = dict.values().len();
        let nulls = dict.logical_nulls();
        // The dictionary entry of each row; `width` for null rows.
        let slot = |row: usize, k: i32| match &nulls {
            Some(n) if n.is_null(row) => width,
            _ => (k as usize).min(width),
        };
        let keys = dict.keys().values();
        let mut rows = vec![0i64; width + 1];
        match &nulls {
            None => {
                for &k in keys.iter() {
                    if let Some(c) = rows.get_mut(k as usize) {
                        *c += 1;
                    }
                }
            }
            Some(_) => {
                for (row, &k) in keys.iter().enumerate() {
                    rows[slot(row, k)] += 1;
                }
            }
        }
        // Arguments that are null somewhere count apart from the rows.
        let mut apart: Vec<(usize, Vec<i64>)> = Vec::new();
        for (i, a) in self.args.iter().enumerate() {
            let valid = match a.evaluate(batch)? {
                ColumnarValue::Scalar(s) if !s.is_null() => continue,
                ColumnarValue::Scalar(_) => None,
                ColumnarValue::Array(a) if a.logical_null_count() == 0 => continue,
                ColumnarValue::Array(a) => a.logical_nulls(),
            };
            let mut per_key = vec![0i64; width + 1];
            if let Some(valid) = valid {
                for (row, &k) in keys.iter().enumerate() {
                    if valid.is_valid(row) {
                        per_key[slot(row, k)] += 1;
                    }
                }
            }
            apart.push((i, per_key));
        }
        let used: Vec<bool> = rows[..width].iter().map(|&c| c > 0).collect();
        let ids = self.group.interner.number(dict.values().as_ref(), &used)?;
        for (i, per_key) in &apart {
            if let Some(v) = self.values.get_mut(*i) {
                // Until now this argument was never null: it counted the rows.
                v.get_or_insert_with(|| self.rows.clone())
                    .add(&ids, per_key);
            }
        }
        for (i, v) in self.values.iter_mut().enumerate() {
            if let Some(v) = v.as_mut().filter(|_| apart.iter().all(|(j, _)| *j != i)) {
                v.add(&ids, &rows);
            }
        }
        self.rows.add(&ids, &rows);
        Ok(())
    }

    fn finish(self, schema: SchemaRef) -> Result<RecordBatch> {
        let mut present: Vec<Option<usize>> = (0..self.rows.by_id.len())
            .filter(|&id| self.rows.by_id[id] > 0)
            .map(Some)
            .collect();
        if self.rows.null > 0 {
            present.push(None);
        }
        let keys: UInt32Array = present.iter().map(|id| id.map(|id| id as u32)).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(keys)];
        for v in &self.values {
            let tally = v.as_ref().unwrap_or(&self.rows);
            let counts: Int64Array = present.iter().map(|&id| tally.get(id)).collect();
            columns.push(Arc::new(counts));
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
