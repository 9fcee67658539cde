//! Runs a checked program: one task per source, one decoder task per source that
//! fans batches out to the archive and to every pipeline reading the source, and
//! one task per pipeline. Tasks are joined by bounded channels, so a slow sink
//! slows its source down instead of filling memory.

use crate::alerting::AlertSink;
use crate::checkpoint::{Saved, StateStore};
use crate::connector::{
    ConnectorFactory, DeadLetterSink, LineSender, Sink, SourceMessage, StoredPositions,
};
use crate::decode::{DecodePool, Decoded, LineDecoder};
use crate::error::{EngineError, Result};
use crate::functions::TableCache;
use crate::metrics::Metrics;
use crate::pipeline::{compile_pipelines, CompiledPipeline};
use arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use weir_dsl::CheckedProgram;

/// Batches in flight between two tasks.
const CHANNEL_DEPTH: usize = 4;
/// Decoded batches a tap keeps for a slow reader before it skips ahead.
const TAP_DEPTH: usize = 64;
/// Batches a shadow pipeline may fall behind before it skips.
const SHADOW_DEPTH: usize = 64;
/// How often idle pipelines check whether event time should move on.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What flows from a source's decoder to the pipelines and the archive reading it.
enum Flow {
    Batch(RecordBatch),
    /// The source's partitions now (see [`SourceMessage::Partitions`]).
    Partitions(Vec<i64>),
    /// The source no longer reads these partitions (see [`SourceMessage::Revoked`]).
    Revoked(Vec<i64>),
    /// Flush every sink, then answer: a checkpoint barrier.
    Barrier(oneshot::Sender<Result<()>>),
}
/// Runs `work` (a sink's write or flush); if the engine starts stopping
/// meanwhile, tells the sink once ([`Sink::stopping`]) and keeps waiting for
/// `work`, which the sink then ends within its grace.
async fn telling_stop<F: std::future::Future>(
    work: F,
    stop: &CancellationToken,
    told: &mut bool,
    sink: &dyn Sink,
) -> F::Output {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = stop.cancelled(), if !*told => {
                *told = true;
                sink.stopping();
            }
        }
    }
}

/// Answers a barrier with the result of a flush; a failed flush also ends the
/// task with its error.
fn answer(reply: oneshot::Sender<Result<()>>, res: Result<()>) -> Result<()> {
    match res {
        Ok(()) => {
            let _ = reply.send(Ok(()));
            Ok(())
        }
        Err(e) => {
            let _ = reply.send(Err(EngineError::Checkpoint(format!("flush failed: {e}"))));
            Err(e)
        }
    }
}

/// Where a source's decoded batches go: a pipeline, or an archive.
struct Subscriber {
    tx: mpsc::Sender<Flow>,
    /// An archive: it never stops on its own while its source runs, so a
    /// closed channel is a failure (a checkpoint must not pass it by). A
    /// pipeline may be stopped alone (it flushed when it ended).
    required: bool,
    /// A shadow pipeline (see [`Attach::shadow`]): never waited for — a
    /// batch it has no room for is skipped and counted here — and not part
    /// of checkpoints.
    skipped: Option<Arc<AtomicU64>>,
}

impl Subscriber {
    /// Hands a batch (or another message) on: a live subscriber is waited
    /// for, a shadow is not. `Err` when the subscriber has gone.
    async fn send(&self, flow: Flow) -> std::result::Result<(), ()> {
        match &self.skipped {
            None => self.tx.send(flow).await.map_err(|_| ()),
            Some(skipped) => match self.tx.try_send(flow) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(Flow::Batch(b))) => {
                    skipped.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            },
        }
    }
}

/// Attaches shadow pipelines to a running source (see [`Attach::shadow`]).
#[derive(Clone)]
pub struct Attach(mpsc::UnboundedSender<Subscriber>);

/// A shadow pipeline running beside a source's live ones.
pub struct Shadow {
    /// Stops it (its windows are emitted, into its own alert sink).
    pub cancel: CancellationToken,
    /// Events it skipped because it could not keep up with the source.
    pub skipped: Arc<AtomicU64>,
    pub task: tokio::task::JoinHandle<Result<()>>,
}

impl Attach {
    /// Runs `p` on every batch the source decodes from now on, beside its
    /// live pipelines, without ever slowing them: a batch the shadow has no
    /// room for is skipped (and counted), and checkpoints do not wait for
    /// it. `p` keeps no state across restarts.
    pub fn shadow(&self, p: CompiledPipeline, metrics: &Metrics) -> Result<Shadow> {
        let (tx, rx) = mpsc::channel::<Flow>(SHADOW_DEPTH);
        let skipped = Arc::new(AtomicU64::new(0));
        self.0
            .send(Subscriber {
                tx,
                required: false,
                skipped: Some(skipped.clone()),
            })
            .map_err(|_| EngineError::Stopped)?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_pipeline(
            p,
            rx,
            cancel.clone(),
            None,
            metrics.clone(),
            true,
        ));
        Ok(Shadow {
            cancel,
            skipped,
            task,
        })
    }
}

/// Sends a barrier to every subscriber and waits for all of them, then flushes
/// the dead letters: everything before the barrier is durable when this returns
/// `Ok`. Pipelines that stopped (they flushed when they ended) are skipped;
/// an archive that stopped fails the checkpoint.
async fn checkpoint(subs: &[Subscriber], dead: &dyn DeadLetterSink) -> Result<()> {
    let mut waits = Vec::with_capacity(subs.len());
    for sub in subs.iter().filter(|s| s.skipped.is_none()) {
        let (tx, rx) = oneshot::channel();
        if sub.tx.send(Flow::Barrier(tx)).await.is_ok() {
            waits.push(rx);
        } else if sub.required {
            return Err(EngineError::Checkpoint(
                "the archive stopped before it confirmed a checkpoint".into(),
            ));
        }
    }
    for w in waits {
        match w.await {
            Ok(res) => res?,
            Err(_) => {
                return Err(EngineError::Checkpoint(
                    "a pipeline ended before it confirmed a checkpoint".into(),
                ))
            }
        }
    }
    dead.flush().await
}

/// Settings of a deployment.
#[derive(Clone)]
pub struct DeployOptions {
    /// Folder relative paths in the rules (lookup tables) are resolved against.
    pub base_dir: PathBuf,
    /// Advance event time by wall-clock time when a pipeline sees no data for a
    /// tick (so windows of a quiet stream still close). Off for replays and tests.
    pub idle_advance: bool,
    /// Where pipelines with windows over a replayable source keep their
    /// checkpointed state (see [`crate::checkpoint`]); `None`: in memory only.
    pub state: Option<Arc<dyn crate::state_files::StateFiles>>,
    /// Decode only what the pipelines read (`weir run`): nothing can ask
    /// for whole events later. Off where a console's live tail or a shadow
    /// pipeline may (`weir serve`), and for a source an archive reads.
    pub project: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            base_dir: PathBuf::from("."),
            idle_advance: true,
            state: None,
            project: false,
        }
    }
}

/// The positions a source resumes after: the least of what its archive
/// stored and what its pipelines' restored windows hold, per partition. A
/// partition the archive holds nothing of is left out (it resumes at the
/// committed offset): the archive needs all of it, however far the windows'
/// state goes — the windows drop the replayed events they hold.
struct ResumePositions {
    archive: Option<Arc<dyn StoredPositions>>,
    held: HashMap<i64, i64>,
    /// Pipelines keeping state per partition: what each partition's last
    /// snapshot holds (read when the partition is assigned).
    per_partition: Vec<(StateStore, String)>,
}

#[async_trait::async_trait]
impl StoredPositions for ResumePositions {
    async fn stored_upto(&self, partitions: &[i64]) -> Result<HashMap<i64, i64>> {
        let (mut out, wanted) = match &self.archive {
            Some(a) => {
                let out = a.stored_upto(partitions).await?;
                let wanted: Vec<i64> = partitions
                    .iter()
                    .copied()
                    .filter(|p| out.contains_key(p))
                    .collect();
                (out, wanted)
            }
            None => (HashMap::new(), partitions.to_vec()),
        };
        for p in &wanted {
            if let Some(&h) = self.held.get(p) {
                keep_least(&mut out, *p, h);
            }
        }
        if !self.per_partition.is_empty() {
            let stores = self.per_partition.clone();
            out = tokio::task::spawn_blocking(move || {
                for (store, pipeline) in &stores {
                    for &p in &wanted {
                        if let Ok(Some(snap)) = store.load_partition(pipeline, p) {
                            if let Some(&o) = snap.positions.get(&p) {
                                keep_least(&mut out, p, o);
                            }
                        }
                    }
                }
                out
            })
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?;
        }
        Ok(out)
    }
}

/// Records `offset` for `partition` unless a lesser one is there.
fn keep_least(positions: &mut HashMap<i64, i64>, partition: i64, offset: i64) {
    let e = positions.entry(partition).or_insert(offset);
    *e = (*e).min(offset);
}

/// A checkpoint barrier reached a pipeline: flushes its outputs, then
/// saves its state when it keeps it. Partitions another process claimed
/// meanwhile (this one paused past its session: a zombie) are not saved;
/// their state stays until the source says they are revoked (the consumer
/// learns it at its next poll), so a broker that briefly gave a partition
/// to two members costs no state.
async fn checkpoint_pipeline(
    p: &CompiledPipeline,
    store: Option<&StateStore>,
    metrics: &Metrics,
) -> Result<()> {
    p.flush().await?;
    let Some(store) = store else {
        return Ok(());
    };
    let started = Instant::now();
    let snaps = match p.per_partition() {
        true => p.snapshot_partitions()?,
        false => vec![p.snapshot()?],
    };
    let bytes: usize = snaps.iter().map(|s| s.size()).sum();
    let store = store.clone();
    let saved = tokio::task::spawn_blocking(move || {
        snaps
            .iter()
            .map(|snap| store.save(snap))
            .collect::<Result<Vec<Saved>>>()
    })
    .await
    .map_err(|e| EngineError::Task(e.to_string()))??;
    let fenced: Vec<i64> = saved
        .into_iter()
        .filter_map(|s| match s {
            Saved::Written => None,
            Saved::Fenced { partition, owner } => {
                tracing::warn!(pipeline = %p.name, partition, owner = %owner, "another process owns this partition now (this one paused past its session timeout?): its window state is not saved over the new owner's");
                Some(partition)
            }
        })
        .collect();
    if !fenced.is_empty() {
        metrics
            .state_fenced
            .with_label_values(&[&p.name])
            .inc_by(fenced.len() as u64);
    }
    tracing::debug!(pipeline = %p.name, bytes, took_ms = started.elapsed().as_millis() as u64, "window state saved");
    metrics
        .state_bytes
        .with_label_values(&[&p.name])
        .set(bytes as i64);
    metrics
        .state_saved
        .with_label_values(&[&p.name])
        .set(chrono::Utc::now().timestamp());
    Ok(())
}

/// Restores a pipeline's saved windows (logging what it did); a snapshot
/// that cannot be read leaves the windows empty, never stops the start.
fn restore_pipeline(p: &mut CompiledPipeline, store: &StateStore) {
    match store.load(&p.name) {
        Ok(Some(snap)) => {
            let (taken, bytes) = (snap.taken_at_ms, snap.size());
            match p.restore(snap) {
                Ok(0) => {}
                Ok(windows) => {
                    tracing::info!(pipeline = %p.name, windows, bytes, taken_at_ms = taken, "window state restored from the last checkpoint")
                }
                Err(e) => {
                    tracing::warn!(pipeline = %p.name, error = %e, "the saved window state cannot be restored: windows start empty")
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(pipeline = %p.name, error = %e, "the saved window state cannot be read: windows start empty")
        }
    }
}

/// Partitions were assigned: a pipeline keeping state per partition takes
/// each new one's last snapshot in (logging what it did; a snapshot that
/// cannot be read leaves that partition's keys empty). The store is read
/// and written off the async workers (an object store answers in
/// milliseconds, a file system in microseconds).
async fn restore_partitions(p: &mut CompiledPipeline, store: &StateStore, ids: &[i64]) {
    let held: Vec<(i64, bool)> = ids.iter().map(|&id| (id, p.holds_partition(id))).collect();
    let (store, name) = (store.clone(), p.name.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        held.into_iter()
            .map(|(id, held)| {
                // Fence the previous owner before reading what it saved
                // last — also when the partition's state is here already
                // (a broker may have given it to another member meanwhile,
                // who claimed it).
                if let Err(e) = store.claim(&name, id) {
                    tracing::warn!(pipeline = %name, partition = id, error = %e, "the partition cannot be claimed: a previous owner that paused past its session timeout could overwrite its state");
                }
                (id, (!held).then(|| store.load_partition(&name, id)))
            })
            .collect::<Vec<_>>()
    })
    .await;
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(pipeline = %p.name, error = %e, "the partitions' saved window state cannot be read: their keys start empty");
            return;
        }
    };
    for (id, snap) in loaded {
        match snap {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(snap))) => {
                let (taken, bytes) = (snap.taken_at_ms, snap.size());
                match p.restore_partition(snap) {
                    Ok(true) => {
                        tracing::info!(pipeline = %p.name, partition = id, bytes, taken_at_ms = taken, "the partition's window state restored from its last checkpoint")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(pipeline = %p.name, partition = id, error = %e, "the partition's saved window state cannot be restored: its keys start empty")
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(pipeline = %p.name, partition = id, error = %e, "the partition's saved window state cannot be read: its keys start empty")
            }
        }
    }
}

/// Runs one pipeline on what its source's fan-out sends it, until the
/// source ends or `stop` (then what is queued is processed first); with
/// `idle_advance`, event time moves on by wall-clock time while no data
/// comes. At the end, open windows are saved (with a `store`) or emitted.
async fn run_pipeline(
    mut p: CompiledPipeline,
    mut rx: mpsc::Receiver<Flow>,
    stop: CancellationToken,
    store: Option<StateStore>,
    metrics: Metrics,
    idle_advance: bool,
) -> Result<()> {
    let mut tick = tokio::time::interval(IDLE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_data = Instant::now();
    // Batches since the last checkpoint saved the state.
    let mut unsaved = false;
    loop {
        tokio::select! {
            biased;
            b = rx.recv() => match b {
                Some(Flow::Batch(b)) => {
                    last_data = Instant::now();
                    unsaved = true;
                    p.push(b).await?;
                }
                Some(Flow::Partitions(ids)) => {
                    if let Some(store) = store.as_ref().filter(|_| p.per_partition()) {
                        restore_partitions(&mut p, store, &ids).await;
                    }
                    p.partitions(&ids);
                }
                Some(Flow::Revoked(ids)) => p.revoke(&ids),
                Some(Flow::Barrier(reply)) => {
                    answer(reply, checkpoint_pipeline(&p, store.as_ref(), &metrics).await)?;
                    unsaved = false;
                }
                None => break,
            },
            _ = tick.tick(), if idle_advance => {
                let idle = last_data.elapsed();
                if idle >= IDLE_TICK {
                    p.idle(idle.as_micros() as i64).await?;
                    last_data = Instant::now();
                }
            }
            _ = stop.cancelled(), if !stop.is_cancelled() || rx.is_empty() => {
                if rx.is_empty() { break; }
            }
        }
    }
    match &store {
        // State kept per partition and saved by the source's last
        // checkpoint: its partitions may belong to another process by
        // now, whose snapshots a second save here would overwrite.
        Some(_) if p.per_partition() && !unsaved => p.flush().await,
        // Open windows are kept, not emitted half-full: the next
        // start goes on with them.
        Some(_) => checkpoint_pipeline(&p, store.as_ref(), &metrics).await,
        None => p.finish().await,
    }
}

/// A running program.
pub struct Deployment {
    /// Names of its pipelines.
    pub pipelines: Vec<String>,
    /// Names of its sources.
    pub sources: Vec<String>,
    /// Per source: every decoded batch, for live views (the console's
    /// tail). Sending never waits: a reader that falls behind skips
    /// batches, and without readers nothing is sent.
    pub taps: HashMap<String, broadcast::Sender<RecordBatch>>,
    /// Per source: where shadow pipelines attach.
    pub attach: HashMap<String, Attach>,
    /// The pipelines stopped by an error, with it (the others go on).
    pub failures: Failures,
    cancel: CancellationToken,
    pipeline_cancels: HashMap<String, CancellationToken>,
    tasks: JoinSet<Result<()>>,
}

impl Deployment {
    /// Stops reading sources; everything read so far is processed, windows are
    /// emitted and sinks flushed. Wait with [`Deployment::wait`].
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// The token that stops this deployment.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The token that stops one pipeline (its windows are emitted and its
    /// outputs flushed).
    pub fn pipeline_token(&self, name: &str) -> Option<CancellationToken> {
        self.pipeline_cancels.get(name).cloned()
    }

    /// Waits for every task; returns the first error, for the caller to
    /// report (each failure is reported once: later ones are logged here).
    pub async fn wait(mut self) -> Result<()> {
        let mut first: Option<EngineError> = None;
        while let Some(res) = self.tasks.join_next().await {
            let res = res.unwrap_or_else(|e| Err(EngineError::Task(e.to_string())));
            if let Err(e) = res {
                match first {
                    None => first = Some(e),
                    Some(_) => error!(error = %e, "another task of the deployment failed too"),
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Pipelines stopped by an error, by name.
pub type Failures = Arc<std::sync::Mutex<HashMap<String, String>>>;

/// Where a source's decoded batches go: its dead letters, its
/// subscribers (pipelines, archive, shadows) and the live tail.
struct FanOut {
    subs: Vec<Subscriber>,
    dead: Arc<dyn DeadLetterSink>,
    events: prometheus::IntCounter,
    dead_count: prometheus::IntCounter,
    tap: broadcast::Sender<RecordBatch>,
}

impl FanOut {
    /// Hands one decoded batch on. `false` when only shadows are left to
    /// read the source (the live pipelines were all stopped).
    async fn send(&mut self, decoded: Decoded) -> Result<bool> {
        if !decoded.dead.is_empty() {
            self.dead_count.inc_by(decoded.dead.len() as u64);
            self.dead.write(decoded.dead).await?;
        }
        if let Some((count, lines)) = decoded.encoded {
            self.dead_count.inc_by(count as u64);
            self.dead.write_json_lines(lines).await?;
        }
        let Some(batch) = decoded.batch else {
            return Ok(true);
        };
        self.events.inc_by(batch.num_rows() as u64);
        if self.tap.receiver_count() > 0 {
            let _ = self.tap.send(batch.clone());
        }
        let subs = &mut self.subs;
        let mut i = 0;
        while i < subs.len() {
            if subs[i].send(Flow::Batch(batch.clone())).await.is_err() {
                if subs[i].required {
                    // The archive ended (its error is reported by its
                    // task): nothing more may pass it by.
                    return Err(EngineError::Stopped);
                }
                // That pipeline was stopped.
                subs.swap_remove(i);
            } else {
                i += 1;
            }
        }
        Ok(!subs.iter().all(|s| s.skipped.is_some()))
    }

    /// Hands batches on in order; `false` as soon as only shadows are left.
    async fn send_all(&mut self, decoded: Vec<Decoded>) -> Result<bool> {
        for d in decoded {
            if !self.send(d).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Builds and starts a program. Everything that can fail before data flows
/// (connectors, lookup tables, outputs) fails here, not later.
pub fn deploy(
    program: &CheckedProgram,
    factory: &dyn ConnectorFactory,
    alerts: Arc<dyn AlertSink>,
    metrics: &Metrics,
    options: DeployOptions,
) -> Result<Deployment> {
    let mut tables = TableCache::new(options.base_dir.clone());
    let mut outputs: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    for o in &program.outputs {
        outputs.insert(o.name.name.clone(), factory.output(o)?);
    }
    for builtin in weir_dsl::connectors::BUILTIN_OUTPUTS {
        if !outputs.contains_key(*builtin) {
            let decl = weir_dsl::ast::OutputDecl::builtin(builtin);
            outputs.insert(builtin.to_string(), factory.output(&decl)?);
        }
    }
    let pipelines = compile_pipelines(program, &mut tables, &outputs, alerts, metrics)?;
    // One dead-letter store per source, shared by its decoder and its
    // pipelines (rows a step rejects).
    let mut dead_letters: HashMap<String, Arc<dyn DeadLetterSink>> = HashMap::new();
    for src in &program.sources {
        dead_letters.insert(src.decl.name.name.clone(), factory.dead_letters(src)?);
    }

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut pipeline_cancels = HashMap::new();
    let failures: Failures = Arc::default();
    let mut subscribers: HashMap<String, Vec<Subscriber>> = HashMap::new();
    let mut pipeline_names = Vec::new();

    let state_store = options.state.clone().map(StateStore::new);
    // Per source: what its pipelines' restored windows hold, and its
    // pipelines keeping state per partition.
    let mut held: HashMap<String, HashMap<i64, i64>> = HashMap::new();
    let mut per_partition: HashMap<String, Vec<(StateStore, String)>> = HashMap::new();
    for mut p in pipelines {
        if let Some(dead) = dead_letters.get(&p.source) {
            p.with_dead_letters(
                dead.clone(),
                metrics.dead_letters.with_label_values(&[&p.source]),
            );
        }
        let replayable = program.source(&p.source).is_some_and(|s| s.replayable);
        let store = state_store.clone().filter(|_| replayable && p.stateful());
        if let Some(store) = store.as_ref().filter(|_| p.per_partition()) {
            // Restored partition by partition, as they are assigned.
            // A whole snapshot left from before must not come back later.
            match store.remove_whole(&p.name) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!(pipeline = %p.name, "the window keeps its state per partition now: its earlier snapshot (of the whole process) is not restored")
                }
                Err(e) => {
                    tracing::warn!(pipeline = %p.name, error = %e, "the window keeps its state per partition now: its earlier snapshot cannot be removed")
                }
            }
            p.track_positions();
            per_partition
                .entry(p.source.clone())
                .or_default()
                .push((store.clone(), p.name.clone()));
        } else if let Some(store) = &store {
            restore_pipeline(&mut p, store);
            p.track_positions();
            let h = held.entry(p.source.clone()).or_default();
            for (part, off) in p.held_positions() {
                keep_least(h, *part, *off);
            }
        }
        let (tx, rx) = mpsc::channel::<Flow>(CHANNEL_DEPTH);
        subscribers
            .entry(p.source.clone())
            .or_default()
            .push(Subscriber {
                tx,
                required: false,
                skipped: None,
            });
        let stop = cancel.child_token();
        pipeline_cancels.insert(p.name.clone(), stop.clone());
        pipeline_names.push(p.name.clone());
        let failed = metrics.pipeline_errors.with_label_values(&[&p.name]);
        let pipeline_name = p.name.clone();
        let failures = failures.clone();
        let run = run_pipeline(p, rx, stop, store, metrics.clone(), options.idle_advance);
        tasks.spawn(async move {
            let res = run.await;
            if let Err(e) = &res {
                failed.inc();
                tracing::error!(pipeline = %pipeline_name, error = %e, "the pipeline stopped with an error");
                if let Ok(mut f) = failures.lock() {
                    f.insert(pipeline_name, e.to_string());
                }
            }
            res
        });
    }

    let mut stored = HashMap::new();
    for a in &program.archives {
        let Some(src) = program.source(&a.source.name) else {
            return Err(EngineError::plan(a.source.span, "unknown source"));
        };
        let sink = factory.archive(a, src)?;
        if let Some(p) = sink.stored_positions() {
            stored.insert(src.decl.name.name.clone(), p);
        }
        let (tx, mut rx) = mpsc::channel::<Flow>(CHANNEL_DEPTH);
        subscribers
            .entry(src.decl.name.name.clone())
            .or_default()
            .push(Subscriber {
                tx,
                required: true,
                skipped: None,
            });
        let stop = cancel.clone();
        tasks.spawn(async move {
            let mut told = false;
            while let Some(flow) = rx.recv().await {
                match flow {
                    Flow::Batch(b) => {
                        telling_stop(sink.write(&b), &stop, &mut told, sink.as_ref()).await?
                    }
                    Flow::Partitions(_) | Flow::Revoked(_) => {}
                    Flow::Barrier(reply) => answer(
                        reply,
                        telling_stop(sink.flush(), &stop, &mut told, sink.as_ref()).await,
                    )?,
                }
            }
            sink.close().await
        });
    }

    let mut source_names = Vec::new();
    let mut taps = HashMap::new();
    let mut attach = HashMap::new();
    for src in &program.sources {
        let name = src.decl.name.name.clone();
        let Some(subs) = subscribers.remove(&name) else {
            warn!(source = %name, "source is declared but nothing reads it; not started");
            continue;
        };
        source_names.push(name.clone());
        let mut source = factory.source(src)?;
        let archive = stored.get(&name).cloned();
        let held = held.remove(&name).unwrap_or_default();
        let per_partition = per_partition.remove(&name).unwrap_or_default();
        if archive.is_some() || !held.is_empty() || !per_partition.is_empty() {
            source.resume_from(Arc::new(ResumePositions {
                archive,
                held,
                per_partition,
            }));
        }
        let dead = match dead_letters.get(&name) {
            Some(d) => d.clone(),
            None => factory.dead_letters(src)?,
        };
        // What the source's readers need decoded: whole events for an
        // archive, and unless the deployment is closed to later readers.
        let needs = if options.project && !program.archives.iter().any(|a| a.source.name == name) {
            program
                .pipelines
                .iter()
                .filter(|p| p.pipeline.from.name == name)
                .map(|p| weir_dsl::reads::decoded_needs(&p.pipeline))
                .reduce(weir_dsl::reads::Needs::and)
                .unwrap_or_else(weir_dsl::reads::Needs::everything)
        } else {
            weir_dsl::reads::Needs::everything()
        };
        let decoders = (0..DecodePool::width())
            .map(|_| LineDecoder::for_source(src).map(|d| d.reading(&needs)))
            .collect::<Result<Vec<_>>>()?;
        let mut pool = DecodePool::new(decoders, dead.takes_json_lines());
        let threads = pool.decoders();
        let (line_tx, mut line_rx) = mpsc::channel::<SourceMessage>(CHANNEL_DEPTH);
        let stop = cancel.clone();
        let source_name = name.clone();
        let errors = metrics.errors.with_label_values(&["source"]);
        let healthy = metrics.source_healthy.with_label_values(&[&name]);
        healthy.set(1);
        tasks.spawn(async move {
            let out = LineSender::new(line_tx).decoding_on(threads);
            let res = source.run(out, stop).await;
            if let Err(e) = &res {
                errors.inc();
                healthy.set(0);
                tracing::debug!(source = %source_name, error = %e, "source failed");
            }
            res
        });
        let (tap, _) = broadcast::channel::<RecordBatch>(TAP_DEPTH);
        taps.insert(name.clone(), tap.clone());
        let mut fan_out = FanOut {
            subs,
            dead: dead.clone(),
            events: metrics.source_events.with_label_values(&[&name]),
            dead_count: metrics.dead_letters.with_label_values(&[&name]),
            tap,
        };
        let bytes = metrics.source_bytes.with_label_values(&[&name]);
        let (attach_tx, mut attach_rx) = mpsc::unbounded_channel::<Subscriber>();
        attach.insert(name.clone(), Attach(attach_tx));
        tasks.spawn(async move {
            loop {
                let msg = tokio::select! {
                    biased;
                    // Decoded batches go on as soon as they are ready.
                    done = pool.oldest(), if pool.is_busy() => {
                        if !fan_out.send(done?).await? {
                            return dead.flush().await;
                        }
                        continue;
                    }
                    msg = line_rx.recv() => match msg {
                        Some(msg) => msg,
                        None => break,
                    },
                };
                while let Ok(sub) = attach_rx.try_recv() {
                    fan_out.subs.push(sub);
                }
                let assigned = matches!(msg, SourceMessage::Partitions(_));
                let decoded = match msg {
                    SourceMessage::Lines(lines) => {
                        bytes.inc_by(lines.data.len() as u64);
                        pool.submit(lines).await?
                    }
                    SourceMessage::Load(load) => {
                        bytes.inc_by(load.bytes());
                        pool.submit(load).await?
                    }
                    SourceMessage::Checkpoint(reply) => {
                        // Everything read before the barrier passes it first.
                        if !fan_out.send_all(pool.drain().await?).await? {
                            return dead.flush().await;
                        }
                        let _ = reply.send(checkpoint(&fan_out.subs, dead.as_ref()).await);
                        continue;
                    }
                    SourceMessage::Partitions(ids) | SourceMessage::Revoked(ids) => {
                        if !fan_out.send_all(pool.drain().await?).await? {
                            return dead.flush().await;
                        }
                        for sub in fan_out.subs.iter().filter(|s| !s.required) {
                            let flow = if assigned {
                                Flow::Partitions(ids.clone())
                            } else {
                                Flow::Revoked(ids.clone())
                            };
                            let _ = sub.send(flow).await;
                        }
                        continue;
                    }
                };
                if !fan_out.send_all(decoded).await? {
                    return dead.flush().await;
                }
            }
            fan_out.send_all(pool.drain().await?).await?;
            dead.flush().await
        });
    }

    Ok(Deployment {
        pipelines: pipeline_names,
        sources: source_names,
        taps,
        attach,
        failures,
        cancel,
        pipeline_cancels,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive that holds what it is given.
    struct Archive(HashMap<i64, i64>);

    #[async_trait::async_trait]
    impl StoredPositions for Archive {
        async fn stored_upto(&self, partitions: &[i64]) -> Result<HashMap<i64, i64>> {
            Ok(partitions
                .iter()
                .filter_map(|p| self.0.get(p).map(|o| (*p, *o)))
                .collect())
        }
    }

    #[tokio::test]
    async fn a_partition_the_archive_lacks_is_not_skipped_for_the_windows_sake() {
        // A crash after the windows' checkpoint took partition 0 to 12,499
        // but before the archive committed any of it.
        let held: HashMap<i64, i64> = [(0, 12_499), (1, 20_000), (2, 7)].into();
        let resume = ResumePositions {
            archive: Some(Arc::new(Archive([(1, 12_499), (2, 30)].into()))),
            held: held.clone(),
            per_partition: Vec::new(),
        };
        let got = resume.stored_upto(&[0, 1, 2]).await.unwrap_or_default();
        assert_eq!(got, [(1, 12_499), (2, 7)].into());
        // Without an archive the windows' positions stand.
        let resume = ResumePositions {
            archive: None,
            held,
            per_partition: Vec::new(),
        };
        let got = resume.stored_upto(&[0, 2]).await.unwrap_or_default();
        assert_eq!(got, [(0, 12_499), (2, 7)].into());
    }
}
