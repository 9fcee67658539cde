//! Compiles a checked pipeline into a chain of operators and outputs, and runs
//! batches through it.

use crate::alerting::{AlertRule, AlertSink};
use crate::connector::Sink;
use crate::error::{EngineError, Result};
use crate::expr::{compile, CompileContext, PhysicalExpr};
use crate::functions::TableCache;
use crate::metrics::Metrics;
use crate::ops::aggregate::{AggKind, AggSpec};
use crate::ops::alert::AlertOp;
use crate::ops::filter::Filter;
use crate::ops::geoip::Geoip;
use crate::ops::transform::{Parse, Project};
use crate::ops::window::{Assigner, Window, WindowMetrics, DEFAULT_MAX_KEYS};
use crate::ops::Operator;
use crate::schema::{arrow_type, to_arrow};
use arrow::record_batch::RecordBatch;
use prometheus::IntCounter;
use std::collections::HashMap;
use std::sync::Arc;
use weir_dsl::ast::{ExprKind, Format, Literal, StageKind, WindowKind};
use weir_dsl::types::TIMESTAMP;
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
    pub fn compile(cp: &CheckedPipeline, cx: &mut PipelineContext<'_>) -> Result<CompiledPipeline> {
        let p = &cp.pipeline;
        let name = p.name.name.clone();
        let mut steps = Vec::with_capacity(p.stages.len());
        for (i, stage) in p.stages.iter().enumerate() {
            let input = &cp.schemas[i];
            let output = &cp.schemas[i + 1];
            let mut ecx = CompileContext { tables: cx.tables };
            let step = match &stage.kind {
                StageKind::Where(e) => Step::Op(Box::new(Filter {
                    predicate: compile(e, input, &mut ecx)?,
                })),
                StageKind::Set(assigns) => {
                    // Each assignment sees the fields set before it in the same stage.
                    let mut cur = input.clone();
                    let mut ops: Vec<Box<dyn Operator>> = Vec::new();
                    for a in assigns {
                        let e = compile(&a.value, &cur, &mut ecx)?;
                        let mut next = cur.clone();
                        let ty = match e.ty() {
                            weir_dsl::Type::Null => weir_dsl::Type::String,
                            t => t,
                        };
                        next.push(&a.name.name, ty);
                        ops.push(Box::new(Project::new(
                            "set",
                            &cur,
                            &next,
                            &[],
                            vec![(a.name.name.clone(), e)],
                        )?));
                        cur = next;
                    }
                    Step::Op(Box::new(Chain(ops)))
                }
                StageKind::Rename(pairs) => {
                    let renames: Vec<(String, String)> = pairs
                        .iter()
                        .map(|(a, b)| (a.name.clone(), b.name.clone()))
                        .collect();
                    Step::Op(Box::new(Project::new(
                        "rename",
                        input,
                        output,
                        &renames,
                        vec![],
                    )?))
                }
                StageKind::Drop(_) => {
                    Step::Op(Box::new(Project::new("drop", input, output, &[], vec![])?))
                }
                StageKind::Parse {
                    field,
                    format,
                    fields,
                } => {
                    let fmt = format.format.clone().unwrap_or(Format::Json);
                    let mut names: Vec<String> =
                        fields.iter().map(|f| f.name.name.clone()).collect();
                    if let Format::Regex(p) = &fmt {
                        if let Ok(re) = regex::Regex::new(p) {
                            names.extend(re.capture_names().flatten().map(String::from));
                        }
                    }
                    Step::Op(Box::new(Parse::new(
                        input,
                        output,
                        &field.name,
                        &fmt,
                        &names,
                    )?))
                }
                StageKind::Geoip {
                    field,
                    database,
                    prefix,
                } => {
                    let db = cx.tables.geoip(&database.0, database.1)?;
                    let prefix = prefix.as_ref().map(|p| p.name.as_str()).unwrap_or("geo");
                    Step::Op(Box::new(Geoip::new(
                        input,
                        output,
                        &field.name,
                        prefix,
                        db,
                    )?))
                }
                StageKind::Window(w) => {
                    let us = |ms: u64| (ms as i64).saturating_mul(1000);
                    let assigner = match &w.kind {
                        WindowKind::Tumbling { size } => Assigner::Tumbling {
                            size: us(size.millis),
                        },
                        WindowKind::Sliding { size, every } => Assigner::Sliding {
                            size: us(size.millis),
                            slide: us(every.millis),
                        },
                        WindowKind::Session { gap } => Assigner::Session {
                            gap: us(gap.millis),
                        },
                    };
                    let ts_col = input.index_of(TIMESTAMP).ok_or_else(|| {
                        EngineError::plan(stage.span, "the window needs the field `timestamp`")
                    })?;
                    let group_cols = w
                        .group_by
                        .iter()
                        .map(|g| {
                            let idx = input.index_of(&g.name).ok_or_else(|| {
                                EngineError::plan(g.span, format!("unknown field `{}`", g.name))
                            })?;
                            Ok((idx, arrow_type(input.fields[idx].ty)))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let mut aggs = Vec::with_capacity(w.aggregates.len());
                    for a in &w.aggregates {
                        let ExprKind::Call { name: fname, args } = &a.value.kind else {
                            return Err(EngineError::plan(a.value.span, "expected an aggregate"));
                        };
                        let q = match args.get(1).map(|e| &e.kind) {
                            Some(ExprKind::Lit(Literal::Float(f))) => Some(*f),
                            Some(ExprKind::Lit(Literal::Int(i))) => Some(*i as f64),
                            _ => None,
                        };
                        let kind = AggKind::from_call(&fname.name, q).ok_or_else(|| {
                            EngineError::plan(
                                fname.span,
                                format!("`{}` is not an aggregate", fname.name),
                            )
                        })?;
                        let arg = match args.first() {
                            Some(e) if kind != AggKind::Count => Some(compile(e, input, &mut ecx)?),
                            _ => None,
                        };
                        let out = output.get(&a.name.name).ok_or_else(|| {
                            EngineError::plan(
                                a.name.span,
                                "internal: aggregate missing from schema",
                            )
                        })?;
                        aggs.push(AggSpec { kind, arg, out });
                    }
                    Step::Op(Box::new(
                        Window::new(
                            assigner,
                            us(w.lateness.map(|l| l.millis).unwrap_or(0)),
                            ts_col,
                            group_cols,
                            aggs,
                            to_arrow(output),
                            WindowMetrics {
                                late: cx.metrics.late_dropped.with_label_values(&[&name]),
                                open: cx.metrics.windows_open.with_label_values(&[&name]),
                                overflow: cx
                                    .metrics
                                    .window_key_overflow
                                    .with_label_values(&[&name]),
                            },
                        )?
                        .with_max_keys(
                            w.max_keys.map_or(DEFAULT_MAX_KEYS, |m| {
                                usize::try_from(m).unwrap_or(usize::MAX)
                            }),
                        ),
                    ))
                }
                StageKind::Alert(a) => {
                    // Alert severities keep the rule's word (`critical`, `warning`),
                    // as alert receivers expect.
                    let sev = a
                        .severity
                        .as_ref()
                        .map(|s| s.name.to_lowercase())
                        .unwrap_or_else(|| "warning".to_string());
                    let window = find_window(cp, i);
                    let group_fields = window
                        .map(|w| w.group_by.iter().map(|g| g.name.clone()).collect())
                        .unwrap_or_default();
                    let ms = |d: Option<&weir_dsl::ast::DurationLit>| {
                        d.map(|d| (d.millis as i64).saturating_mul(1000))
                    };
                    let step_us = window
                        .map(|w| match &w.kind {
                            WindowKind::Tumbling { size } => size.millis,
                            WindowKind::Sliding { every, .. } => every.millis,
                            WindowKind::Session { gap } => gap.millis,
                        })
                        .map(|m| (m as i64).saturating_mul(1000))
                        .unwrap_or(60_000_000);
                    let rule = AlertRule {
                        name: a.name.clone(),
                        pipeline: name.clone(),
                        severity: sev.clone(),
                        labels: a
                            .labels
                            .iter()
                            .map(|(k, v)| (k.name.clone(), v.clone()))
                            .collect(),
                        annotations: a
                            .annotations
                            .iter()
                            .map(|(k, v)| (k.name.clone(), v.clone()))
                            .collect(),
                        notify: a.notify.iter().map(|n| n.name.clone()).collect(),
                        for_us: ms(a.for_duration.as_ref()).unwrap_or(0),
                        resolve_after_us: ms(a.resolve_after.as_ref()).unwrap_or(step_us),
                    };
                    Step::Op(Box::new(AlertOp {
                        rule: Arc::new(rule),
                        condition: compile(&a.condition, input, &mut ecx)?,
                        group_fields,
                        sink: cx.alerts.clone(),
                        matched: cx.metrics.alerts.with_label_values(&[&name, &a.name, &sev]),
                        closed_until: i64::MIN,
                    }))
                }
                StageKind::To(out) => {
                    let sink = cx.outputs.get(&out.name).cloned().ok_or_else(|| {
                        EngineError::plan(out.span, format!("unknown output `{}`", out.name))
                    })?;
                    Step::Output {
                        name: out.name.clone(),
                        sink,
                    }
                }
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

/// The window before stage `i`.
fn find_window(cp: &CheckedPipeline, i: usize) -> Option<&weir_dsl::ast::WindowSpec> {
    cp.pipeline.stages[..i]
        .iter()
        .rev()
        .find_map(|s| match &s.kind {
            StageKind::Window(w) => Some(w),
            _ => None,
        })
}

/// Several operators run as one step (the assignments of one `set`).
struct Chain(Vec<Box<dyn Operator>>);

impl Operator for Chain {
    fn name(&self) -> &'static str {
        self.0.first().map(|o| o.name()).unwrap_or("set")
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

/// Compiles an expression outside a pipeline (tests, tools).
pub fn compile_expr(
    e: &weir_dsl::ast::Expr,
    schema: &weir_dsl::Schema,
    tables: &mut TableCache,
) -> Result<PhysicalExpr> {
    compile(e, schema, &mut CompileContext { tables })
}
