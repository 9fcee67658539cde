//! Compiles a checked pipeline into a chain of operators and outputs (each
//! operator builds itself from its stage: see [`crate::ops`]), and runs
//! batches through it.

use crate::alerting::AlertSink;
use crate::connector::Sink;
use crate::error::{EngineError, Result};
use crate::expr::{compile, CompileContext, PhysicalExpr};
use crate::functions::TableCache;
use crate::metrics::Metrics;
use crate::ops::alert::AlertOp;
use crate::ops::filter::Filter;
use crate::ops::geoip::Geoip;
use crate::ops::repartition::Repartition;
use crate::ops::transform::{Parse, Project};
use crate::ops::window::Window;
use crate::ops::{Operator, StageContext};
use arrow::record_batch::RecordBatch;
use prometheus::IntCounter;
use std::collections::HashMap;
use std::sync::Arc;
use weir_dsl::ast::StageKind;
use weir_dsl::{CheckedPipeline, CheckedProgram};

/// One step: a synchronous operator, or an output that batches are written to
/// (and passed on from).
pub enum Step {
    Op(Box<dyn Operator>),
    Output { name: String, sink: Arc<dyn Sink> },
}

struct StepMetrics {
    events_in: IntCounter,
    events_out: IntCounter,
}

/// A runnable pipeline.
pub struct CompiledPipeline {
    pub name: String,
    pub source: String,
    steps: Vec<(Step, StepMetrics)>,
    latency: prometheus::Histogram,
    kept: Option<Vec<RecordBatch>>,
    /// Checkpointed state (see [`crate::checkpoint`]): per source
    /// partition, the last offset pushed through (`None`: not tracked).
    positions: Option<HashMap<i64, i64>>,
    /// After a restore: per partition, the last offset the restored state
    /// holds; replayed events up to it are dropped.
    holds: HashMap<i64, i64>,
    /// Where rows a step rejects go (the source's dead letters), and their
    /// count; without one (`weir test`, backtests) they are dropped.
    dead: Option<(
        Arc<dyn crate::connector::DeadLetterSink>,
        prometheus::IntCounter,
    )>,
}

/// What compiling a pipeline needs from its surroundings.
pub struct PipelineContext<'a> {
    pub tables: &'a mut TableCache,
    pub outputs: &'a HashMap<String, Arc<dyn Sink>>,
    pub alerts: Arc<dyn AlertSink>,
    pub metrics: &'a Metrics,
}

/// Compiles every pipeline of a program, sharing lookup tables and outputs.
pub fn compile_pipelines(
    program: &CheckedProgram,
    tables: &mut TableCache,
    outputs: &HashMap<String, Arc<dyn Sink>>,
    alerts: Arc<dyn AlertSink>,
    metrics: &Metrics,
) -> Result<Vec<CompiledPipeline>> {
    program
        .pipelines
        .iter()
        .map(|cp| {
            let mut cx = PipelineContext {
                tables: &mut *tables,
                outputs,
                alerts: alerts.clone(),
                metrics,
            };
            CompiledPipeline::compile(cp, &mut cx)
        })
        .collect()
}

impl CompiledPipeline {
    /// Builds each stage's operator (its `from_stage`) or output.
    pub fn compile(cp: &CheckedPipeline, cx: &mut PipelineContext<'_>) -> Result<CompiledPipeline> {
        let p = &cp.pipeline;
        let name = p.name.name.clone();
        let mut steps = Vec::with_capacity(p.stages.len());
        for (i, stage) in p.stages.iter().enumerate() {
            let (Some(input), Some(output), Some(plan)) =
                (cp.schemas.get(i), cp.schemas.get(i + 1), cp.plans.get(i))
            else {
                return Err(EngineError::Internal(format!(
                    "pipeline `{name}`: stage {i} has no schema or plan"
                )));
            };
            let mut s = StageContext {
                pipeline: &name,
                plan,
                input,
                output,
                tables: &mut *cx.tables,
                alerts: &cx.alerts,
                metrics: cx.metrics,
            };
            fn op(o: impl Operator + 'static) -> Step {
                Step::Op(Box::new(o))
            }
            let step = match &stage.kind {
                StageKind::Where(cond) => op(Filter::from_stage(cond, &mut s)?),
                StageKind::Set(assigns) => op(Project::set_from_stage(assigns, &mut s)?),
                StageKind::Rename(pairs) => op(Project::from_stage("rename", pairs, &s)?),
                StageKind::Drop(_) => op(Project::from_stage("drop", &[], &s)?),
                StageKind::Parse { field, .. } => op(Parse::from_stage(&field.name, &s)?),
                StageKind::Geoip {
                    field,
                    database,
                    prefix,
                } => op(Geoip::from_stage(
                    &field.name,
                    database,
                    prefix.as_ref().map(|p| p.name.as_str()),
                    &mut s,
                )?),
                StageKind::Window(_) => op(Window::from_stage(&mut s)?),
                StageKind::Alert(a) => op(AlertOp::from_stage(a, &mut s)?),
                StageKind::Repartition(_) => op(Repartition::from_stage(&mut s)?),
                StageKind::To(out) => Step::Output {
                    name: out.name.clone(),
                    sink: cx.outputs.get(&out.name).cloned().ok_or_else(|| {
                        EngineError::plan(out.span, format!("unknown output `{}`", out.name))
                    })?,
                },
                StageKind::Unknown(w) => {
                    return Err(EngineError::plan(
                        w.span,
                        format!("unknown stage `{}`", w.name),
                    ))
                }
            };
            let op_name = match &step {
                Step::Op(o) => o.name(),
                Step::Output { .. } => "to",
            };
            let label = format!("{i}:{op_name}");
            steps.push((
                step,
                StepMetrics {
                    events_in: cx.metrics.events_in.with_label_values(&[&name, &label]),
                    events_out: cx.metrics.events_out.with_label_values(&[&name, &label]),
                },
            ));
        }
        Ok(CompiledPipeline {
            latency: cx.metrics.latency(&name),
            name,
            source: p.from.name.clone(),
            steps,
            kept: None,
            positions: None,
            holds: HashMap::new(),
            dead: None,
        })
    }

    /// Runs one batch through every step.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = match self.positions {
            Some(_) => match self.track(batch)? {
                Some(b) => b,
                None => return Ok(()),
            },
            None => batch,
        };
        let timer = self.latency.start_timer();
        self.run(vec![batch], Phase::Data).await?;
        timer.observe_duration();
        Ok(())
    }

    /// No data arrived for `idle_us`: lets windows move event time on.
    pub async fn idle(&mut self, idle_us: i64) -> Result<()> {
        self.run(Vec::new(), Phase::Idle(idle_us)).await
    }

    /// The input ended: emits every open window and flushes outputs.
    pub async fn finish(&mut self) -> Result<()> {
        self.run(Vec::new(), Phase::Finish).await?;
        self.flush().await
    }

    /// Makes everything this pipeline has written to its outputs durable
    /// (window state stays in memory).
    /// Makes what the pipeline handed on durable: its outputs flushed, and
    /// the alert state its alerts changed saved (both before a checkpoint's
    /// positions are committed).
    pub async fn flush(&self) -> Result<()> {
        for (step, _) in &self.steps {
            match step {
                Step::Output { sink, .. } => sink.flush().await?,
                Step::Op(op) => {
                    if let Some(job) = op.save_job() {
                        tokio::task::spawn_blocking(job)
                            .await
                            .map_err(|e| EngineError::Task(e.to_string()))?
                            .map_err(|e| EngineError::io("saving the alert state", e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The source reads these partitions from now on (windows wait for
    /// each one's event time).
    pub fn partitions(&mut self, ids: &[i64]) {
        for (step, _) in self.steps.iter_mut() {
            if let Step::Op(op) = step {
                op.on_partitions(ids);
            }
        }
    }

    /// Whether a step keeps state worth checkpointing (a window).
    pub fn stateful(&self) -> bool {
        self.steps
            .iter()
            .any(|(s, _)| matches!(s, Step::Op(o) if o.state_definition().is_some()))
    }

    /// Tracks the source positions pushed through, for [`Self::snapshot`]
    /// (a replayable source: each batch carries `_partition`, `_offset`).
    pub fn track_positions(&mut self) {
        self.positions.get_or_insert_with(HashMap::new);
    }

    /// Records the batch's positions; drops its rows a restored state
    /// already holds (a replay after a crash). `None`: nothing left.
    fn track(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let cols = (
            batch.column_by_name(weir_dsl::types::PARTITION),
            batch.column_by_name(weir_dsl::types::OFFSET),
        );
        let (Some(part), Some(off)) = cols else {
            return Ok(Some(batch));
        };
        let (Some(part), Some(off)) = (
            part.as_primitive_opt::<Int64Type>(),
            off.as_primitive_opt::<Int64Type>(),
        ) else {
            return Ok(Some(batch));
        };
        let mut keep: Option<Vec<bool>> = None;
        let positions = self.positions.get_or_insert_with(HashMap::new);
        for i in 0..batch.num_rows() {
            let (p, o) = (part.value(i), off.value(i));
            if let Some(&held) = self.holds.get(&p) {
                if o <= held {
                    keep.get_or_insert_with(|| vec![true; batch.num_rows()])[i] = false;
                    continue;
                }
            }
            let e = positions.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        let Some(keep) = keep else {
            return Ok(Some(batch));
        };
        let dropped = keep.iter().filter(|k| !**k).count();
        tracing::debug!(pipeline = %self.name, dropped, "replayed events the restored state holds");
        let mask = arrow::array::BooleanArray::from(keep);
        let kept = crate::rows::filter_batch(&batch, &mask)?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }

    /// The state of every stateful step, with the positions it includes.
    pub fn snapshot(&self) -> Result<crate::checkpoint::Snapshot> {
        let mut states = Vec::new();
        for (step, _) in &self.steps {
            if let Step::Op(op) = step {
                if let (Some(def), Some(state)) = (op.state_definition(), op.snapshot()?) {
                    states.push((def.to_string(), state));
                }
            }
        }
        Ok(crate::checkpoint::Snapshot::new(
            &self.name,
            &self.source,
            self.positions_held(),
            states,
        ))
    }

    /// Per partition, the last offset the state includes: restored or
    /// pushed through since.
    fn positions_held(&self) -> HashMap<i64, i64> {
        let mut positions = self.holds.clone();
        for (p, o) in self.positions.iter().flatten() {
            let e = positions.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
        positions
    }

    /// Takes a snapshot's state back: each stateful step gets the first
    /// saved state of the same definition; a step whose definition changed
    /// starts empty (logged). Replayed events up to the snapshot's
    /// positions are dropped from then on. Returns how many steps were
    /// restored.
    pub fn restore(&mut self, snap: crate::checkpoint::Snapshot) -> Result<usize> {
        if snap.source != self.source {
            tracing::warn!(pipeline = %self.name, was = %snap.source, now = %self.source, "the pipeline reads another source now: its saved windows are discarded");
            return Ok(0);
        }
        let mut states = snap.states;
        let mut restored = 0;
        for (i, (step, _)) in self.steps.iter_mut().enumerate() {
            let Step::Op(op) = step else { continue };
            let Some(def) = op.state_definition() else {
                continue;
            };
            match states.iter().position(|(d, _)| d == def) {
                Some(at) => {
                    let (_, state) = states.remove(at);
                    // Each window checks its state whole before taking it.
                    match op.restore(&state) {
                        Ok(()) => restored += 1,
                        Err(e) => {
                            tracing::warn!(pipeline = %self.name, step = i, error = %e, "the window's saved state cannot be restored: it starts empty")
                        }
                    }
                }
                None => {
                    tracing::warn!(pipeline = %self.name, step = i, "the window's definition changed since its last checkpoint: it starts empty");
                }
            }
        }
        if restored > 0 {
            self.holds = snap.positions;
        }
        Ok(restored)
    }

    /// Whether its windows keep state per source partition (see
    /// [`crate::checkpoint`]): snapshots are then written and restored
    /// per partition, as partitions come and go.
    pub fn per_partition(&self) -> bool {
        self.steps
            .iter()
            .any(|(s, _)| matches!(s, Step::Op(o) if o.per_partition()))
    }

    /// Whether it holds state or positions of source partition `id`.
    pub fn holds_partition(&self, id: i64) -> bool {
        self.holds.contains_key(&id) || self.positions.as_ref().is_some_and(|p| p.contains_key(&id))
    }

    /// One snapshot per source partition it holds: each stateful step's
    /// state of that partition's keys, with the partition's position.
    pub fn snapshot_partitions(&self) -> Result<Vec<crate::checkpoint::Snapshot>> {
        let mut by_part: std::collections::BTreeMap<i64, Vec<(String, Vec<u8>)>> =
            std::collections::BTreeMap::new();
        let positions = self.positions_held();
        for p in positions.keys() {
            by_part.entry(*p).or_default();
        }
        for (step, _) in &self.steps {
            if let Step::Op(op) = step {
                let Some(def) = op.state_definition() else {
                    continue;
                };
                for (part, state) in op.snapshot_partitions()? {
                    by_part
                        .entry(part)
                        .or_default()
                        .push((def.to_string(), state));
                }
            }
        }
        Ok(by_part
            .into_iter()
            .map(|(part, states)| {
                let at = positions.get(&part).map(|o| (part, *o));
                let mut snap = crate::checkpoint::Snapshot::new(
                    &self.name,
                    &self.source,
                    at.into_iter().collect(),
                    states,
                );
                snap.partition = Some(part);
                snap
            })
            .collect())
    }

    /// Takes one partition's snapshot in beside the state it holds (the
    /// partition was assigned to this process); replayed events of the
    /// partition up to its position are dropped from then on. `false`
    /// when it was of another source or none of its steps' definitions.
    pub fn restore_partition(&mut self, snap: crate::checkpoint::Snapshot) -> Result<bool> {
        let Some(part) = snap.partition else {
            return Ok(false);
        };
        if snap.source != self.source {
            tracing::warn!(pipeline = %self.name, partition = part, was = %snap.source, now = %self.source, "the pipeline reads another source now: the partition's saved windows are discarded");
            return Ok(false);
        }
        let mut states = snap.states;
        // A partition whose keys had no open window still has a position.
        let mut restored = states.is_empty();
        for (step, _) in self.steps.iter_mut() {
            let Step::Op(op) = step else { continue };
            let Some(def) = op.state_definition() else {
                continue;
            };
            // A step without state of the partition had none (an alert
            // rule with no open alert there).
            if let Some(at) = states.iter().position(|(d, _)| d == def) {
                let (_, state) = states.remove(at);
                op.restore_partition(&state)?;
                restored = true;
            }
        }
        if !states.is_empty() {
            tracing::warn!(pipeline = %self.name, partition = part, "a window's definition changed since the partition's last checkpoint: its saved state is discarded and its keys start empty");
        }
        if let Some(&o) = snap.positions.get(&part) {
            if restored {
                self.holds.insert(part, o);
            }
        }
        Ok(restored)
    }

    /// The source no longer reads these partitions: their state and
    /// positions go (their next reader restores them from the checkpoint).
    pub fn revoke(&mut self, ids: &[i64]) {
        for (step, _) in self.steps.iter_mut() {
            if let Step::Op(op) = step {
                op.revoke_partitions(ids);
            }
        }
        for id in ids {
            self.holds.remove(id);
            if let Some(p) = self.positions.as_mut() {
                p.remove(id);
            }
        }
    }

    /// What the restored state holds of the source: the partitions'
    /// last offsets (empty without a restore).
    pub fn held_positions(&self) -> &HashMap<i64, i64> {
        &self.holds
    }

    /// Moves event time to `ts` (a simulated clock): windows that end by then
    /// close, alerts evaluate them.
    pub async fn advance_to(&mut self, ts: i64) -> Result<()> {
        self.run(Vec::new(), Phase::AdvanceTo(ts)).await
    }

    /// Keeps the batches that leave the last step, for [`take_output`](Self::take_output)
    /// (`weir test` compares them with the expected window rows).
    pub fn keep_output(&mut self) {
        self.kept = Some(Vec::new());
    }

    /// The batches kept since the last call.
    pub fn take_output(&mut self) -> Vec<RecordBatch> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Sends the rows steps rejected to the source's dead letters (see
    /// [`Operator::take_rejects`](crate::ops::Operator::take_rejects)).
    pub fn with_dead_letters(
        &mut self,
        dead: Arc<dyn crate::connector::DeadLetterSink>,
        counted: prometheus::IntCounter,
    ) {
        self.dead = Some((dead, counted));
    }

    async fn run(&mut self, mut carry: Vec<RecordBatch>, phase: Phase) -> Result<()> {
        // The watermark of the latest window step, handed to later steps.
        let mut watermark: Option<i64> = None;
        let mut rejects = Vec::new();
        for (step, m) in self.steps.iter_mut() {
            let mut next = Vec::with_capacity(carry.len());
            for b in carry {
                m.events_in.inc_by(b.num_rows() as u64);
                match step {
                    Step::Op(op) => {
                        next.extend(op.process(b)?);
                        rejects.extend(op.take_rejects());
                    }
                    Step::Output { sink, .. } => {
                        sink.write(&b).await?;
                        next.push(b);
                    }
                }
            }
            if let Step::Op(op) = step {
                match phase {
                    Phase::Data => {}
                    Phase::Idle(us) => next.extend(op.on_idle(us)?),
                    Phase::AdvanceTo(ts) => next.extend(op.advance_to(ts)?),
                    Phase::Finish => next.extend(op.finish()?),
                }
                if let Some(wm) = watermark {
                    next.extend(op.on_watermark(wm)?);
                }
                if let Some(wm) = op.watermark() {
                    watermark = Some(wm);
                }
            }
            for b in &next {
                m.events_out.inc_by(b.num_rows() as u64);
            }
            carry = next;
            if carry.is_empty() && watermark.is_none() && matches!(phase, Phase::Data) {
                break;
            }
        }
        if let Some(kept) = self.kept.as_mut() {
            kept.extend(carry);
        }
        if !rejects.is_empty() {
            self.reject(rejects).await?;
        }
        Ok(())
    }

    /// Rejected rows as dead letters: the original line (`_raw`, or the
    /// row as JSON), its partition and offset, the reason.
    async fn reject(&mut self, rejects: Vec<(RecordBatch, String)>) -> Result<()> {
        use arrow::array::{Array, AsArray};
        let mut letters = Vec::new();
        let source: Arc<str> = self.source.as_str().into();
        let origin: Arc<str> = format!("pipeline {}", self.name).into();
        let time = crate::connector::DeadLetter::now();
        for (batch, reason) in rejects {
            let int = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>().cloned())
            };
            let (parts, offsets) = (
                int(weir_dsl::types::PARTITION),
                int(weir_dsl::types::OFFSET),
            );
            let raws = batch
                .column_by_name(weir_dsl::types::RAW)
                .and_then(|c| c.as_string_opt::<i32>().cloned());
            let has_raw = |i: usize| {
                raws.as_ref()
                    .is_some_and(|r| r.is_valid(i) && !r.value(i).is_empty())
            };
            // The row as JSON only where the original line is missing.
            let mut rows = if (0..batch.num_rows()).all(has_raw) {
                Vec::new()
            } else {
                crate::output::rows_as_json(&batch)?
            };
            for i in 0..batch.num_rows() {
                let at = |a: &Option<arrow::array::Int64Array>| {
                    a.as_ref()
                        .filter(|a| a.is_valid(i))
                        .map_or(0, |a| a.value(i))
                };
                let line = match &raws {
                    Some(r) if has_raw(i) => r.value(i).to_string(),
                    _ => rows
                        .get_mut(i)
                        .map(|row| serde_json::Value::Object(std::mem::take(row)).to_string())
                        .unwrap_or_default(),
                };
                letters.push(crate::connector::DeadLetter {
                    source: source.clone(),
                    origin: Some(origin.clone()),
                    partition: at(&parts),
                    offset: at(&offsets),
                    reason: reason.clone(),
                    line,
                    time: time.clone(),
                });
            }
        }
        match &self.dead {
            Some((dead, counted)) => {
                counted.inc_by(letters.len() as u64);
                dead.write(letters).await
            }
            None => Ok(()),
        }
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Data,
    Idle(i64),
    AdvanceTo(i64),
    Finish,
}

/// Compiles an expression outside a pipeline (tests, tools).
pub fn compile_expr(
    e: &weir_dsl::ast::Expr,
    schema: &weir_dsl::Schema,
    tables: &mut TableCache,
) -> Result<PhysicalExpr> {
    compile(e, schema, &mut CompileContext { tables })
}
