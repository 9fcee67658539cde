//! Partial `count` aggregation over interned numbers.
//!
//! [`DictionaryGroupBy`](super::dictionary::DictionaryGroupBy) groups
//! dictionary-encoded text by `weir_intern(col)`, whose numbers are dense
//! (0, 1, 2, ...). Where every aggregate is a plain `count`, the
//! [`DenseCountRule`] puts a [`DenseCountExec`] in place of DataFusion's
//! partial aggregation: counts live in a vector indexed by the number
//! instead of a hash table (one add per row instead of a hash and a probe).
//! Grouped by two such columns (`GROUP BY service, severity`), a batch is
//! counted in a grid of the two columns' dictionary entries (one add per
//! row, at `first × width + second`), and only the grid's used cells are
//! added up under the pairs of numbers.
//! Its output is the partial aggregation's, so DataFusion's final
//! aggregation merges it unchanged.

use super::dictionary::{Intern, Interner, UNUSED};
use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int64Array, RecordBatch, UInt32Array,
};
use arrow::buffer::NullBuffer;
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
use std::collections::HashMap;
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
/// counts grouped by one or two `weir_intern(...)`.
fn dense_count(plan: &dyn ExecutionPlan) -> Option<DenseCountExec> {
    let agg = plan.downcast_ref::<AggregateExec>()?;
    let group = agg.group_expr();
    if !(1..=2).contains(&group.expr().len()) {
        return None;
    }
    let mut groups = Vec::new();
    for (key, _) in group.expr() {
        let call = key.downcast_ref::<ScalarFunctionExpr>()?;
        let intern = (call.fun().inner().as_ref() as &dyn Any).downcast_ref::<Intern>()?;
        let [column] = call.args() else {
            return None;
        };
        groups.push(Grouping {
            key: key.clone(),
            column: column.clone(),
            interner: intern.interner().clone(),
        });
    }
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
        groups,
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
/// number (or pair of numbers) of one input partition; emits them once the
/// input ends, as a partial aggregation does.
#[derive(Debug)]
pub struct DenseCountExec {
    input: Arc<dyn ExecutionPlan>,
    /// One or two.
    groups: Vec<Grouping>,
    args: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DenseCountExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        groups: Vec<Grouping>,
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
            groups,
            args,
            schema,
            properties,
        }
    }
}

impl DisplayAs for DenseCountExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.groups.iter().map(|g| g.key.to_string()).collect();
        write!(
            f,
            "DenseCountExec: gby=[{}], counts={}",
            keys.join(", "),
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
        let mut r = TreeNodeRecursion::Continue;
        for a in self.groups.iter().map(|g| &g.key).chain(&self.args) {
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
                self.groups.clone(),
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
        let input = self.input.execute(partition, context)?;
        let schema = self.schema.clone();
        let args = self.args.clone();
        let out = match self.groups.as_slice() {
            [group] => count_input(input, Counts::new(group.clone(), args), schema),
            [first, second] => count_input(
                input,
                PairCounts::new([first.clone(), second.clone()], args),
                schema,
            ),
            _ => return internal_err!("DenseCountExec groups by one or two columns"),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(out),
        )))
    }
}

/// The counts of one partition, by one interned column or two.
trait Tallies: Send + 'static {
    fn add(&mut self, batch: &RecordBatch) -> Result<()>;
    fn finish(self, schema: SchemaRef) -> Result<RecordBatch>;
}

/// Counts every batch of `input`, then the partial aggregation's one batch.
fn count_input<C: Tallies>(
    mut input: SendableRecordBatchStream,
    mut counts: C,
    schema: SchemaRef,
) -> futures::future::BoxFuture<'static, Result<RecordBatch>> {
    Box::pin(async move {
        while let Some(batch) = input.next().await {
            counts.add(&batch?)?;
        }
        counts.finish(schema)
    })
}

/// Per argument of `count`, the rows it counts in a batch, when that is
/// not every row: `None` when the argument is null nowhere (it counts the
/// rows), else its valid rows (`Some(None)`: none, a null constant). Such
/// arguments are counted apart from the rows.
fn valid_rows(
    args: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<Option<Option<NullBuffer>>>> {
    args.iter()
        .map(|arg| {
            Ok(match arg.evaluate(batch)? {
                ColumnarValue::Scalar(s) if !s.is_null() => None,
                ColumnarValue::Scalar(_) => Some(None),
                ColumnarValue::Array(x) if x.logical_null_count() == 0 => None,
                ColumnarValue::Array(x) => Some(x.logical_nulls()),
            })
        })
        .collect()
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
}

impl Tallies for Counts {
    /// Counts a batch per dictionary entry (one add per row), then adds
    /// the counts under the entries' numbers (one lookup per entry).
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let column = self.group.column.evaluate(batch)?.into_array(n)?;
        let s = Slots::of(&column)?;
        let width = s.width;
        let mut rows = vec![0i64; width + 1];
        if s.nulls.is_none() {
            for &k in s.keys {
                if let Some(c) = rows.get_mut(k as usize) {
                    *c += 1;
                }
            }
        } else {
            for row in 0..n {
                rows[s.slot(row)] += 1;
            }
        }
        let mut apart: Vec<(usize, Vec<i64>)> = Vec::new();
        for (i, valid) in valid_rows(&self.args, batch)?.into_iter().enumerate() {
            let Some(valid) = valid else { continue };
            let mut per_key = vec![0i64; width + 1];
            if let Some(valid) = valid {
                for row in (0..n).filter(|&r| valid.is_valid(r)) {
                    per_key[s.slot(row)] += 1;
                }
            }
            apart.push((i, per_key));
        }
        let used: Vec<bool> = rows[..width].iter().map(|&c| c > 0).collect();
        let ids = s.numbers(&self.group.interner, &used)?;
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

/// A batch's counts per cell of its dictionaries' grid: a vector while the
/// grid is small beside the batch, else a map of the cells used.
enum Cells {
    Dense(Vec<i64>),
    Sparse(HashMap<usize, i64>),
}

impl Cells {
    fn new(cells: usize, rows: usize) -> Cells {
        if cells <= rows.saturating_mul(4).max(4096) {
            Cells::Dense(vec![0; cells])
        } else {
            Cells::Sparse(HashMap::new())
        }
    }

    /// Adds one at each cell.
    fn count(&mut self, cells: impl Iterator<Item = usize>) {
        match self {
            Cells::Dense(v) => {
                for i in cells {
                    if let Some(c) = v.get_mut(i) {
                        *c += 1;
                    }
                }
            }
            Cells::Sparse(m) => {
                for i in cells {
                    *m.entry(i).or_default() += 1;
                }
            }
        }
    }

    fn get(&self, cell: usize) -> i64 {
        match self {
            Cells::Dense(v) => v.get(cell).copied().unwrap_or(0),
            Cells::Sparse(m) => m.get(&cell).copied().unwrap_or(0),
        }
    }

    /// The cells counted, with their counts.
    fn used(&self) -> Vec<(usize, i64)> {
        match self {
            Cells::Dense(v) => v
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| (i, c))
                .collect(),
            Cells::Sparse(m) => m.iter().map(|(&i, &c)| (i, c)).collect(),
        }
    }
}

/// One grouping column of a batch: its dictionary's keys, and the slot of
/// each row (its entry; `width` for a null).
struct Slots<'a> {
    dict: &'a DictionaryArray<Int32Type>,
    keys: &'a [i32],
    width: usize,
    nulls: Option<NullBuffer>,
}

impl<'a> Slots<'a> {
    fn of(column: &'a ArrayRef) -> Result<Slots<'a>> {
        let Some(dict) = column.as_dictionary_opt::<Int32Type>() else {
            return internal_err!("DenseCountExec: {} is not a dictionary", column.data_type());
        };
        Ok(Slots {
            dict,
            keys: dict.keys().values(),
            width: dict.values().len(),
            nulls: dict.logical_nulls(),
        })
    }

    #[inline]
    fn slot(&self, row: usize) -> usize {
        match &self.nulls {
            Some(n) if n.is_null(row) => self.width,
            _ => (self.keys[row] as usize).min(self.width),
        }
    }

    /// The numbers of the entries `used` marks.
    fn numbers(&self, interner: &Interner, used: &[bool]) -> Result<Vec<u32>> {
        interner.number(self.dict.values().as_ref(), used)
    }
}

/// The counts of one partition grouped by two interned columns: per pair
/// of numbers (`None` for null), the rows and each argument's non-null
/// values.
struct PairCounts {
    groups: [Grouping; 2],
    args: Vec<Arc<dyn PhysicalExpr>>,
    by_pair: HashMap<Pair, Vec<i64>>,
}

/// A pair of numbers (`None`: null).
type Pair = (Option<u32>, Option<u32>);

impl PairCounts {
    fn new(groups: [Grouping; 2], args: Vec<Arc<dyn PhysicalExpr>>) -> PairCounts {
        PairCounts {
            groups,
            args,
            by_pair: HashMap::new(),
        }
    }
}

impl Tallies for PairCounts {
    /// Counts a batch in the grid of its two dictionaries (one add per
    /// row), then adds the used cells under their pairs of numbers.
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let first = self.groups[0].column.evaluate(batch)?.into_array(n)?;
        let second = self.groups[1].column.evaluate(batch)?.into_array(n)?;
        let (a, b) = (Slots::of(&first)?, Slots::of(&second)?);
        let stride = b.width + 1;
        let Some(cells) = (a.width + 1).checked_mul(stride) else {
            return internal_err!("DenseCountExec: dictionaries too large");
        };
        let cell = |row: usize| a.slot(row) * stride + b.slot(row);
        let mut rows = Cells::new(cells, n);
        if a.nulls.is_none() && b.nulls.is_none() {
            let (wa, wb) = (a.width, b.width);
            rows.count(
                a.keys
                    .iter()
                    .zip(b.keys)
                    .map(|(&x, &y)| (x as usize).min(wa) * stride + (y as usize).min(wb)),
            );
        } else {
            rows.count((0..n).map(cell));
        }
        let apart: Vec<Option<Cells>> = valid_rows(&self.args, batch)?
            .into_iter()
            .map(|valid| {
                valid.map(|valid| {
                    let mut c = Cells::new(cells, n);
                    if let Some(valid) = valid {
                        c.count((0..n).filter(|&r| valid.is_valid(r)).map(cell));
                    }
                    c
                })
            })
            .collect();
        let used = rows.used();
        let (mut used_a, mut used_b) = (vec![false; a.width], vec![false; b.width]);
        for &(i, _) in &used {
            if let Some(u) = used_a.get_mut(i / stride) {
                *u = true;
            }
            if let Some(u) = used_b.get_mut(i % stride) {
                *u = true;
            }
        }
        let ids_a = a.numbers(&self.groups[0].interner, &used_a)?;
        let ids_b = b.numbers(&self.groups[1].interner, &used_b)?;
        let width = 1 + self.args.len();
        for (i, c) in used {
            let number = |ids: &[u32], k: usize| ids.get(k).copied().filter(|&id| id != UNUSED);
            let pair = (number(&ids_a, i / stride), number(&ids_b, i % stride));
            let counts = self.by_pair.entry(pair).or_insert_with(|| vec![0; width]);
            counts[0] += c;
            for (j, apart) in apart.iter().enumerate() {
                counts[1 + j] += apart.as_ref().map_or(c, |x| x.get(i));
            }
        }
        Ok(())
    }

    fn finish(self, schema: SchemaRef) -> Result<RecordBatch> {
        let pairs: Vec<(&Pair, &Vec<i64>)> = self.by_pair.iter().collect();
        let first: UInt32Array = pairs.iter().map(|(k, _)| k.0).collect();
        let second: UInt32Array = pairs.iter().map(|(k, _)| k.1).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(first), Arc::new(second)];
        for j in 0..self.args.len() {
            let counts: Int64Array = pairs.iter().map(|(_, c)| c[1 + j]).collect();
            columns.push(Arc::new(counts));
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
