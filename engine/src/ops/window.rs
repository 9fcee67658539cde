//! Event-time windows: tumbling, sliding (hopping) and session, grouped by fields.
//!
//! Each window keeps per-key aggregate state. Event time moves per source
//! partition (Kafka's; other sources have one): the watermark is the least,
//! over the partitions that had events in the last [`PARTITION_IDLE`], of
//! each one's largest event time, minus the allowed lateness — so a
//! partition read behind the others (a backlog, a slow producer) holds the
//! windows open instead of having its events dropped as late, and a quiet
//! partition does not stall them. It never moves back. A window is emitted
//! once its end is at or before the watermark. An event whose every window ends at or before the
//! watermark of the events before it is late: it is counted
//! (`weir_late_events_dropped_total`) and not added. The rule is per event, so
//! results do not depend on how lines were cut into batches.
//!
//! A sliding window keeps its state in panes as wide as the greatest
//! common divisor of its size and slide ("no pane, no gain"): an event is
//! added once, to its pane, not to each of the size / slide windows it falls
//! in, and a window closing merges its panes. `window sliding 5m every 1m`
//! thus costs one aggregate update per event instead of five.
//!
//! Keys are bounded: the key table holds at most `max_keys` keys (default
//! [`DEFAULT_MAX_KEYS`]). When a new key finds it full, keys no open window
//! holds are forgotten (at most once between two emits: collecting again
//! frees nothing); if it is still full, events of keys not yet open are left
//! out of the window and counted (`weir_window_key_overflow_total`) — a
//! window grouped by a random id must not take the machine's memory; keys
//! already open keep counting. A stream whose keys recur never pays for a
//! collection.
//!
//! A window whose keys each come from one source partition (the checker's
//! [`WindowPlan::per_partition`](weir_dsl::plan::WindowPlan)) remembers
//! each key's partition, hands its state split by partition
//! ([`Operator::snapshot_partitions`]), forgets a partition's keys when the
//! partition is taken away and takes a partition's state in beside its own
//! ([`Operator::restore_partition`]): the state moves with the partition
//! from one process to another. The receiving window keeps the sender's
//! watermark for that partition's events (its `floor`), so a window the
//! sender emitted is not opened again.
//!
//! Behind a repartition topic each topic partition mixes the rows of every
//! source partition; the window right after the split reads each row's
//! source partition too (`_origin_partition`) and keeps a clock per (topic
//! partition, source partition), so a source partition read behind the
//! others holds the windows open as it would have without the topic. The
//! state still moves by topic partition.

use super::aggregate::{build_column, Acc, AggSpec, Input};
use super::key_table::KeyTable;
use super::Operator;
use crate::error::{EngineError, Result};
use crate::schema::TZ;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use arrow::row::{RowConverter, SortField};
use hashbrown::HashMap;
use prometheus::{IntCounter, IntGauge};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys a window holds open at once unless the pipeline says otherwise.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A source partition without events for this long (wall clock) no longer
/// holds the watermark back.
pub const PARTITION_IDLE: Duration = Duration::from_secs(10);

/// A clock of no source partition in particular: the partition's own
/// (outside a repartition) or one announced or restored before its rows
/// said which source partitions they come from.
const NO_ORIGIN: i64 = -1;

/// Event time of one source partition.
struct PartClock {
    /// The `_partition` it is of (what state moves with).
    id: i64,
    /// The source partition behind a repartition topic, or [`NO_ORIGIN`].
    origin: i64,
    /// Its largest event time.
    max_ts: i64,
    /// When it last had an event.
    seen: Instant,
    idle: bool,
    /// Events whose every window ends by this are late whatever the
    /// watermark (the watermark of the process the partition came from).
    floor: i64,
    /// `weir_window_partition_event_time_seconds` of this partition.
    time: Option<IntGauge>,
}

/// The key id of an event left out because the window holds `max_keys`.
const OVERFLOW: u32 = u32::MAX;

/// Which windows an event belongs to (the checker's plan). All lengths in
/// microseconds.
pub use weir_dsl::plan::Assigner;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    start: i64,
    last: i64,
    accs: Vec<Acc>,
}

/// One open pane in a checkpoint: its start and each key's accumulators.
type PaneState = (i64, Vec<(u32, Vec<Acc>)>);

/// One open window (tumbling or sliding): its keys and their accumulators,
/// side by side — key id to slot, and each slot's accumulators (one per
/// aggregate) at `slot * aggregates` in `accs`. No allocation per key.
#[derive(Default)]
struct Pane {
    slots: HashMap<u32, u32>,
    accs: Vec<Acc>,
}

impl Pane {
    /// Key `key`'s accumulators, new ones when it has none yet.
    fn accs_mut(&mut self, key: u32, aggs: &[AggSpec]) -> &mut [Acc] {
        let n = aggs.len();
        let next = self.slots.len() as u32;
        let slot = *self.slots.entry(key).or_insert(next) as usize;
        if slot == next as usize {
            self.accs.extend(aggs.iter().map(AggSpec::new_acc));
        }
        &mut self.accs[slot * n..(slot + 1) * n]
    }

    /// Its keys with their accumulators' slot, by key.
    fn sorted(&self) -> Vec<(u32, usize)> {
        let mut keys: Vec<(u32, usize)> =
            self.slots.iter().map(|(&k, &s)| (k, s as usize)).collect();
        keys.sort_unstable();
        keys
    }

    fn len(&self) -> usize {
        self.slots.len()
    }
}

/// Rows of closed windows built into one batch at most.
const EMIT_ROWS: usize = 64 * 1024;

/// Closed windows on their way out: per row its bounds, key and where its
/// accumulators start in `accs` (one per aggregate, in order).
#[derive(Default)]
struct Closed {
    rows: Vec<(i64, i64, u32, usize)>,
    accs: Vec<Acc>,
}

/// A window's state in a checkpoint: its keys (as Arrow row bytes, by key
/// number), open panes and sessions, and event time.
#[derive(serde::Serialize, serde::Deserialize)]
struct WindowState {
    keys: Vec<Option<Vec<u8>>>,
    panes: Vec<PaneState>,
    sessions: Vec<(u32, Vec<Session>)>,
    max_ts: i64,
    watermark: i64,
    late_total: u64,
    /// Per source partition, its largest event time.
    parts: Vec<(i64, i64)>,
    /// Sliding windows: the start of the next window to emit.
    #[serde(default = "no_start")]
    next_start: i64,
    /// Per-partition windows: each key's source partition.
    #[serde(default)]
    key_parts: Vec<i64>,
    /// The source partition this state is of (a per-partition snapshot).
    #[serde(default)]
    partition: Option<i64>,
}

fn no_start() -> i64 {
    i64::MIN
}

/// Counters a window reports to.
pub struct WindowMetrics {
    pub late: IntCounter,
    pub open: IntGauge,
    /// Events left out because the window held `max_keys` keys.
    pub overflow: IntCounter,
    /// The watermark (event time, Unix seconds).
    pub watermark: IntGauge,
    /// Source partitions holding the watermark, and those idle.
    pub partitions_active: IntGauge,
    pub partitions_idle: IntGauge,
    /// Each partition's largest event time, and the pipeline's name.
    pub partition_time: Option<(prometheus::IntGaugeVec, String)>,
}

pub struct Window {
    assigner: Assigner,
    lateness: i64,
    ts_col: usize,
    group_cols: Vec<usize>,
    converter: Option<RowConverter>,
    aggs: Vec<AggSpec>,
    /// The group keys by id (one key, empty, without group-by fields).
    keys: KeyTable,
    /// Tumbling state: window start -> key -> accumulators; sliding state:
    /// pane start -> key -> accumulators (see the module documentation).
    panes: BTreeMap<i64, Pane>,
    /// Sliding windows: the start of the next window to emit (those before
    /// it were emitted; `i64::MIN` before the first).
    next_start: i64,
    /// Sliding windows that closed in the middle of a batch (before a pane
    /// they hold took a later event), to emit with the batch's others.
    early: Closed,
    sessions: HashMap<u32, Vec<Session>>,
    max_ts: i64,
    watermark: i64,
    schema: SchemaRef,
    metrics: WindowMetrics,
    late_total: u64,
    max_keys: usize,
    /// Keys were collected since the last emit (collecting again before
    /// windows close frees nothing).
    collected: bool,
    /// When overflow was last logged (µs of event time), to log it rarely.
    overflow_logged: Option<std::time::Instant>,
    /// What the state means (the checked window definition): a checkpoint
    /// of another definition is not restored.
    definition: String,
    /// The input's `_partition` column (`None`: one partition).
    part_col: Option<usize>,
    /// The input's `_origin_partition` column (behind a repartition topic).
    origin_col: Option<usize>,
    /// Event time per source partition, and where each one is in `parts`
    /// by (partition, origin).
    parts: Vec<PartClock>,
    part_index: HashMap<(i64, i64), usize>,
    /// The least largest event time over the active partitions.
    low: i64,
    idle_after: Duration,
    /// When the last batch came.
    last_batch: Option<Instant>,
    /// Keys each come from one source partition: state is kept per
    /// partition (see the module documentation).
    per_partition: bool,
    /// Per-partition windows: each key's source partition, by key id.
    key_parts: Vec<i64>,
}

impl Window {
    /// `| window ...`, from the checker's plan: the assigner, the timestamp
    /// and group-by columns with their types, the aggregates with theirs.
    pub fn from_stage(s: &mut super::StageContext) -> Result<Window> {
        let weir_dsl::plan::StagePlan::Window(w) = s.plan else {
            return Err(s.wrong_plan("window"));
        };
        let group_cols = w
            .group_by
            .iter()
            .map(|c| (c.index, crate::schema::arrow_type(c.ty)))
            .collect();
        let mut aggs = Vec::with_capacity(w.aggregates.len());
        for a in &w.aggregates {
            aggs.push(AggSpec {
                kind: a.func,
                arg: a.arg.as_ref().map(|e| s.compile(e)).transpose()?,
                out: a.ty,
            });
        }
        let name = s.pipeline;
        let m = s.metrics;
        // Sliding state is kept in panes: a checkpoint of windows kept
        // whole (before panes) is not restored into them.
        let definition = match w.assigner {
            Assigner::Sliding { .. } => format!("{} in panes", weir_dsl::plan::definition(w)),
            _ => weir_dsl::plan::definition(w),
        };
        Ok(Window::new(
            w.assigner,
            w.lateness_us,
            w.timestamp,
            group_cols,
            aggs,
            crate::schema::to_arrow(s.output),
            WindowMetrics {
                late: m.late_dropped.with_label_values(&[name]),
                open: m.windows_open.with_label_values(&[name]),
                overflow: m.window_key_overflow.with_label_values(&[name]),
                watermark: m.watermark.with_label_values(&[name]),
                partitions_active: m.window_partitions.with_label_values(&[name, "active"]),
                partitions_idle: m.window_partitions.with_label_values(&[name, "idle"]),
                partition_time: Some((m.window_partition_time.clone(), name.to_string())),
            },
        )?
        .with_max_keys(w.max_keys.map_or(DEFAULT_MAX_KEYS, |m| {
            usize::try_from(m).unwrap_or(usize::MAX)
        }))
        .with_definition(definition)
        .with_partitions(s.input.index_of(weir_dsl::types::PARTITION), PARTITION_IDLE)
        .with_origins(s.input.index_of(weir_dsl::types::ORIGIN_PARTITION))
        .with_state_per_partition(w.per_partition))
    }

    /// Keeps state per source partition (see the module documentation);
    /// needs the `_partition` column.
    pub fn with_state_per_partition(mut self, on: bool) -> Window {
        self.per_partition = on && self.part_col.is_some();
        self
    }

    /// Moves event time per source partition, read from column `col`; a
    /// partition without events for `idle_after` stops holding it back.
    pub fn with_partitions(mut self, col: Option<usize>, idle_after: Duration) -> Window {
        self.part_col = col;
        self.idle_after = idle_after;
        self
    }

    /// Behind a repartition topic: event time moves per source partition
    /// within each partition, read from column `col` (see the module
    /// documentation).
    pub fn with_origins(mut self, col: Option<usize>) -> Window {
        self.origin_col = col;
        self
    }

    /// Names what the state means, for checkpoints (see [`Operator::state_definition`]).
    pub fn with_definition(mut self, definition: String) -> Window {
        self.definition = definition;
        self
    }

    pub fn new(
        assigner: Assigner,
        lateness: i64,
        ts_col: usize,
        group_cols: Vec<(usize, arrow::datatypes::DataType)>,
        aggs: Vec<AggSpec>,
        schema: SchemaRef,
        metrics: WindowMetrics,
    ) -> Result<Window> {
        let converter = if group_cols.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                group_cols
                    .iter()
                    .map(|(_, t)| SortField::new(t.clone()))
                    .collect(),
            )?)
        };
        Ok(Window {
            assigner,
            lateness,
            ts_col,
            group_cols: group_cols.into_iter().map(|(i, _)| i).collect(),
            converter,
            aggs,
            keys: KeyTable::new(),
            panes: BTreeMap::new(),
            next_start: i64::MIN,
            early: Closed::default(),
            sessions: HashMap::new(),
            max_ts: i64::MIN,
            watermark: i64::MIN,
            schema,
            metrics,
            late_total: 0,
            max_keys: DEFAULT_MAX_KEYS,
            collected: false,
            overflow_logged: None,
            definition: String::new(),
            part_col: None,
            origin_col: None,
            parts: Vec::new(),
            part_index: HashMap::new(),
            low: i64::MIN,
            idle_after: PARTITION_IDLE,
            last_batch: None,
            per_partition: false,
            key_parts: Vec::new(),
        })
    }

    /// At most `max` keys open at once (at least 1).
    pub fn with_max_keys(mut self, max: usize) -> Window {
        self.max_keys = max.max(1);
        self
    }

    /// Forgets keys no open window holds (nor `also`) and numbers the rest
    /// anew; returns the old number of each kept key to its new one.
    fn collect_keys(&mut self, also: &[u32]) -> HashMap<u32, u32> {
        let known = self.keys.len();
        let mut live: Vec<u32> = self
            .live_keys()
            .chain(also.iter().copied())
            .filter(|&k| (k as usize) < known)
            .collect();
        live.sort_unstable();
        live.dedup();
        // The kept keys are numbered anew in this order.
        let remap: HashMap<u32, u32> = live
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new as u32))
            .collect();
        self.keys.retain(&live);
        if self.per_partition {
            let parts = &self.key_parts;
            self.key_parts = live
                .iter()
                .map(|&old| parts.get(old as usize).copied().unwrap_or(0))
                .collect();
        }
        let renumber = |k: u32| remap.get(&k).copied().unwrap_or(OVERFLOW);
        for pane in self.panes.values_mut() {
            pane.slots = std::mem::take(&mut pane.slots)
                .into_iter()
                .map(|(k, slot)| (renumber(k), slot))
                .collect();
        }
        self.sessions = std::mem::take(&mut self.sessions)
            .into_iter()
            .map(|(k, v)| (renumber(k), v))
            .collect();
        self.collected = true;
        remap
    }

    /// Events dropped as late so far.
    pub fn late_events(&self) -> u64 {
        self.late_total
    }

    fn key_ids(&mut self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let n = batch.num_rows();
        let Some(conv) = &self.converter else {
            if self.keys.is_empty() {
                self.keys.insert(&[]);
            }
            return Ok(vec![0; n]);
        };
        let cols: Vec<ArrayRef> = self
            .group_cols
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let rows = conv.convert_columns(&cols)?;
        let mut ids = Vec::with_capacity(n);
        let mut last: Option<(usize, u32)> = None;
        for i in 0..n {
            let row = rows.row(i);
            // Consecutive rows often share a key.
            if let Some((j, id)) = last {
                if rows.row(j) == row {
                    ids.push(id);
                    last = Some((i, id));
                    continue;
                }
            }
            let mut found = self.keys.find(row.as_ref());
            if found.is_none() && self.keys.len() >= self.max_keys && !self.collected {
                // Full: forget keys no open window holds (the batch's own
                // included), renumbering what this batch was given so far.
                let remap = self.collect_keys(&ids);
                for id in ids.iter_mut() {
                    *id = remap.get(id).copied().unwrap_or(OVERFLOW);
                }
                found = self.keys.find(row.as_ref());
            }
            let id = match found {
                Some(id) => id,
                None if self.keys.len() >= self.max_keys => OVERFLOW,
                None => self.keys.insert(row.as_ref()).unwrap_or(OVERFLOW),
            };
            ids.push(id);
            last = Some((i, id));
        }
        Ok(ids)
    }

    fn new_accs(aggs: &[AggSpec]) -> Vec<Acc> {
        aggs.iter().map(AggSpec::new_acc).collect()
    }

    fn add(aggs: &[AggSpec], accs: &mut [Acc], inputs: &[Input], row: usize) {
        for ((acc, input), _) in accs.iter_mut().zip(inputs).zip(aggs) {
            acc.update(input, row);
        }
    }

    fn assign(&mut self, ts: i64, key: u32, inputs: &[Input], row: usize) -> bool {
        let aggs = &self.aggs;
        match self.assigner {
            Assigner::Tumbling { size_us: size } => {
                let start = ts.div_euclid(size) * size;
                if start.saturating_add(size) <= self.watermark {
                    return false;
                }
                let accs = self.panes.entry(start).or_default().accs_mut(key, aggs);
                Self::add(aggs, accs, inputs, row);
                true
            }
            Assigner::Sliding {
                size_us: size,
                slide_us: slide,
            } => {
                // The newest window holding the event is open, or all are
                // closed (it is late).
                let newest = ts.div_euclid(slide) * slide;
                if newest.saturating_add(size) <= self.watermark || ts - newest >= size {
                    // (Or between windows shorter than their slide.)
                    return false;
                }
                // Windows the watermark closed since the batch began are
                // emitted before a pane they hold takes this event.
                if self
                    .first_due(size, slide)
                    .is_some_and(|s| s.saturating_add(size) <= self.watermark)
                {
                    let mut early = std::mem::take(&mut self.early);
                    self.emit_sliding(self.watermark, size, slide, &mut early);
                    self.early = early;
                }
                let aggs = &self.aggs;
                let width = pane_width(size, slide);
                let pane = ts.div_euclid(width) * width;
                let accs = self.panes.entry(pane).or_default().accs_mut(key, aggs);
                Self::add(aggs, accs, inputs, row);
                true
            }
            Assigner::Session { gap_us: gap } => {
                let sessions = self.sessions.entry(key).or_default();
                let touching: Vec<usize> = sessions
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| ts >= s.start - gap && ts < s.last + gap)
                    .map(|(i, _)| i)
                    .collect();
                if touching.is_empty() {
                    if ts.saturating_add(gap) <= self.watermark {
                        return false;
                    }
                    let mut accs = Self::new_accs(aggs);
                    Self::add(aggs, &mut accs, inputs, row);
                    sessions.push(Session {
                        start: ts,
                        last: ts,
                        accs,
                    });
                    return true;
                }
                // Merge every session the event touches into the first.
                let first = touching[0];
                for &i in touching[1..].iter().rev() {
                    let s = sessions.remove(i);
                    let target = &mut sessions[first];
                    target.start = target.start.min(s.start);
                    target.last = target.last.max(s.last);
                    for (a, b) in target.accs.iter_mut().zip(s.accs) {
                        a.merge(b);
                    }
                }
                let target = &mut sessions[first];
                target.start = target.start.min(ts);
                target.last = target.last.max(ts);
                Self::add(aggs, &mut target.accs, inputs, row);
                true
            }
        }
    }

    fn window_size(&self) -> i64 {
        match self.assigner {
            Assigner::Tumbling { size_us } | Assigner::Sliding { size_us, .. } => size_us,
            Assigner::Session { gap_us } => gap_us,
        }
    }

    /// The end of the last window an event at `ts` belongs to.
    fn last_end(&self, ts: i64) -> i64 {
        match self.assigner {
            Assigner::Tumbling { size_us: size } => {
                (ts.div_euclid(size) * size).saturating_add(size)
            }
            Assigner::Sliding {
                size_us: size,
                slide_us: slide,
            } => (ts.div_euclid(slide) * slide).saturating_add(size),
            Assigner::Session { gap_us: gap } => ts.saturating_add(gap),
        }
    }

    /// Whether an event at `ts` of the partition at `part` is late by the
    /// floor the partition came with (see [`PartClock::floor`]).
    fn below_floor(&self, part: usize, ts: i64) -> bool {
        self.parts
            .get(part)
            .is_some_and(|p| p.floor > self.watermark && self.last_end(ts) <= p.floor)
    }

    /// Emits every window whose end is at or before `limit`.
    fn emit_until(&mut self, limit: i64) -> Result<Vec<RecordBatch>> {
        let mut closed = std::mem::take(&mut self.early);
        match self.assigner {
            Assigner::Session { gap_us: gap } => {
                for (&key, sessions) in self.sessions.iter_mut() {
                    let mut i = 0;
                    while i < sessions.len() {
                        if sessions[i].last.saturating_add(gap) <= limit {
                            let s = sessions.swap_remove(i);
                            let at = closed.accs.len();
                            closed.accs.extend(s.accs);
                            closed.rows.push((s.start, s.last + gap, key, at));
                        } else {
                            i += 1;
                        }
                    }
                }
                self.sessions.retain(|_, s| !s.is_empty());
                closed.rows.sort_by_key(|r| (r.0, r.2));
            }
            Assigner::Sliding {
                size_us: size,
                slide_us: slide,
            } => self.emit_sliding(limit, size, slide, &mut closed),
            Assigner::Tumbling { .. } => {
                let size = self.window_size();
                let n = self.aggs.len();
                while let Some(entry) = self.panes.first_entry() {
                    let start = *entry.key();
                    if start.saturating_add(size) > limit {
                        break;
                    }
                    let pane = entry.remove();
                    let base = closed.accs.len();
                    // In key order, sorted where they lie (a million keys
                    // closing at once need no second list of them).
                    let first = closed.rows.len();
                    closed.rows.extend(
                        pane.slots
                            .iter()
                            .map(|(&k, &slot)| (start, start + size, k, base + slot as usize * n)),
                    );
                    closed.rows[first..].sort_unstable_by_key(|r| r.2);
                    if base == 0 {
                        closed.accs = pane.accs;
                    } else {
                        closed.accs.extend(pane.accs);
                    }
                }
            }
        }
        self.update_open_gauge();
        if closed.rows.is_empty() {
            return Ok(Vec::new());
        }
        // Closed windows' keys may be forgotten again when the table is full.
        self.collected = false;
        // In slices: a window closing a million keys builds its rows a
        // slice at a time, not all its keys' rows at once.
        closed
            .rows
            .chunks(EMIT_ROWS)
            .map(|rows| self.build(rows, &closed.accs))
            .collect()
    }

    /// Emits the sliding windows ending by `limit`, each merging its panes,
    /// and drops the panes no later window holds.
    fn emit_sliding(&mut self, limit: i64, size: i64, slide: i64, closed: &mut Closed) {
        let n = self.aggs.len();
        while let Some(start) = self.first_due(size, slide) {
            if start.saturating_add(size) > limit {
                break;
            }
            let mut slots: HashMap<u32, usize> = HashMap::new();
            let mut rows = Vec::new();
            for (_, pane) in self.panes.range(start..start.saturating_add(size)) {
                for (key, slot) in pane.sorted() {
                    let Some(accs) = pane.accs.get(slot * n..(slot + 1) * n) else {
                        continue;
                    };
                    match slots.get(&key) {
                        Some(&at) => {
                            for (mine, theirs) in closed.accs[at..at + n].iter_mut().zip(accs) {
                                mine.merge_from(theirs);
                            }
                        }
                        None => {
                            let at = closed.accs.len();
                            closed.accs.extend_from_slice(accs);
                            slots.insert(key, at);
                            rows.push((start, start + size, key, at));
                        }
                    }
                }
            }
            rows.sort_unstable_by_key(|r| r.2);
            closed.rows.extend(rows);
            self.next_start = start + slide;
            // Panes before the next window's start are in no later window.
            while self
                .panes
                .first_key_value()
                .is_some_and(|(&p, _)| p < self.next_start)
            {
                self.panes.pop_first();
            }
        }
    }

    /// The start of the next sliding window to emit: the first holding the
    /// first pane, unless emitted already. `None` without panes.
    fn first_due(&self, size: i64, slide: i64) -> Option<i64> {
        let first = *self.panes.keys().next()?;
        let start = (first - size).div_euclid(slide) * slide + slide;
        Some(start.max(self.next_start))
    }

    /// The state to save: whole (`None`), or of one source partition's
    /// keys, numbered anew from 0.
    fn state(&self, part: Option<i64>) -> WindowState {
        // Saved key number by key id (all of them when whole; of one
        // partition, those an open window holds).
        let ids: Vec<u32> = match part {
            None => (0..self.keys.len() as u32).collect(),
            Some(p) => {
                let mut ids: Vec<u32> = self
                    .live_keys()
                    .filter(|&k| self.key_parts.get(k as usize) == Some(&p))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        };
        let mut local: HashMap<u32, u32> = HashMap::new();
        let mut keys = Vec::new();
        for id in ids {
            local.insert(id, keys.len() as u32);
            keys.push(
                self.converter
                    .as_ref()
                    .and_then(|_| self.keys.get(id).map(<[u8]>::to_vec)),
            );
        }
        let n = self.aggs.len();
        let panes = self
            .panes
            .iter()
            .filter_map(|(start, pane)| {
                let keys: Vec<(u32, Vec<Acc>)> = pane
                    .sorted()
                    .into_iter()
                    .filter_map(|(k, slot)| {
                        let accs = pane.accs.get(slot * n..(slot + 1) * n);
                        Some((
                            *local.get(&k)?,
                            accs.map(<[Acc]>::to_vec).unwrap_or_default(),
                        ))
                    })
                    .collect();
                (part.is_none() || !keys.is_empty()).then_some((*start, keys))
            })
            .collect();
        let sessions = self
            .sessions
            .iter()
            .filter_map(|(k, list)| Some((*local.get(k)?, list.clone())))
            .collect();
        WindowState {
            keys,
            panes,
            sessions,
            max_ts: self.max_ts,
            watermark: self.watermark,
            late_total: if part.is_none() { self.late_total } else { 0 },
            parts: self.part_times(part),
            next_start: self.next_start,
            key_parts: match part {
                None if self.per_partition => self.key_parts.clone(),
                _ => Vec::new(),
            },
            partition: part,
        }
    }

    /// The keys an open window holds (repeated once per window).
    fn live_keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.panes
            .values()
            .flat_map(|p| p.slots.keys().copied())
            .chain(self.sessions.keys().copied())
    }

    fn update_open_gauge(&self) {
        let open: usize = match self.assigner {
            Assigner::Session { .. } => self.sessions.values().map(Vec::len).sum(),
            _ => self.panes.values().map(Pane::len).sum(),
        };
        self.metrics.open.set(open as i64);
    }

    fn build(&self, rows: &[(i64, i64, u32, usize)], accs: &[Acc]) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let starts: TimestampMicrosecondArray = rows
            .iter()
            .map(|r| Some(r.0))
            .collect::<TimestampMicrosecondArray>();
        let ends: TimestampMicrosecondArray = rows
            .iter()
            .map(|r| Some(r.1))
            .collect::<TimestampMicrosecondArray>();
        cols.push(Arc::new(starts.with_timezone(TZ)));
        cols.push(Arc::new(ends.with_timezone(TZ)));
        if let Some(conv) = &self.converter {
            let parser = conv.parser();
            let keys = rows
                .iter()
                .map(|r| {
                    self.keys
                        .row(&parser, r.2)
                        .ok_or_else(|| EngineError::Internal("unknown window key".into()))
                })
                .collect::<Result<Vec<_>>>()?;
            cols.extend(conv.convert_rows(keys)?);
        }
        for (i, spec) in self.aggs.iter().enumerate() {
            cols.push(build_column(
                spec.out,
                rows.iter().filter_map(|r| accs.get(r.3 + i)),
            )?);
        }
        if self.per_partition {
            let parts: arrow::array::Int64Array = rows
                .iter()
                .map(|r| self.key_parts.get(r.2 as usize).copied())
                .collect();
            cols.push(Arc::new(parts));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    /// [`Operator::process`] with the wall-clock time it runs at (for
    /// partition idleness; tests pass their own).
    fn process_at(&mut self, batch: RecordBatch, now: Instant) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(Vec::new());
        }
        let ts = batch
            .column(self.ts_col)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| EngineError::Internal("window: timestamp has the wrong type".into()))?
            .clone();
        let keys = self.key_ids(&batch)?;
        let inputs: Vec<Input> = self
            .aggs
            .iter()
            .map(|a| a.input(&batch))
            .collect::<Result<_>>()?;
        let mut late = 0u64;
        let mut overflow = 0u64;
        self.mark_idle(now);
        let int_col = |col: Option<usize>| {
            col.and_then(|c| {
                batch
                    .column(c)
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()
            })
            .cloned()
        };
        let parts = int_col(self.part_col);
        let origins = int_col(self.origin_col);
        if self.per_partition {
            self.key_parts.resize(self.keys.len(), 0);
        }
        let mut current: Option<(i64, i64, usize)> = None;
        // Each event is judged against the watermark of the events before
        // it, whatever batches they came in: the same input gives the same
        // windows and late counts however it is cut.
        for (row, &key) in keys.iter().enumerate() {
            if ts.is_null(row) {
                late += 1;
                continue;
            }
            let t = ts.value(row);
            let id = parts.as_ref().map_or(0, |p| p.value(row));
            let origin = origins
                .as_ref()
                .filter(|o| o.is_valid(row))
                .map_or(NO_ORIGIN, |o| o.value(row));
            let (at, first_of_run) = match current {
                Some((c, o, at)) if c == id && o == origin => (at, false),
                _ => {
                    let at = self.part(id, origin, now);
                    current = Some((id, origin, at));
                    (at, true)
                }
            };
            if key == OVERFLOW {
                overflow += 1;
            } else if self.below_floor(at, t) || !self.assign(t, key, &inputs, row) {
                late += 1;
            } else if self.per_partition {
                if let Some(p) = self.key_parts.get_mut(key as usize) {
                    *p = id;
                }
            }
            if first_of_run {
                self.touch(at, now);
            }
            self.advance_part(at, t);
        }
        self.report_time();
        if late > 0 {
            self.late_total += late;
            self.metrics.late.inc_by(late);
        }
        if overflow > 0 {
            self.metrics.overflow.inc_by(overflow);
            if self
                .overflow_logged
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60))
            {
                tracing::warn!(
                    max_keys = self.max_keys,
                    events = overflow,
                    "window holds its most keys; events of new keys are left out \
                     (weir_window_key_overflow_total)"
                );
                self.overflow_logged = Some(std::time::Instant::now());
            }
        }
        self.emit_until(self.watermark)
    }

    /// Event time moved to `ts` everywhere (idle streams, a simulated
    /// clock): every partition is at least there.
    fn advance(&mut self, ts: i64) {
        if ts > self.max_ts {
            self.max_ts = ts;
        }
        for p in &mut self.parts {
            p.max_ts = p.max_ts.max(ts);
        }
        if ts > self.low {
            self.low = ts;
        }
        self.raise_watermark();
    }

    fn raise_watermark(&mut self) {
        if self.low != i64::MIN {
            self.watermark = self.watermark.max(self.low.saturating_sub(self.lateness));
        }
    }

    /// The least largest event time over the active partitions (unchanged
    /// when every one is idle).
    fn recompute_low(&mut self) {
        if let Some(low) = self
            .parts
            .iter()
            .filter(|p| !p.idle)
            .map(|p| p.max_ts)
            .min()
        {
            self.low = low;
        }
    }

    /// Before a batch: partitions quiet for `idle_after` while others had
    /// events stop holding the watermark back (an event makes one active
    /// again). A pause of the whole stream (a restart, a rebalance) makes
    /// no partition idle.
    fn mark_idle(&mut self, now: Instant) {
        if self
            .last_batch
            .is_some_and(|t| now.duration_since(t) >= self.idle_after)
        {
            for p in &mut self.parts {
                p.seen = now;
            }
        }
        self.last_batch = Some(now);
        let mut changed = false;
        for p in &mut self.parts {
            let idle = now.duration_since(p.seen) >= self.idle_after;
            changed |= idle != p.idle;
            p.idle = idle;
        }
        if changed {
            self.recompute_low();
            self.raise_watermark();
        }
    }

    /// Reports event time and the partitions holding it.
    fn report_time(&self) {
        if self.watermark != i64::MIN {
            self.metrics
                .watermark
                .set(self.watermark.div_euclid(1_000_000));
        }
        // A partition's time is its slowest clock's (several behind a
        // repartition topic).
        let mut least: HashMap<i64, (i64, Option<&IntGauge>)> = HashMap::new();
        for p in self.parts.iter().filter(|p| p.max_ts != i64::MIN) {
            let e = least.entry(p.id).or_insert((p.max_ts, p.time.as_ref()));
            e.0 = e.0.min(p.max_ts);
        }
        for (t, g) in least.into_values() {
            if let Some(g) = g {
                g.set(t.div_euclid(1_000_000));
            }
        }
        let idle = self.parts.iter().filter(|p| p.idle).count();
        self.metrics.partitions_idle.set(idle as i64);
        self.metrics
            .partitions_active
            .set((self.parts.len() - idle) as i64);
    }

    /// Per partition (or only `part`), its least clock's event time.
    fn part_times(&self, part: Option<i64>) -> Vec<(i64, i64)> {
        let mut out: BTreeMap<i64, i64> = BTreeMap::new();
        for p in self
            .parts
            .iter()
            .filter(|p| part.is_none_or(|id| id == p.id))
        {
            let t = out.entry(p.id).or_insert(p.max_ts);
            *t = (*t).min(p.max_ts);
        }
        out.into_iter().collect()
    }

    /// The index in `parts` of the clock of partition `id` and source
    /// partition `origin` (added when new: a source partition's first rows
    /// take over the partition's clock of no origin, which an announcement
    /// or a restore made, or start with the partition's floor).
    fn part(&mut self, id: i64, origin: i64, now: Instant) -> usize {
        if let Some(&i) = self.part_index.get(&(id, origin)) {
            return i;
        }
        if origin != NO_ORIGIN {
            if let Some(i) = self.part_index.remove(&(id, NO_ORIGIN)) {
                if let Some(p) = self.parts.get_mut(i) {
                    p.origin = origin;
                }
                self.part_index.insert((id, origin), i);
                return i;
            }
        }
        let floor = self
            .parts
            .iter()
            .filter(|p| p.id == id)
            .map(|p| p.floor)
            .max()
            .unwrap_or(i64::MIN);
        self.parts.push(PartClock {
            id,
            origin,
            max_ts: i64::MIN,
            seen: now,
            idle: false,
            floor,
            time: self
                .metrics
                .partition_time
                .as_ref()
                .map(|(g, name)| g.with_label_values(&[name, &id.to_string()])),
        });
        self.part_index.insert((id, origin), self.parts.len() - 1);
        self.parts.len() - 1
    }

    /// The partition at `part` in `parts` has events now (once per run of
    /// its rows in a batch): it is active again if it was idle.
    fn touch(&mut self, part: usize, now: Instant) {
        let Some(p) = self.parts.get_mut(part) else {
            return;
        };
        p.seen = now;
        if std::mem::replace(&mut p.idle, false) {
            self.recompute_low();
            self.raise_watermark();
        }
    }

    /// An event at `ts` of the partition at `part` in `parts` (per row:
    /// one comparison unless the partition's event time moves).
    fn advance_part(&mut self, part: usize, ts: i64) {
        if ts > self.max_ts {
            self.max_ts = ts;
        }
        let Some(p) = self.parts.get_mut(part) else {
            return;
        };
        if ts <= p.max_ts {
            return;
        }
        let old = p.max_ts;
        p.max_ts = ts;
        // Only the partition at the low end (or one joining) moves it; one
        // partition alone is the low end.
        if self.parts.len() == 1 {
            self.low = ts;
            self.raise_watermark();
        } else if old <= self.low {
            self.recompute_low();
            self.raise_watermark();
        }
    }
}

/// A window's state as bytes (CBOR).
fn encode(state: &WindowState) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(state, &mut out)
        .map_err(|e| EngineError::Internal(format!("window state: {e}")))?;
    Ok(out)
}

/// The width of a sliding window's panes: every window (starting at a
/// multiple of `slide`, `size` long) is a whole number of them.
fn pane_width(size: i64, slide: i64) -> i64 {
    let (mut a, mut b) = (size.max(1), slide.max(1));
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Operator for Window {
    fn name(&self) -> &'static str {
        "window"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        self.process_at(batch, Instant::now())
    }

    fn on_idle(&mut self, idle_us: i64) -> Result<Vec<RecordBatch>> {
        if self.max_ts == i64::MIN {
            return Ok(Vec::new());
        }
        self.advance(self.max_ts.saturating_add(idle_us));
        self.emit_until(self.watermark)
    }

    fn advance_to(&mut self, ts: i64) -> Result<Vec<RecordBatch>> {
        self.advance(ts);
        self.emit_until(self.watermark)
    }

    fn watermark(&self) -> Option<i64> {
        (self.watermark != i64::MIN).then_some(self.watermark)
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.emit_until(i64::MAX)
    }

    fn on_partitions(&mut self, ids: &[i64]) {
        if self.part_col.is_none() {
            return;
        }
        // Each new partition holds event time until its first event (or
        // until it is idle while others flow).
        let now = Instant::now();
        let mut added = false;
        for &id in ids {
            if !self.parts.iter().any(|p| p.id == id) {
                self.part(id, NO_ORIGIN, now);
                added = true;
            }
        }
        if added {
            self.recompute_low();
        }
    }

    fn state_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>> {
        encode(&self.state(None)).map(Some)
    }

    fn per_partition(&self) -> bool {
        self.per_partition
    }

    fn snapshot_partitions(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut ids: Vec<i64> = self.parts.iter().map(|p| p.id).collect();
        ids.extend(
            self.live_keys()
                .filter_map(|k| self.key_parts.get(k as usize)),
        );
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| Ok((id, encode(&self.state(Some(id)))?)))
            .collect()
    }

    fn restore_partition(&mut self, bytes: &[u8]) -> Result<()> {
        let state: WindowState = ciborium::from_reader(bytes)
            .map_err(|e| EngineError::Internal(format!("window state unreadable: {e}")))?;
        let unreadable =
            |why: &str| EngineError::Internal(format!("window state unreadable: {why}"));
        let part = state
            .partition
            .ok_or_else(|| unreadable("not the state of one partition"))?;
        let width = self.aggs.len();
        if state
            .panes
            .iter()
            .flat_map(|(_, p)| p.iter())
            .any(|(_, accs)| accs.len() != width)
        {
            return Err(unreadable("a key with another number of aggregates"));
        }
        // Its key numbers to this window's (new keys are added; the
        // partition's keys are this window's now, whatever `max_keys`).
        let mut ids = Vec::with_capacity(state.keys.len());
        for k in &state.keys {
            let bytes: &[u8] = match (&self.converter, k) {
                (Some(_), Some(b)) => b,
                (Some(_), None) => return Err(unreadable("a key without bytes")),
                (None, _) => &[],
            };
            let id = match self.keys.find(bytes) {
                Some(id) => id,
                None => self
                    .keys
                    .insert(bytes)
                    .ok_or_else(|| unreadable("the key table is full"))?,
            };
            ids.push(id);
        }
        let id_of = |k: u32| {
            ids.get(k as usize)
                .copied()
                .ok_or_else(|| unreadable("a key it does not hold"))
        };
        self.key_parts.resize(self.keys.len(), 0);
        for &id in &ids {
            if let Some(p) = self.key_parts.get_mut(id as usize) {
                *p = part;
            }
        }
        for (start, list) in state.panes {
            let pane = self.panes.entry(start).or_default();
            for (k, accs) in list {
                let mine = pane.accs_mut(id_of(k)?, &self.aggs);
                for (a, b) in mine.iter_mut().zip(accs) {
                    a.merge(b);
                }
            }
        }
        for (k, list) in state.sessions {
            self.sessions.entry(id_of(k)?).or_default().extend(list);
        }
        if self.next_start == i64::MIN {
            self.next_start = state.next_start;
        } else {
            self.next_start = self.next_start.max(state.next_start);
        }
        self.max_ts = self.max_ts.max(state.max_ts);
        self.late_total += state.late_total;
        let now = Instant::now();
        if !self.parts.iter().any(|p| p.id == part) {
            self.part(part, NO_ORIGIN, now);
        }
        let saved = state.parts.iter().find(|(id, _)| *id == part).map(|p| p.1);
        for p in self.parts.iter_mut().filter(|p| p.id == part) {
            p.max_ts = p.max_ts.max(saved.unwrap_or(i64::MIN));
            p.floor = p.floor.max(state.watermark);
        }
        self.recompute_low();
        self.collected = false;
        self.update_open_gauge();
        Ok(())
    }

    fn revoke_partitions(&mut self, ids: &[i64]) {
        if !self.per_partition || ids.is_empty() {
            return;
        }
        let gone = |k: u32, parts: &[i64]| parts.get(k as usize).is_some_and(|p| ids.contains(p));
        let n = self.aggs.len();
        for pane in self.panes.values_mut() {
            if !pane.slots.keys().any(|&k| gone(k, &self.key_parts)) {
                continue;
            }
            let mut kept = Pane::default();
            for (k, slot) in pane.sorted() {
                if gone(k, &self.key_parts) {
                    continue;
                }
                if let Some(accs) = pane.accs.get(slot * n..(slot + 1) * n) {
                    kept.slots.insert(k, kept.slots.len() as u32);
                    kept.accs.extend_from_slice(accs);
                }
            }
            *pane = kept;
        }
        self.panes.retain(|_, p| p.len() > 0);
        let parts = &self.key_parts;
        self.sessions.retain(|&k, _| !gone(k, parts));
        // Their keys go from the key table too.
        self.collect_keys(&[]);
        if let Some((g, name)) = &self.metrics.partition_time {
            for id in ids {
                let _ = g.remove_label_values(&[name, &id.to_string()]);
            }
        }
        self.parts.retain(|p| !ids.contains(&p.id));
        self.part_index = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.id, p.origin), i))
            .collect();
        self.recompute_low();
        self.update_open_gauge();
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let state: WindowState = ciborium::from_reader(bytes)
            .map_err(|e| EngineError::Internal(format!("window state unreadable: {e}")))?;
        let unreadable =
            |why: &str| EngineError::Internal(format!("window state unreadable: {why}"));
        let mut keys = KeyTable::new();
        match &self.converter {
            Some(_) => {
                for k in &state.keys {
                    // Every key of a grouped window has bytes; a key held
                    // twice would give two ids one lookup.
                    let bytes = k
                        .as_deref()
                        .ok_or_else(|| unreadable("a key without bytes"))?;
                    if keys.find(bytes).is_some() || keys.insert(bytes).is_none() {
                        return Err(unreadable("a key held twice"));
                    }
                }
            }
            None if state.keys.is_empty() => {}
            None => {
                keys.insert(&[]);
            }
        }
        let n = keys.len() as u32;
        let known = |k: &u32| *k < n;
        if !state
            .panes
            .iter()
            .all(|(_, p)| p.iter().all(|(k, _)| known(k)))
            || !state.sessions.iter().all(|(k, _)| known(k))
        {
            return Err(EngineError::Internal(
                "window state names a key it does not hold".into(),
            ));
        }
        let width = self.aggs.len();
        let mut panes = BTreeMap::new();
        for (start, list) in state.panes {
            let mut pane = Pane::default();
            for (k, accs) in list {
                if accs.len() != width {
                    return Err(unreadable("a key with another number of aggregates"));
                }
                let slot = pane.slots.len() as u32;
                if pane.slots.insert(k, slot).is_some() {
                    return Err(unreadable("a key held twice in one window"));
                }
                pane.accs.extend(accs);
            }
            panes.insert(start, pane);
        }
        if self.per_partition {
            self.key_parts = state.key_parts;
            self.key_parts.resize(keys.len(), 0);
        }
        self.keys = keys;
        self.panes = panes;
        self.next_start = state.next_start;
        self.sessions = state.sessions.into_iter().collect();
        self.max_ts = state.max_ts;
        self.watermark = state.watermark;
        self.late_total = state.late_total;
        let now = Instant::now();
        self.parts.clear();
        self.part_index.clear();
        for (id, max_ts) in state.parts {
            let at = self.part(id, NO_ORIGIN, now);
            if let Some(p) = self.parts.get_mut(at) {
                p.max_ts = max_ts;
            }
        }
        self.recompute_low();
        self.collected = false;
        self.update_open_gauge();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::aggregate::AggKind;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use weir_dsl::Type;

    fn window(max_keys: usize) -> (Window, IntCounter) {
        let (w, overflow, _) = window_with(0, max_keys);
        (w, overflow)
    }

    /// Tumbling 1 s windows counting events by `id` (column 1); the window,
    /// its overflow counter and its late counter.
    fn window_with(lateness: i64, max_keys: usize) -> (Window, IntCounter, IntCounter) {
        window_assigned(
            Assigner::Tumbling { size_us: 1_000_000 },
            lateness,
            max_keys,
        )
    }

    /// Like [`window_with`], for windows of `assigner`.
    fn window_assigned(
        assigner: Assigner,
        lateness: i64,
        max_keys: usize,
    ) -> (Window, IntCounter, IntCounter) {
        let out = Arc::new(Schema::new(vec![
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Microsecond, Some(TZ.into())),
                false,
            ),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Microsecond, Some(TZ.into())),
                false,
            ),
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let overflow = IntCounter::new("overflow", "test").unwrap_or_else(|e| panic!("{e}"));
        let late = IntCounter::new("late", "test").unwrap_or_else(|e| panic!("{e}"));
        let w = Window::new(
            assigner,
            lateness,
            0,
            vec![(1, DataType::Utf8)],
            vec![AggSpec {
                kind: AggKind::Count,
                arg: None,
                out: Type::Int,
            }],
            out,
            WindowMetrics {
                late: late.clone(),
                open: IntGauge::new("open", "test").unwrap_or_else(|e| panic!("{e}")),
                overflow: overflow.clone(),
                watermark: IntGauge::new("wm", "test").unwrap_or_else(|e| panic!("{e}")),
                partitions_active: IntGauge::new("a", "test").unwrap_or_else(|e| panic!("{e}")),
                partitions_idle: IntGauge::new("i", "test").unwrap_or_else(|e| panic!("{e}")),
                partition_time: None,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .with_max_keys(max_keys);
        (w, overflow, late)
    }

    /// Events at `second` with ids `first..first + n`.
    fn batch(second: i64, first: usize, n: usize) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(vec![second * 1_000_000; n]).with_timezone(TZ);
        let ids = StringArray::from_iter_values((first..first + n).map(|i| format!("id{i}")));
        RecordBatch::try_from_iter(vec![
            ("timestamp", Arc::new(ts) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn counted(out: &[RecordBatch]) -> i64 {
        out.iter()
            .map(|b| {
                b.column(3)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map_or(0, |c| c.values().iter().sum::<i64>())
            })
            .sum()
    }

    #[test]
    fn a_window_closing_more_keys_than_a_batch_holds_emits_them_in_slices_in_key_order() {
        let keys = EMIT_ROWS * 2 + 100;
        let (mut w, overflow) = window(keys);
        let mut out = Vec::new();
        for (first, n) in [(0, keys), (0, 500)] {
            out.extend(
                w.process(batch(0, first, n))
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        assert!(out.is_empty(), "the window is open");
        out.extend(w.finish().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(overflow.get(), 0);
        let sizes: Vec<usize> = out.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [EMIT_ROWS, EMIT_ROWS, 100]);
        assert_eq!(counted(&out), keys as i64 + 500);
        // Keys in the order they came (their numbers), across the slices.
        let emitted: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let c = b.column(2).as_any().downcast_ref::<StringArray>();
                c.map(|c| c.iter().flatten().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        let want: Vec<String> = (0..keys).map(|i| format!("id{i}")).collect();
        assert!(emitted == want, "keys out of order or lost");
    }

    #[test]
    fn keys_past_the_limit_are_counted_out_and_open_keys_keep_counting() {
        let (mut w, overflow) = window(100);
        let mut out = w.process(batch(0, 0, 80)).unwrap_or_else(|e| panic!("{e}"));
        // 40 more keys: 20 fit, 20 are left out; the first 80 keep counting.
        out.extend(
            w.process(batch(0, 60, 60))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        out.extend(w.finish().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(overflow.get(), 20);
        assert_eq!(counted(&out), 140 - 20);
        let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 100);
    }

    fn ids(out: &[RecordBatch]) -> Vec<String> {
        let mut v: Vec<String> = out
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|c| c.iter().flatten().map(str::to_string).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keys_collected_in_the_middle_of_a_batch_keep_their_events() {
        let (mut w, overflow) = window(100);
        // 80 keys in window 0; window 1 reuses 10 of them and closes window 0.
        let mut out = w.process(batch(0, 0, 80)).unwrap_or_else(|e| panic!("{e}"));
        out.extend(w.process(batch(1, 0, 10)).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(counted(&out), 80);
        // 90 new keys in window 2: the table fills after 20 of them; the 70
        // keys only window 0 held are forgotten, those of this batch and of
        // window 1 kept, and the other 70 fit.
        let mut late = w
            .process(batch(2, 200, 90))
            .unwrap_or_else(|e| panic!("{e}"));
        late.extend(w.finish().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(overflow.get(), 0);
        assert_eq!(counted(&late), 100);
        let mut expected: Vec<String> = (0..10).chain(200..290).map(|i| format!("id{i}")).collect();
        expected.sort();
        assert_eq!(ids(&late), expected);
        assert!(w.keys.len() <= 100);
    }

    #[test]
    fn keys_of_closed_windows_are_forgotten() {
        // A new random id every event, one window a second, for a long time:
        // the key table stays bounded and nothing overflows.
        let (mut w, overflow) = window(2_000);
        let mut total = 0;
        for second in 0..200 {
            let out = w
                .process(batch(second, second as usize * 900, 900))
                .unwrap_or_else(|e| panic!("{e}"));
            total += counted(&out);
            assert!(w.keys.len() <= 2_000, "{}", w.keys.len());
        }
        total += counted(&w.finish().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(overflow.get(), 0);
        assert_eq!(total, 200 * 900);
    }

    #[test]
    fn restored_state_carries_on_across_key_collections() {
        // Keys forgotten and renumbered between checkpoints (a small key
        // table), and a restart from a snapshot every 17th second: the same
        // rows as the run that never stopped.
        let batch_of = |second: i64| {
            // Half the ids recur every second, half are new.
            let ids: Vec<(i64, String)> = (0..600)
                .map(|i| {
                    let id = if i % 2 == 0 { i } else { second * 1_000 + i };
                    (second * 1_000_000 + i * 10, format!("id{id}"))
                })
                .collect();
            events_batch(&ids)
        };
        let run = |restart: bool| {
            let (mut w, overflow) = window(1_000);
            let mut rows = Vec::new();
            for second in 0..120 {
                if restart && second % 17 == 0 {
                    let bytes = w
                        .snapshot()
                        .unwrap_or_else(|e| panic!("{e}"))
                        .unwrap_or_else(|| panic!("a window has state"));
                    let (fresh, _) = window(1_000);
                    w = fresh;
                    w.restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
                }
                collect_rows(
                    w.process(batch_of(second))
                        .unwrap_or_else(|e| panic!("{e}")),
                    &mut rows,
                );
                assert!(w.keys.len() <= 1_000, "{}", w.keys.len());
            }
            collect_rows(w.finish().unwrap_or_else(|e| panic!("{e}")), &mut rows);
            assert_eq!(overflow.get(), 0);
            rows
        };
        let reference = run(false);
        assert_eq!(reference.len(), 120 * 600);
        assert_eq!(reference.iter().map(|r| r.2).sum::<i64>(), 120 * 600);
        assert_eq!(run(true), reference);
    }

    #[test]
    fn sliding_windows_in_panes_count_what_each_window_held() {
        // Jittered events over 5 keys against a reference that adds each
        // event, as it comes, to every window holding it that is still open
        // (the watermark of the events before it): the windows' rows and
        // late counts are the same, for slides dividing the size or not,
        // and for windows shorter than their slide.
        let mut next = crate::testing::xorshift(0x5eed_1234_u64);
        let events: Vec<(i64, String)> = (0..4_000i64)
            .map(|i| {
                let jitter = (next() % 4_000_000) as i64 - 2_000_000;
                (i * 7_000 + jitter, format!("k{}", next() % 5))
            })
            .collect();
        let lateness = 1_000_000;
        for (size, slide) in [(5, 1), (5, 2), (3, 3), (1, 3), (6, 4)] {
            let (size, slide) = (size * 1_000_000i64, slide * 1_000_000i64);
            let sliding = Assigner::Sliding {
                size_us: size,
                slide_us: slide,
            };
            let mut expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
            let mut late = 0;
            let mut watermark = i64::MIN;
            for (ts, k) in &events {
                let mut added = false;
                let mut start = ts.div_euclid(slide) * slide;
                while start > ts - size {
                    if start + size > watermark {
                        *expected.entry((start, k.clone())).or_default() += 1;
                        added = true;
                    }
                    start -= slide;
                }
                if !added {
                    late += 1;
                }
                watermark = watermark.max(ts - lateness);
            }
            let (mut w, _, _) = window_assigned(sliding, lateness, DEFAULT_MAX_KEYS);
            let mut rows = Vec::new();
            for (n, part) in events.chunks(97).enumerate() {
                if n == 20 {
                    // A restart from a snapshot half-way.
                    let bytes = w
                        .snapshot()
                        .unwrap_or_else(|e| panic!("{e}"))
                        .unwrap_or_else(|| panic!("state"));
                    let (fresh, _, _) = window_assigned(sliding, lateness, DEFAULT_MAX_KEYS);
                    w = fresh;
                    w.restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
                }
                collect_rows(
                    w.process(events_batch(part))
                        .unwrap_or_else(|e| panic!("{e}")),
                    &mut rows,
                );
            }
            collect_rows(w.finish().unwrap_or_else(|e| panic!("{e}")), &mut rows);
            let got: BTreeMap<(i64, String), i64> =
                rows.iter().map(|(s, k, n)| ((*s, k.clone()), *n)).collect();
            assert_eq!(got.len(), rows.len(), "a window emitted twice");
            assert_eq!(got, expected, "size {size} slide {slide}");
            // Late events counted before the restart are in the snapshot.
            assert_eq!(w.late_events(), late, "size {size} slide {slide}");
        }
    }

    /// (window start, id, count) of every row of `out`, into `rows`.
    fn collect_rows(out: Vec<RecordBatch>, rows: &mut Vec<(i64, String, i64)>) {
        for b in out {
            let starts = b.column(0).as_primitive::<TimestampMicrosecondType>();
            let ids = b.column(2).as_string::<i32>();
            let ns = b.column(3).as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                rows.push((starts.value(i), ids.value(i).to_string(), ns.value(i)));
            }
        }
    }

    /// A batch of (time, id) events.
    fn events_batch(part: &[(i64, String)]) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(part.iter().map(|e| e.0).collect::<Vec<_>>())
            .with_timezone(TZ);
        let ids = StringArray::from_iter_values(part.iter().map(|e| e.1.as_str()));
        RecordBatch::try_from_iter(vec![
            ("timestamp", Arc::new(ts) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Events (second, partition) of key `k`, as a batch with `_partition`
    /// in column 2.
    fn partitioned(events: &[(i64, i64)]) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(
            events.iter().map(|e| e.0 * 1_000_000).collect::<Vec<_>>(),
        )
        .with_timezone(TZ);
        let ids = StringArray::from_iter_values(events.iter().map(|_| "k"));
        let parts = Int64Array::from(events.iter().map(|e| e.1).collect::<Vec<_>>());
        RecordBatch::try_from_iter(vec![
            ("timestamp", Arc::new(ts) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
            ("_partition", Arc::new(parts) as ArrayRef),
        ])
        .unwrap()
    }

    /// Events (second, key, partition), with `_partition` in column 2.
    fn keyed(events: &[(i64, &str, i64)]) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(
            events.iter().map(|e| e.0 * 1_000_000).collect::<Vec<_>>(),
        )
        .with_timezone(TZ);
        let ids = StringArray::from_iter_values(events.iter().map(|e| e.1));
        let parts = Int64Array::from(events.iter().map(|e| e.2).collect::<Vec<_>>());
        RecordBatch::try_from_iter(vec![
            ("timestamp", Arc::new(ts) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
            ("_partition", Arc::new(parts) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn a_partitions_state_moves_to_another_window_and_counts_as_if_it_never_moved() {
        let per_partition = || {
            let (w, _, late) = window_with(0, DEFAULT_MAX_KEYS);
            let mut w = w
                .with_partitions(Some(2), Duration::from_secs(3600))
                .with_state_per_partition(true);
            // Its rows say which partition their key is of (the checker
            // adds the field).
            let mut fields = w.schema.fields().to_vec();
            fields.push(Arc::new(Field::new("_partition", DataType::Int64, true)));
            w.schema = Arc::new(Schema::new(fields));
            (w, late)
        };
        // Keys k0 and k1, each in its partition, seconds 0 to 10; then a
        // late event of k1; then seconds 11 to 20.
        let first: Vec<(i64, &str, i64)> = (0..=10)
            .flat_map(|t| [(t, "k0", 0), (t, "k1", 1)])
            .collect();
        let late_one = [(3, "k1", 1)];
        let second: Vec<(i64, &str, i64)> = (11..=20)
            .flat_map(|t| [(t, "k0", 0), (t, "k1", 1), (t, "k1", 1)])
            .collect();
        let mut expected = Vec::new();
        let (mut r, r_late) = per_partition();
        for b in [&first[..], &late_one[..], &second[..]] {
            collect_rows(r.process(keyed(b)).unwrap(), &mut expected);
        }
        collect_rows(r.finish().unwrap(), &mut expected);
        assert_eq!(r_late.get(), 1);

        let mut got = Vec::new();
        let (mut a, _) = per_partition();
        collect_rows(a.process(keyed(&first)).unwrap(), &mut got);
        assert!(a.per_partition());
        let states = a.snapshot_partitions().unwrap();
        assert_eq!(
            states.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![0, 1],
            "one state per partition"
        );
        // Partition 1 moves to window B: A forgets its keys, B takes them in.
        a.revoke_partitions(&[1]);
        let (mut b, b_late) = per_partition();
        b.restore_partition(&states[1].1).unwrap();
        assert!(
            b.restore_partition(&a.snapshot().unwrap().unwrap())
                .is_err(),
            "a whole window's state is not one partition's"
        );
        collect_rows(b.process(keyed(&late_one)).unwrap(), &mut got);
        assert_eq!(b_late.get(), 1, "late by the watermark it came with");
        let (p0, p1): (Vec<_>, Vec<_>) = second.iter().copied().partition(|e| e.2 == 0);
        collect_rows(a.process(keyed(&p0)).unwrap(), &mut got);
        collect_rows(b.process(keyed(&p1)).unwrap(), &mut got);
        // A holds nothing of partition 1 any more.
        assert!(a.snapshot_partitions().unwrap().iter().all(|s| s.0 == 0));
        collect_rows(a.finish().unwrap(), &mut got);
        let last = b.finish().unwrap();
        let parts = last[0]
            .column(4)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert!(
            parts.iter().all(|p| p == Some(1)),
            "B's rows are of partition 1"
        );
        collect_rows(last, &mut got);
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_partition_read_behind_the_others_holds_windows_open() {
        let (w, _, late) = window_with(0, DEFAULT_MAX_KEYS);
        let mut w = w.with_partitions(Some(2), Duration::from_secs(3600));
        w.on_partitions(&[0, 1]);
        // Partition 0 is read up to second 110 before partition 1's
        // events of second 50 come: the watermark is partition 1's.
        let out = w.process(partitioned(&[(100, 0), (110, 0)])).unwrap();
        assert_eq!(w.watermark(), None, "partition 1 has not been read yet");
        assert_eq!(counted(&out), 0);
        let out = w.process(partitioned(&[(50, 1), (51, 1)])).unwrap();
        assert_eq!(late.get(), 0, "nothing late");
        assert_eq!(counted(&out), 1, "the window of second 50 closed at 51");
        let out = w.process(partitioned(&[(120, 1)])).unwrap();
        assert_eq!(counted(&out), 2, "windows up to 110 close once both passed");
        assert_eq!(w.watermark(), Some(110_000_000));
        // A snapshot keeps each partition's event time.
        let state = w.snapshot().unwrap().unwrap();
        let (again, _, late2) = window_with(0, DEFAULT_MAX_KEYS);
        let mut again = again.with_partitions(Some(2), Duration::from_secs(3600));
        again.restore(&state).unwrap();
        again.process(partitioned(&[(115, 1)])).unwrap();
        assert_eq!(late2.get(), 0, "partition 1 may still bring second 115");
    }

    /// Events (second, source partition), all read from partition 0 of a
    /// repartition topic: `_partition` in column 2, `_origin_partition` in 3.
    fn repartitioned(events: &[(i64, i64)]) -> RecordBatch {
        let b = partitioned(&events.iter().map(|e| (e.0, 0)).collect::<Vec<_>>());
        let origins = Int64Array::from(events.iter().map(|e| e.1).collect::<Vec<_>>());
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(origins));
        let mut fields = b.schema().fields().to_vec();
        fields.push(Arc::new(Field::new(
            "_origin_partition",
            DataType::Int64,
            true,
        )));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    #[test]
    fn behind_a_repartition_topic_a_source_partition_read_behind_holds_windows_open() {
        // Source partitions 0 and 1 both start at second 10; then 0 is
        // read up to second 110 while 1 is still at second 50 (a backlog):
        // all through one partition of the repartition topic.
        let batches = [
            vec![(10, 0), (10, 1)],
            vec![(100, 0), (110, 0)],
            vec![(50, 1), (51, 1)],
        ];
        let run = |origins: bool| {
            let (w, _, late) = window_with(0, DEFAULT_MAX_KEYS);
            let w = w.with_partitions(Some(2), Duration::from_secs(3600));
            let mut w = if origins { w.with_origins(Some(3)) } else { w };
            w.on_partitions(&[0]);
            let mut out = 0;
            for b in &batches {
                out += counted(&w.process(repartitioned(b)).unwrap());
            }
            (w, late.get(), out)
        };
        // By the topic partition's clock alone, source partition 1's rows
        // are late.
        let (_, late, _) = run(false);
        assert_eq!(late, 2);
        let (mut w, late, out) = run(true);
        assert_eq!(late, 0, "source partition 1 holds the windows open");
        assert_eq!(out, 3, "windows up to second 51 closed");
        assert_eq!(w.watermark(), Some(51_000_000));
        // The partition's state moves with its least clock's time: its
        // next reader lets source partition 1 go on from second 51.
        let state = w.snapshot_partitions().unwrap();
        assert_eq!(state.len(), 1);
        let (again, _, late2) = window_with(0, DEFAULT_MAX_KEYS);
        let mut again = again
            .with_partitions(Some(2), Duration::from_secs(3600))
            .with_origins(Some(3));
        again.restore_partition(&state[0].1).unwrap();
        again.process(repartitioned(&[(60, 1), (112, 0)])).unwrap();
        assert_eq!(late2.get(), 0);
        assert_eq!(
            again.watermark(),
            Some(60_000_000),
            "the least clock's time"
        );
        let out = w.process(repartitioned(&[(120, 1)])).unwrap();
        assert_eq!(
            counted(&out),
            2,
            "seconds 100 and 110 close once 1 passed them"
        );
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let (w, _, late) = window_with(0, DEFAULT_MAX_KEYS);
        let mut w = w.with_partitions(Some(2), Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        w.process_at(partitioned(&[(50, 1)]), at(0)).unwrap();
        // Partition 0 flows on; partition 1 is quiet.
        for (i, s) in [4u64, 8, 12].iter().enumerate() {
            let t = 100 + i as i64 * 10;
            w.process_at(partitioned(&[(t, 0)]), at(*s)).unwrap();
        }
        // Until second 10 of wall clock partition 1 held the watermark at
        // 50; then it went idle and partition 0 moved it to 120.
        assert_eq!(w.watermark(), Some(120_000_000));
        w.process_at(partitioned(&[(60, 1)]), at(13)).unwrap();
        assert_eq!(
            late.get(),
            1,
            "second 60 came after the watermark passed it"
        );

        // A pause of the whole stream makes no partition idle.
        let (w, _, late) = window_with(0, DEFAULT_MAX_KEYS);
        let mut w = w.with_partitions(Some(2), Duration::from_secs(10));
        w.process_at(partitioned(&[(50, 1)]), at(0)).unwrap();
        w.process_at(partitioned(&[(100, 0)]), at(1)).unwrap();
        w.process_at(partitioned(&[(110, 0)]), at(30)).unwrap();
        assert_eq!(w.watermark(), Some(50_000_000));
        w.process_at(partitioned(&[(60, 1)]), at(31)).unwrap();
        assert_eq!(late.get(), 0);
    }

    /// The same events, out of order, cut into batches of 1, 7, 100, 8192
    /// and random sizes: identical window rows and late counts.
    #[test]
    fn results_do_not_depend_on_batch_boundaries() {
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d_u64);
        // 5,000 events moving forward 10 ms each, jittered by up to ±3 s,
        // over 7 keys.
        let events: Vec<(i64, String)> = (0..5_000i64)
            .map(|i| {
                let jitter = (next() % 6_000_000) as i64 - 3_000_000;
                (i * 10_000 + jitter, format!("k{}", next() % 7))
            })
            .collect();
        let run = |sizes: &mut dyn FnMut() -> usize| {
            let (mut w, _, late) = window_with(2_000_000, DEFAULT_MAX_KEYS);
            let mut rows = Vec::new();
            let mut at = 0;
            while at < events.len() {
                let n = sizes().clamp(1, events.len() - at);
                let b = events_batch(&events[at..at + n]);
                at += n;
                collect_rows(w.process(b).unwrap_or_else(|e| panic!("{e}")), &mut rows);
            }
            collect_rows(w.finish().unwrap_or_else(|e| panic!("{e}")), &mut rows);
            rows.sort();
            (rows, late.get())
        };
        let reference = run(&mut || 1);
        assert!(reference.1 > 0, "the jitter makes some events late");
        let total: i64 = reference.0.iter().map(|r| r.2).sum();
        assert_eq!(total + reference.1 as i64, 5_000);
        for size in [7usize, 100, 8192] {
            assert_eq!(run(&mut || size), reference, "batches of {size}");
        }
        let mut r = 0x9e37_79b9_u64;
        let mut random = move || {
            r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (r >> 33) as usize % 300 + 1
        };
        assert_eq!(run(&mut random), reference, "random batches");

        // A restart after every 13th batch, from the last snapshot: the
        // same rows and late events as the uninterrupted run.
        let (mut w, _, mut late) = window_with(2_000_000, DEFAULT_MAX_KEYS);
        let mut late_total = 0;
        let mut rows = Vec::new();
        for (n, part) in events.chunks(100).enumerate() {
            if n % 13 == 12 {
                let state = w.snapshot().unwrap().unwrap();
                late_total += late.get();
                let (mut again, _, l) = window_with(2_000_000, DEFAULT_MAX_KEYS);
                again.restore(&state).unwrap();
                (w, late) = (again, l);
            }
            collect_rows(w.process(events_batch(part)).unwrap(), &mut rows);
        }
        collect_rows(w.finish().unwrap(), &mut rows);
        rows.sort();
        assert_eq!(
            (rows, late_total + late.get()),
            reference,
            "restored from snapshots"
        );
        assert!(
            w.restore(b"not cbor").is_err(),
            "a damaged state is an error"
        );
    }
}
