//! Operators: the steps of a pipeline. Each takes record batches and returns
//! record batches; windows also emit when event time moves on or the stream ends.
//!
//! Each operator builds itself from its checked stage (`from_stage`, next to
//! the operator, as Arroyo's operator constructors do) out of a
//! [`StageContext`]: the stage's plan from the checker, the schemas around it
//! and what the pipeline shares. `CompiledPipeline::compile` only dispatches.

pub mod aggregate;
pub mod alert;
pub mod distinct_sketch;
pub mod filter;
pub mod geoip;
pub mod key_table;
pub mod quantile;
pub mod repartition;
pub mod samples;
pub mod transform;
pub mod window;

use crate::alerting::AlertSink;
use crate::error::{EngineError, Result};
use crate::expr::{compile, CompileContext, PhysicalExpr};
use crate::functions::TableCache;
use crate::metrics::Metrics;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;
use weir_dsl::ast::Expr;
use weir_dsl::plan::StagePlan;
use weir_dsl::Schema;

/// What an operator is built from.
pub struct StageContext<'a> {
    /// The pipeline's name (metric labels, alert rules).
    pub pipeline: &'a str,
    /// What the checker resolved about the stage.
    pub plan: &'a StagePlan,
    /// The schema the stage sees, and the one it hands on.
    pub input: &'a Schema,
    pub output: &'a Schema,
    pub tables: &'a mut TableCache,
    pub alerts: &'a Arc<dyn AlertSink>,
    pub metrics: &'a Metrics,
}

impl StageContext<'_> {
    /// Compiles a checked expression against the stage's input.
    pub fn compile(&mut self, e: &Expr) -> Result<PhysicalExpr> {
        compile(
            e,
            self.input,
            &mut CompileContext {
                tables: self.tables,
            },
        )
    }

    /// The plan was not the one this stage kind gets from the checker.
    pub fn wrong_plan(&self, stage: &str) -> EngineError {
        EngineError::Internal(format!(
            "the {stage} stage of pipeline `{}` has no {stage} plan",
            self.pipeline
        ))
    }
}

/// Several operators run as one step (the assignments of one `set`).
pub struct Chain(pub Vec<Box<dyn Operator>>);

impl Operator for Chain {
    fn name(&self) -> &'static str {
        self.0.first().map(|o| o.name()).unwrap_or("set")
    }

    fn take_rejects(&mut self) -> Vec<(RecordBatch, String)> {
        self.0.iter_mut().flat_map(|o| o.take_rejects()).collect()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mut carry = vec![batch];
        for op in &mut self.0 {
            let mut next = Vec::with_capacity(carry.len());
            for b in carry {
                next.extend(op.process(b)?);
            }
            carry = next;
        }
        Ok(carry)
    }
}

/// One synchronous step of a pipeline.
pub trait Operator: Send + Sync {
    /// A short name for metrics (`where`, `set`, `window`...).
    fn name(&self) -> &'static str;

    /// Processes one batch, returning zero or more batches for the next step.
    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>>;

    /// Rows the last [`process`](Self::process) could not take (input rows,
    /// with why), for the source's dead letters; the pipeline asks after
    /// each batch.
    fn take_rejects(&mut self) -> Vec<(RecordBatch, String)> {
        Vec::new()
    }

    /// Called when no data arrived for a while: `idle_us` of wall-clock time
    /// passed. Windows use it to move event time on for idle streams.
    fn on_idle(&mut self, _idle_us: i64) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// Event time moved to `ts` (a simulated clock in `weir test`): windows
    /// ending by then (less lateness) close.
    fn advance_to(&mut self, _ts: i64) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// Event time up to which this operator has emitted everything (windows),
    /// so later steps can tell a quiet key from a late one.
    fn watermark(&self) -> Option<i64> {
        None
    }

    /// The watermark of an earlier step moved (after its batches were processed).
    fn on_watermark(&mut self, _watermark: i64) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// The stream ended: emit everything still held.
    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }

    /// The source reads these partitions from now on (a Kafka assignment).
    fn on_partitions(&mut self, _ids: &[i64]) {}

    /// For an operator with state worth keeping across restarts (windows):
    /// what that state means (its checked definition). A checkpoint is
    /// restored only into an operator of the same definition.
    fn state_definition(&self) -> Option<&str> {
        None
    }

    /// The state at a checkpoint, as bytes (`None`: stateless).
    fn snapshot(&self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Takes back the state of [`Operator::snapshot`].
    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Whether its state is kept per source partition (each key's events
    /// come from one partition), so it can move with a partition.
    fn per_partition(&self) -> bool {
        false
    }

    /// The state split by source partition: per partition it holds keys
    /// or event time of, that partition's part (each a state
    /// [`Operator::restore_partition`] takes).
    fn snapshot_partitions(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(Vec::new())
    }

    /// Takes one partition's state in beside what it holds (the partition
    /// was assigned to this process).
    fn restore_partition(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }

    /// The source no longer reads these partitions (a rebalance took them
    /// away, after a checkpoint saved their state): forget their keys.
    fn revoke_partitions(&mut self, _ids: &[i64]) {}

    /// State kept outside the pipeline (the alert manager's) to write
    /// before a checkpoint's positions are committed.
    fn save_job(&self) -> Option<crate::alerting::rule::SaveJob> {
        None
    }
}
