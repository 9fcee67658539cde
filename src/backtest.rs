//! Backtests: a checked program's pipelines over archived events of a time
//! range, read from the archive as Arrow batches in the order the live
//! engine saw them (each source partition in offset order, partitions
//! interleaved by event time: [`Replay`]; no JSON round trip), on a
//! simulated clock that follows event time, with the live engine's
//! operators: the same windows, lateness (an event too late live is as late
//! here) and alert lifecycle (`for`, `resolve after`). Nothing is notified
//! and no output is written; each window row and alert transition is handed
//! to the caller as a JSON object (`{"kind": "window", ...}`,
//! `{"kind": "alert", ...}`). Used by `weir backtest` and
//! `POST /api/v1/backtest` (which reads only the caller's scope).
//!
//! Sources are read one after the other, so alerts of pipelines on
//! different sources are not interleaved in time.
//! Only the columns the source's pipelines read are read (the others are
//! null to the pipelines), so window rows carry no `_evidence`: sample
//! events are what live alerts show, and the windows keep none.

use crate::auth::Scope;
use crate::query::replay::Replay;
use crate::query::where_sql::quote_ident;
use crate::query::{QueryEngine, TimeRange};
use crate::simulated::Simulated;
use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use weir_dsl::plan::{Aggregate, StagePlan};
use weir_dsl::types::{EVIDENCE, OFFSET, PARTITION, TIMESTAMP};
use weir_dsl::CheckedProgram;
use weir_engine::alerting::AlertSettings;

/// What to backtest.
pub struct Request<'a> {
    pub program: &'a CheckedProgram,
    /// Folder relative lookup tables are read from.
    pub base_dir: PathBuf,
    pub from_us: i64,
    pub to_us: i64,
    /// Source name → archived stream, for sources not read from the stream
    /// of their own name.
    pub streams: HashMap<String, String>,
}

/// What a backtest did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub events: u64,
    pub transitions: u64,
    pub seconds: f64,
}

/// Runs `req` over the archive `engine` reads, as a user with `scope`
/// would see it, handing each result line to `emit`.
pub async fn run<F: FnMut(Value) -> anyhow::Result<()>>(
    engine: &QueryEngine,
    scope: &Scope,
    req: Request<'_>,
    emit: &mut F,
) -> anyhow::Result<Summary> {
    let Request {
        program,
        base_dir,
        from_us,
        to_us,
        streams,
    } = req;
    if to_us <= from_us {
        anyhow::bail!("the end of the range must be after its start");
    }
    let program = &without_samples(program);
    let mut sim = Simulated::new(program, base_dir, from_us, AlertSettings::default())?;
    let range = TimeRange {
        start_us: Some(from_us),
        end_us: Some(to_us),
        as_of: None,
    };
    let started = std::time::Instant::now();
    let (ctx, listed) = engine.session(range, scope).await?;
    // One DataFusion partition: each file is read whole, in its order.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = 1;
    let mut read = 0u64;
    let mut now = from_us;
    for src in &program.sources {
        let source = &src.decl.name.name;
        if !sim.pipelines.iter().any(|p| &p.source == source) {
            continue;
        }
        let stream = streams
            .get(source)
            .cloned()
            .unwrap_or_else(|| source.clone());
        if !listed.iter().any(|s| s.name == stream) {
            let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!(
                "source `{source}`: no stream `{stream}` in the archive for that range (streams: {}); map it with --source {source}=STREAM",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            );
        }
        let target = weir_engine::schema::to_arrow(&src.schema);
        let table = ctx.table(stream.as_str()).await?;
        let have: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        // The columns the source's pipelines read: on wide events most of
        // the archive (message, `_raw`) need not be decoded.
        let needed: std::collections::BTreeSet<String> = program
            .pipelines
            .iter()
            .filter(|p| &p.pipeline.from.name == source)
            .flat_map(|p| weir_dsl::reads::fields_read(&p.pipeline))
            .collect();
        // And what the replay orders by: time, partition, offset.
        let ordering = [TIMESTAMP, PARTITION, OFFSET];
        let cols: Vec<String> = target
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|f| needed.contains(*f) && !ordering.contains(f))
            .chain(ordering)
            .filter(|f| have.iter().any(|h| h == f))
            .map(quote_ident)
            .collect();
        let sql = format!("SELECT {} FROM {}", cols.join(", "), quote_ident(&stream));
        let mut batches = Replay::new(&ctx, &sql).await?;
        while let Some(b) = batches.next().await? {
            let batch = conform(&b, &target)?;
            read += batch.num_rows() as u64;
            let ts = batch
                .column_by_name("timestamp")
                .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone());
            if let Some(max) = ts.as_ref().and_then(arrow::compute::max) {
                now = now.max(max);
            }
            sim.clock.set(now);
            for p in sim.pipelines.iter_mut().filter(|p| &p.source == source) {
                p.push(batch.clone()).await?;
            }
            sim.manager.tick();
            for (pipeline, row) in sim.take_rows()? {
                emit(window_line(&pipeline, row))?;
            }
        }
    }
    // The range is over: every open window closes, as at the end of a run.
    sim.clock.set(now.max(to_us));
    for i in 0..sim.pipelines.len() {
        sim.pipelines[i].finish().await?;
        sim.manager.tick();
        for (pipeline, row) in sim.take_rows()? {
            emit(window_line(&pipeline, row))?;
        }
    }
    let mut transitions = 0;
    let mut history = sim.manager.history(usize::MAX);
    history.reverse();
    for h in history {
        if !matches!(h.event.as_str(), "pending" | "firing" | "resolved") {
            continue;
        }
        transitions += 1;
        emit(json!({
            "kind": "alert",
            "event": h.event,
            "time": h.time,
            "rule": h.alert.rule,
            "pipeline": h.alert.pipeline,
            "severity": h.alert.severity,
            "labels": h.alert.labels,
            "values": h.alert.values,
            "window_start": h.alert.window_start,
            "window_end": h.alert.window_end,
        }))?;
    }
    Ok(Summary {
        events: read,
        transitions,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `program` with windows that keep no sample events (`evidence 0`): a
/// backtest shows none, and sampling turns events into JSON.
fn without_samples(program: &CheckedProgram) -> CheckedProgram {
    let mut program = program.clone();
    for plan in program
        .pipelines
        .iter_mut()
        .flat_map(|p| p.plans.iter_mut())
    {
        if let StagePlan::Window(w) = plan {
            for a in &mut w.aggregates {
                if let Aggregate::Samples(n) = &mut a.func {
                    *n = 0;
                }
            }
        }
    }
    program
}

fn window_line(pipeline: &str, row: Map<String, Value>) -> Value {
    let mut line = Map::new();
    line.insert("kind".into(), json!("window"));
    line.insert("pipeline".into(), json!(pipeline));
    line.extend(row.into_iter().filter(|(k, _)| k != EVIDENCE));
    Value::Object(line)
}

/// The archived columns as the source's decoder would have made them:
/// each cast to its type, absent ones null.
fn conform(b: &RecordBatch, target: &arrow::datatypes::SchemaRef) -> anyhow::Result<RecordBatch> {
    let columns: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|f| match b.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), b.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}
