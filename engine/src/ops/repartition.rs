//! `repartition by KEYS`: the two ends of a repartition topic (see
//! `weir_dsl::repartition`).
//!
//! - [`RepartitionRole::Send`]: each row's source position and line are
//!   renamed to the `_origin_` fields, so they travel with it through the
//!   topic (the `| to` after it writes the rows, keyed by KEYS).
//! - [`RepartitionRole::Receive`]: each row read from the topic is checked
//!   against the last origin offset seen from its source partition in its
//!   topic partition; rows at or before it are a sender's replay (after a
//!   crash, the sender reads again from its last commit and sends again
//!   what it had sent) and are dropped. What was seen is the operator's
//!   state, kept per topic partition and moved with it, so a replay is
//!   recognised by whichever process reads the partition next. Rows come
//!   out as they were sent: the schema the stage had before the split,
//!   `_raw` the original line.
//! - [`RepartitionRole::InProcess`] (`weir test`, a backtest): nothing.
//!
//! Why per (topic partition, source partition) a high-water mark is
//! enough: a process reads a source partition and sends its rows in offset
//! order through an idempotent producer, so within a topic partition each
//! source partition's offsets rise, except where a new reader replays from
//! the last commit. A reader that paused past its session (a zombie) and
//! sends on while the new one replays makes two such streams, both
//! starting at or before the commit: every offset at or before the mark
//! was delivered by one of them, so the mark drops only copies.

use super::{Operator, StageContext};
use crate::error::{EngineError, Result};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema as ArrowSchema, SchemaRef};
use std::collections::HashMap;
use std::sync::Arc;
use weir_dsl::plan::{RepartitionRole, StagePlan};
use weir_dsl::types::{OFFSET, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_RAW, PARTITION, RAW};

/// The renames of the sending side, reversed by the receiving side.
const ORIGIN: [(&str, &str); 3] = [
    (PARTITION, ORIGIN_PARTITION),
    (OFFSET, ORIGIN_OFFSET),
    (RAW, ORIGIN_RAW),
];

/// The operator.
pub struct Repartition {
    role: RepartitionRole,
    /// Receive: the schema rows leave with (the stage's own before the split).
    output: SchemaRef,
    /// Receive: the last origin offset seen per (topic partition, source
    /// partition).
    seen: HashMap<(i64, i64), i64>,
    definition: String,
    duplicates: prometheus::IntCounter,
}

/// What a checkpoint keeps: the marks of one topic partition (or all).
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    partition: Option<i64>,
    /// (topic partition, source partition, last offset).
    seen: Vec<(i64, i64, i64)>,
}

impl Repartition {
    pub fn from_stage(s: &mut StageContext) -> Result<Repartition> {
        let StagePlan::Repartition(plan) = s.plan else {
            return Err(s.wrong_plan("repartition"));
        };
        let keys: Vec<&str> = plan.keys.iter().map(|k| k.name.as_str()).collect();
        Ok(Repartition {
            role: plan.role,
            output: crate::schema::to_arrow(s.output),
            seen: HashMap::new(),
            definition: format!("repartition by {}", keys.join(", ")),
            duplicates: s
                .metrics
                .repartition_duplicates
                .with_label_values(&[s.pipeline]),
        })
    }

    /// The sending side: the origin columns renamed.
    fn send(batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match ORIGIN.iter().find(|(from, _)| from == f.name()) {
                Some((_, to)) => f.as_ref().clone().with_name(*to),
                None => f.as_ref().clone(),
            })
            .collect();
        Ok(RecordBatch::try_new(
            Arc::new(ArrowSchema::new(fields)),
            batch.columns().to_vec(),
        )?)
    }

    /// The receiving side: replayed rows dropped, the rest as sent.
    fn receive(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let int = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
        };
        let batch = match (int(PARTITION), int(ORIGIN_PARTITION), int(ORIGIN_OFFSET)) {
            (Some(part), Some(origin), Some(offset)) => {
                let mut keep = Vec::with_capacity(batch.num_rows());
                for row in 0..batch.num_rows() {
                    if offset.is_null(row) || origin.is_null(row) {
                        keep.push(true);
                        continue;
                    }
                    let mark = self
                        .seen
                        .entry((part.value(row), origin.value(row)))
                        .or_insert(i64::MIN);
                    let new = offset.value(row) > *mark;
                    if new {
                        *mark = offset.value(row);
                    }
                    keep.push(new);
                }
                let dropped = keep.iter().filter(|k| !**k).count();
                if dropped == 0 {
                    batch
                } else {
                    self.duplicates.inc_by(dropped as u64);
                    crate::rows::filter_batch(&batch, &BooleanArray::from(keep))?
                }
            }
            _ => batch,
        };
        let rows = batch.num_rows();
        let columns: Vec<ArrayRef> = self
            .output
            .fields()
            .iter()
            .map(|f| {
                // `_raw` is the line as sent; the topic's message is not it.
                let sent = (f.name() == RAW)
                    .then(|| batch.column_by_name(ORIGIN_RAW))
                    .flatten();
                match sent.or_else(|| batch.column_by_name(f.name())) {
                    Some(c) => conform(c, f.data_type(), rows),
                    None => arrow::array::new_null_array(f.data_type(), rows),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }

    fn state(&self, partition: Option<i64>) -> State {
        let mut seen: Vec<(i64, i64, i64)> = self
            .seen
            .iter()
            .filter(|((p, _), _)| partition.is_none_or(|want| *p == want))
            .map(|(&(p, o), &off)| (p, o, off))
            .collect();
        seen.sort_unstable();
        State { partition, seen }
    }

    fn take(&mut self, bytes: &[u8]) -> Result<Option<i64>> {
        let state: State = ciborium::from_reader(bytes)
            .map_err(|e| EngineError::Internal(format!("repartition state unreadable: {e}")))?;
        for (p, o, off) in state.seen {
            let mark = self.seen.entry((p, o)).or_insert(i64::MIN);
            *mark = (*mark).max(off);
        }
        Ok(state.partition)
    }
}

/// A column as the next stages expect it: its type kept when it is that
/// type or a dictionary of it (how decoders hand out repeated text), cast
/// otherwise (a field a stage before the split set to another type),
/// null where the cast fails.
fn conform(c: &ArrayRef, want: &DataType, rows: usize) -> ArrayRef {
    let fits = c.data_type() == want
        || matches!(c.data_type(), DataType::Dictionary(_, v) if v.as_ref() == want);
    if fits {
        return c.clone();
    }
    arrow::compute::cast(c, want).unwrap_or_else(|_| arrow::array::new_null_array(want, rows))
}

fn encode(state: &State) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(state, &mut out)
        .map_err(|e| EngineError::Internal(format!("repartition state: {e}")))?;
    Ok(out)
}

impl Operator for Repartition {
    fn name(&self) -> &'static str {
        "repartition"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let out = match self.role {
            RepartitionRole::InProcess => batch,
            RepartitionRole::Send => Self::send(batch)?,
            RepartitionRole::Receive => self.receive(batch)?,
        };
        Ok(if out.num_rows() == 0 {
            Vec::new()
        } else {
            vec![out]
        })
    }

    fn state_definition(&self) -> Option<&str> {
        (self.role == RepartitionRole::Receive).then_some(self.definition.as_str())
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>> {
        if self.role != RepartitionRole::Receive {
            return Ok(None);
        }
        encode(&self.state(None)).map(Some)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        self.seen.clear();
        self.take(state).map(|_| ())
    }

    fn per_partition(&self) -> bool {
        self.role == RepartitionRole::Receive
    }

    fn snapshot_partitions(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut parts: Vec<i64> = self.seen.keys().map(|(p, _)| *p).collect();
        parts.sort_unstable();
        parts.dedup();
        parts
            .into_iter()
            .map(|p| Ok((p, encode(&self.state(Some(p)))?)))
            .collect()
    }

    fn restore_partition(&mut self, state: &[u8]) -> Result<()> {
        match self.take(state)? {
            Some(_) => Ok(()),
            None => Err(EngineError::Internal(
                "repartition state unreadable: not the state of one partition".into(),
            )),
        }
    }

    fn revoke_partitions(&mut self, ids: &[i64]) {
        self.seen.retain(|(p, _), _| !ids.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn op(
        role: RepartitionRole,
        _input: &weir_dsl::Schema,
        output: &weir_dsl::Schema,
    ) -> Repartition {
        Repartition {
            role,
            output: crate::schema::to_arrow(output),
            seen: HashMap::new(),
            definition: "repartition by user".into(),
            duplicates: prometheus::IntCounter::new("d", "d").expect("counter"),
        }
    }

    fn received(rows: &[(i64, i64, i64, &str)]) -> RecordBatch {
        let col = |f: fn(&(i64, i64, i64, &str)) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![
                Field::new("user", DataType::Utf8, true),
                Field::new(PARTITION, DataType::Int64, true),
                Field::new(ORIGIN_PARTITION, DataType::Int64, true),
                Field::new(ORIGIN_OFFSET, DataType::Int64, true),
                Field::new(ORIGIN_RAW, DataType::Utf8, true),
                Field::new(RAW, DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                col(|r| r.0),
                col(|r| r.1),
                col(|r| r.2),
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| format!("line {}", r.2))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(vec!["{json}"; rows.len()])),
            ],
        )
        .expect("batch")
    }

    fn users(batches: &[RecordBatch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b
                    .column_by_name("user")
                    .expect("user")
                    .as_string::<i32>()
                    .clone();
                (0..c.len())
                    .map(move |i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn schema(fields: &[(&str, weir_dsl::Type)]) -> weir_dsl::Schema {
        let mut s = weir_dsl::Schema::default();
        for (n, t) in fields {
            s.push(n, *t);
        }
        s
    }

    #[test]
    fn a_receiver_drops_what_a_sender_replayed_and_its_marks_move_with_the_partition() {
        use weir_dsl::Type::{Int, String as Str};
        let input = schema(&[
            ("user", Str),
            (PARTITION, Int),
            (ORIGIN_PARTITION, Int),
            (ORIGIN_OFFSET, Int),
            (ORIGIN_RAW, Str),
            (RAW, Str),
        ]);
        let output = schema(&[(RAW, Str), ("user", Str), (PARTITION, Int)]);
        let mut a = op(RepartitionRole::Receive, &input, &output);
        // Topic partition 0 gets source partition 5 offsets 10, 11; topic
        // partition 1 gets offset 12 of the same source partition.
        let out = a
            .process(received(&[
                (0, 5, 10, "a"),
                (0, 5, 11, "b"),
                (1, 5, 12, "c"),
            ]))
            .expect("process");
        assert_eq!(users(&out), ["a", "b", "c"]);
        let first = &out[0];
        assert_eq!(first.schema().field(0).name(), RAW);
        assert_eq!(
            first.column(0).as_string::<i32>().value(0),
            "line 10",
            "_raw is the original line"
        );
        assert_eq!(first.num_columns(), 3);
        // The sender crashed after 11 and replays from 10: 10 and 11 are
        // dropped, 12 in partition 1 too, 13 is new.
        let out = a
            .process(received(&[
                (0, 5, 10, "a"),
                (0, 5, 11, "b"),
                (1, 5, 12, "c"),
                (0, 5, 13, "d"),
            ]))
            .expect("process");
        assert_eq!(users(&out), ["d"]);
        // Partition 0 moves to another process; what it saw goes along.
        let parts = a.snapshot_partitions().expect("snapshot");
        assert_eq!(parts.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [0, 1]);
        a.revoke_partitions(&[0]);
        let mut b = op(RepartitionRole::Receive, &input, &output);
        b.restore_partition(&parts[0].1).expect("restore");
        let out = b
            .process(received(&[
                (0, 5, 13, "d"),
                (0, 5, 14, "e"),
                (1, 5, 12, "c"),
            ]))
            .expect("process");
        assert_eq!(users(&out), ["e", "c"], "partition 1's marks stayed behind");
        let out = a.process(received(&[(0, 5, 13, "d")])).expect("process");
        assert_eq!(
            users(&out),
            ["d"],
            "a revoked partition's marks are forgotten"
        );
    }

    /// A sender that paused past its session timeout (a zombie) wakes up
    /// and sends what it had queued and read, while the process that took
    /// its source partition over replays from the last commit: the two
    /// streams interleave in every way, per topic partition, in batches of
    /// any size. As each sender's rows of a source partition arrive in
    /// their order (an idempotent producer) and both start at or before
    /// the last commit, every row up to a mark was delivered by one of
    /// them: each source offset comes out exactly once, never lost.
    #[test]
    fn a_zombie_sender_and_the_new_owner_interleaved_give_each_row_once() {
        use weir_dsl::Type::{Int, String as Str};
        let input = schema(&[("user", Str), (PARTITION, Int)]);
        let output = schema(&[(RAW, Str), ("user", Str), (PARTITION, Int)]);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        for case in 0..500 {
            // Committed up to `commit`; the zombie delivered up to `before`
            // before it paused, then sends up to `zombie`; the new owner
            // sends from the commit on up to `owner`.
            let commit = next(20) as i64;
            let before = commit + next(20) as i64;
            let zombie = before + next(30) as i64;
            let owner = commit + next(60) as i64;
            let topic = |o: i64| o % 3;
            let row = |o: i64| (topic(o), 5, o, "u");
            let mut arrived: Vec<(i64, i64, i64, &str)> = (0..=before).map(row).collect();
            let (mut z, mut w) = (before + 1, commit + 1);
            while z <= zombie || w <= owner {
                if w > owner || (z <= zombie && next(2) == 0) {
                    arrived.push(row(z));
                    z += 1;
                } else {
                    arrived.push(row(w));
                    w += 1;
                }
            }
            let mut r = op(RepartitionRole::Receive, &input, &output);
            let mut out = Vec::new();
            let mut rest = arrived.as_slice();
            while !rest.is_empty() {
                let n = (1 + next(8) as usize).min(rest.len());
                for b in r.process(received(&rest[..n])).expect("process") {
                    let offsets = b
                        .column_by_name(PARTITION)
                        .expect("partition")
                        .as_primitive::<Int64Type>()
                        .clone();
                    let raw = b
                        .column_by_name(RAW)
                        .expect("raw")
                        .as_string::<i32>()
                        .clone();
                    for i in 0..b.num_rows() {
                        let line = raw.value(i);
                        let o: i64 = line
                            .strip_prefix("line ")
                            .and_then(|o| o.parse().ok())
                            .expect("the line names its offset");
                        assert_eq!(offsets.value(i), topic(o));
                        out.push(o);
                    }
                }
                rest = &rest[n..];
            }
            out.sort_unstable();
            let all: Vec<i64> = (0..=zombie.max(owner)).collect();
            assert_eq!(
                out, all,
                "case {case}: commit {commit}, before {before}, zombie {zombie}, owner {owner}"
            );
        }
    }

    #[test]
    fn a_sender_renames_the_origin_and_in_process_changes_nothing() {
        let batch = received(&[(3, 0, 0, "a")]);
        let batch = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![
                Field::new("user", DataType::Utf8, true),
                Field::new(PARTITION, DataType::Int64, true),
                Field::new(OFFSET, DataType::Int64, true),
                Field::new(RAW, DataType::Utf8, true),
            ])),
            vec![
                batch.column(0).clone(),
                batch.column(1).clone(),
                batch.column(3).clone(),
                batch.column(5).clone(),
            ],
        )
        .expect("batch");
        let none = weir_dsl::Schema::default();
        let sent = op(RepartitionRole::Send, &none, &none)
            .process(batch.clone())
            .expect("send");
        let names: Vec<String> = sent[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["user", ORIGIN_PARTITION, ORIGIN_OFFSET, ORIGIN_RAW]);
        let same = op(RepartitionRole::InProcess, &none, &none)
            .process(batch.clone())
            .expect("in process");
        assert_eq!(same[0], batch);
    }
}
