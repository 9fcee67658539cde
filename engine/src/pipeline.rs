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
        })
    }

    /// Runs one batch through every step.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
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
    pub async fn flush(&self) -> Result<()> {
        for (step, _) in &self.steps {
            if let Step::Output { sink, .. } = step {
                sink.flush().await?;
            }
        }
        Ok(())
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

    async fn run(&mut self, mut carry: Vec<RecordBatch>, phase: Phase) -> Result<()> {
        // The watermark of the latest window step, handed to later steps.
        let mut watermark: Option<i64> = None;
        for (step, m) in self.steps.iter_mut() {
            let mut next = Vec::with_capacity(carry.len());
            for b in carry {
                m.events_in.inc_by(b.num_rows() as u64);
                match step {
                    Step::Op(op) => next.extend(op.process(b)?),
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
        Ok(())
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
