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

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{SchemaRef, UInt32Type};
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
    let interned = key
        .downcast_ref::<ScalarFunctionExpr>()
        .is_some_and(|f| f.name() == "weir_intern");
    if !matches!(agg.mode(), AggregateMode::Partial)
        || !interned
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
        key.clone(),
        args,
        agg.schema(),
    ))
}

/// Counts rows (and non-null values of each `count` argument) per interned
/// number of one input partition; emits them once the input ends, as a
/// partial aggregation does.
#[derive(Debug)]
pub struct DenseCountExec {
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    args: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DenseCountExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        key: Arc<dyn PhysicalExpr>,
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
            key,
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
            self.key,
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
        let mut r = f(&self.key)?;
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
                self.key.clone(),
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
        let mut counts = Counts::new(self.key.clone(), self.args.clone());
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

/// The counts of one partition.
struct Counts {
    key: Arc<dyn PhysicalExpr>,
    args: Vec<Arc<dyn PhysicalExpr>>,
    /// Rows per number; the last slot is the null group.
    rows: Vec<i64>,
    /// Per argument, non-null values per number (empty while an argument
    /// has never been null: its counts are `rows`).
    values: Vec<Vec<i64>>,
}

impl Counts {
    fn new(key: Arc<dyn PhysicalExpr>, args: Vec<Arc<dyn PhysicalExpr>>) -> Counts {
        let values = vec![Vec::new(); args.len()];
        Counts {
            key,
            args,
            rows: vec![0],
            values,
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let keys = self.key.evaluate(batch)?.into_array(n)?;
        let Some(keys) = keys.as_primitive_opt::<UInt32Type>() else {
            return internal_err!("DenseCountExec: keys of type {}", keys.data_type());
        };
        // The largest number of a row (a null row's slot holds anything).
        let most = match keys.nulls() {
            None => keys.values().iter().max().copied(),
            Some(nulls) => keys
                .values()
                .iter()
                .zip(nulls.iter())
                .filter_map(|(&k, valid)| valid.then_some(k))
                .max(),
        }
        .unwrap_or(0) as usize;
        let null_slot = |len: usize| len - 1;
        if most + 2 > self.rows.len() {
            // Move the null group to the new last slot.
            let nulls = self.rows.pop().unwrap_or(0);
            self.rows.resize(most + 1, 0);
            self.rows.push(nulls);
            for v in self.values.iter_mut().filter(|v| !v.is_empty()) {
                let nulls = v.pop().unwrap_or(0);
                v.resize(most + 1, 0);
                v.push(nulls);
            }
        }
        let slots: Vec<usize> = match keys.nulls() {
            None => keys.values().iter().map(|&k| k as usize).collect(),
            Some(nulls) => keys
                .values()
                .iter()
                .zip(nulls.iter())
                .map(|(&k, valid)| {
                    if valid {
                        k as usize
                    } else {
                        null_slot(self.rows.len())
                    }
                })
                .collect(),
        };
        // Arguments that are null somewhere count apart from the rows.
        let mut apart: Vec<(usize, ArrayRef)> = Vec::new();
        for (i, a) in self.args.iter().enumerate() {
            match a.evaluate(batch)? {
                ColumnarValue::Scalar(s) if !s.is_null() => {}
                ColumnarValue::Scalar(s) => apart.push((i, s.to_array_of_size(n)?)),
                ColumnarValue::Array(a) if a.logical_null_count() == 0 => {}
                ColumnarValue::Array(a) => apart.push((i, a)),
            }
        }
        for &(i, _) in &apart {
            if self.values[i].is_empty() {
                // Until now this argument was never null: it counted the rows.
                self.values[i] = self.rows.clone();
            }
        }
        for &s in &slots {
            self.rows[s] += 1;
        }
        for (i, v) in self
            .values
            .iter_mut()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
        {
            match apart.iter().find(|(j, _)| *j == i) {
                Some((_, a)) => {
                    let valid = a.logical_nulls();
                    for (row, &s) in slots.iter().enumerate() {
                        if valid.as_ref().is_none_or(|n| n.is_valid(row)) {
                            v[s] += 1;
                        }
                    }
                }
                None => {
                    for &s in &slots {
                        v[s] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self, schema: SchemaRef) -> Result<RecordBatch> {
        let null_slot = self.rows.len() - 1;
        let present: Vec<usize> = (0..self.rows.len()).filter(|&s| self.rows[s] > 0).collect();
        let keys: UInt32Array = present
            .iter()
            .map(|&s| (s != null_slot).then_some(s as u32))
            .collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(keys)];
        for v in &self.values {
            let counts = if v.is_empty() { &self.rows } else { v };
            let counts: Int64Array = present.iter().map(|&s| counts[s]).collect();
            columns.push(Arc::new(counts));
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
