//! Event-time windows: tumbling, sliding (hopping) and session, grouped by fields.
//!
//! Each window keeps per-key aggregate state. The watermark is the largest event
//! time seen minus the allowed lateness; a window is emitted once its end is at or
//! before the watermark. An event whose every window has already been emitted is
//! late: it is counted (`weir_late_events_dropped_total`) and not added.

use super::aggregate::{build_column, Acc, AggSpec, Input};
use super::Operator;
use crate::error::{EngineError, Result};
use crate::schema::TZ;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};
use prometheus::{IntCounter, IntGauge};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Which windows an event belongs to. All lengths in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

struct Session {
    start: i64,
    last: i64,
    accs: Vec<Acc>,
}

/// Counters a window reports to.
pub struct WindowMetrics {
    pub late: IntCounter,
    pub open: IntGauge,
}

pub struct Window {
    assigner: Assigner,
    lateness: i64,
    ts_col: usize,
    group_cols: Vec<usize>,
    converter: Option<RowConverter>,
    aggs: Vec<AggSpec>,
    key_ids: HashMap<Box<[u8]>, u32>,
    keys: Vec<Option<OwnedRow>>,
    /// Tumbling and sliding state: window start -> key -> accumulators.
    panes: BTreeMap<i64, HashMap<u32, Vec<Acc>>>,
    sessions: HashMap<u32, Vec<Session>>,
    max_ts: i64,
    watermark: i64,
    schema: SchemaRef,
    metrics: WindowMetrics,
    late_total: u64,
}

impl Window {
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
            key_ids: HashMap::new(),
            keys: Vec::new(),
            panes: BTreeMap::new(),
            sessions: HashMap::new(),
            max_ts: i64::MIN,
            watermark: i64::MIN,
            schema,
            metrics,
            late_total: 0,
        })
    }

    /// Events dropped as late so far.
    pub fn late_events(&self) -> u64 {
        self.late_total
    }

    fn key_ids(&mut self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let n = batch.num_rows();
        let Some(conv) = &self.converter else {
            if self.keys.is_empty() {
                self.keys.push(None);
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
            let id = match self.key_ids.get(row.as_ref()) {
                Some(&id) => id,
                None => {
                    let id = self.keys.len() as u32;
                    self.key_ids.insert(row.as_ref().into(), id);
                    self.keys.push(Some(row.owned()));
                    id
                }
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
            Assigner::Tumbling { size } => {
                let start = ts.div_euclid(size) * size;
                if start.saturating_add(size) <= self.watermark {
                    return false;
                }
                let accs = self
                    .panes
                    .entry(start)
                    .or_default()
                    .entry(key)
                    .or_insert_with(|| Self::new_accs(aggs));
                Self::add(aggs, accs, inputs, row);
                true
            }
            Assigner::Sliding { size, slide } => {
                let mut start = ts.div_euclid(slide) * slide;
                let mut added = false;
                while start > ts - size {
                    if start.saturating_add(size) > self.watermark {
                        let accs = self
                            .panes
                            .entry(start)
                            .or_default()
                            .entry(key)
                            .or_insert_with(|| Self::new_accs(aggs));
                        Self::add(aggs, accs, inputs, row);
                        added = true;
                    }
                    start -= slide;
                }
                added
            }
            Assigner::Session { gap } => {
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
            Assigner::Tumbling { size } | Assigner::Sliding { size, .. } => size,
            Assigner::Session { gap } => gap,
        }
    }

    /// Emits every window whose end is at or before `limit`.
    fn emit_until(&mut self, limit: i64) -> Result<Vec<RecordBatch>> {
        let mut rows: Vec<(i64, i64, u32, Vec<Acc>)> = Vec::new();
        match self.assigner {
            Assigner::Session { gap } => {
                for (&key, sessions) in self.sessions.iter_mut() {
                    let mut i = 0;
                    while i < sessions.len() {
                        if sessions[i].last.saturating_add(gap) <= limit {
                            let s = sessions.swap_remove(i);
                            rows.push((s.start, s.last + gap, key, s.accs));
                        } else {
                            i += 1;
                        }
                    }
                }
                self.sessions.retain(|_, s| !s.is_empty());
                rows.sort_by_key(|r| (r.0, r.2));
            }
            _ => {
                let size = self.window_size();
                while let Some(entry) = self.panes.first_entry() {
                    let start = *entry.key();
                    if start.saturating_add(size) > limit {
                        break;
                    }
                    let mut pane: Vec<(u32, Vec<Acc>)> = entry.remove().into_iter().collect();
                    pane.sort_by_key(|(k, _)| *k);
                    rows.extend(pane.into_iter().map(|(k, a)| (start, start + size, k, a)));
                }
            }
        }
        self.update_open_gauge();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![self.build(rows)?])
    }

    fn update_open_gauge(&self) {
        let open: usize = match self.assigner {
            Assigner::Session { .. } => self.sessions.values().map(Vec::len).sum(),
            _ => self.panes.values().map(HashMap::len).sum(),
        };
        self.metrics.open.set(open as i64);
    }

    fn build(&self, rows: Vec<(i64, i64, u32, Vec<Acc>)>) -> Result<RecordBatch> {
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
            let keys = rows
                .iter()
                .map(|r| {
                    self.keys
                        .get(r.2 as usize)
                        .and_then(|k| k.as_ref())
                        .map(|k| k.row())
                        .ok_or_else(|| EngineError::Other("internal: unknown window key".into()))
                })
                .collect::<Result<Vec<_>>>()?;
            cols.extend(conv.convert_rows(keys)?);
        }
        for (i, spec) in self.aggs.iter().enumerate() {
            cols.push(build_column(
                spec.out,
                rows.iter().filter_map(|r| r.3.get(i)),
            )?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }

    fn advance(&mut self, ts: i64) {
        if ts > self.max_ts {
            self.max_ts = ts;
            self.watermark = ts.saturating_sub(self.lateness);
        }
    }
}

impl Operator for Window {
    fn name(&self) -> &'static str {
        "window"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(Vec::new());
        }
        let ts = batch
            .column(self.ts_col)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| EngineError::Other("window: timestamp has the wrong type".into()))?
            .clone();
        let keys = self.key_ids(&batch)?;
        let inputs: Vec<Input> = self
            .aggs
            .iter()
            .map(|a| a.input(&batch))
            .collect::<Result<_>>()?;
        let mut late = 0u64;
        let mut batch_max = i64::MIN;
        for (row, &key) in keys.iter().enumerate() {
            if ts.is_null(row) {
                late += 1;
                continue;
            }
            let t = ts.value(row);
            batch_max = batch_max.max(t);
            if !self.assign(t, key, &inputs, row) {
                late += 1;
            }
        }
        if late > 0 {
            self.late_total += late;
            self.metrics.late.inc_by(late);
        }
        self.advance(batch_max);
        self.emit_until(self.watermark)
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
}
