//! A stream's archived rows in the order the live engine saw them (the
//! backtest's reader): each source partition's rows in offset order (the
//! order they arrived), the partitions interleaved by event time, batch by
//! batch. So an event that arrived too late for its window live arrives as
//! late in a backtest and is dropped the same way; sorting the range by
//! event time would count it.
//!
//! No sort of the range: a partition's files are read one at a time, in
//! order of their first offset (the files' statistics); a file's rows are
//! used as read when they are in offset order (what the archive writes) and
//! sorted on their own when not (compaction sorts by time); rows are handed
//! out once no file of the partition left to read can hold an earlier
//! offset, merged with the other open files' where files overlap (a late
//! event's file in an earlier hour's folder). A file that overlaps nothing
//! and whose row groups' key ranges follow each other (the statistics in
//! its footer) is read one row group at a time. Memory holds, per
//! partition, the files that overlap or one row group — not the range. Files whose partition the
//! statistics do not tell (one file holding several) are read in event-time
//! order the same way, as one more partition.
//!
//! The query must read one stream through a plain Parquet scan (filters and
//! projections above it; no sort, aggregate or join) and name `timestamp`,
//! `_partition` and `_offset` among its columns; rows without a time are
//! left out.

use super::footer::footer;
use super::newest_first::{rescan, scan};
use super::QueryError;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::file::statistics::Statistics;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use weir_dsl::types::{OFFSET, PARTITION, TIMESTAMP};

/// Rows of a batch handed out at most (DataFusion's batch size: the
/// simulated clock moves per batch, as it does live).
const BATCH_ROWS: usize = 8192;

/// See the module doc.
pub struct Replay {
    ctx: SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    /// Where the scan's files are.
    store: Arc<dyn ObjectStore>,
    /// Per partition: its next batch, once read, and the rest.
    partitions: Vec<(Option<RecordBatch>, Partition)>,
}

/// One partition's files, read in the order of one column.
struct Partition {
    /// The column the rows are ordered by (`_offset`, or `timestamp`).
    key: &'static str,
    /// Its index in the file schema (for the files' statistics).
    key_col: Option<usize>,
    /// Files not opened yet, least key first, with their least key
    /// (`i64::MIN` when the statistics do not say).
    files: VecDeque<(i64, PartitionedFile)>,
    /// Rows of the opened files not handed out yet, each file's batches in
    /// key order.
    open: Vec<VecDeque<RecordBatch>>,
    ready: VecDeque<RecordBatch>,
    /// The row groups of the file being read one at a time, each as the
    /// file with an access plan of that row group alone.
    row_groups: VecDeque<PartitionedFile>,
}

impl Replay {
    /// Plans `sql` in `ctx` (whose tables must be Parquet listings).
    pub async fn new(ctx: &SessionContext, sql: &str) -> Result<Replay, QueryError> {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let schema = plan.schema();
        for col in [TIMESTAMP, PARTITION, OFFSET] {
            if schema.index_of(col).is_err() {
                return Err(QueryError::Internal(format!(
                    "a replay needs `{col}` among its columns"
                )));
            }
        }
        let config = scan(&plan).ok_or_else(|| {
            QueryError::Internal("a replay needs a plain scan of one stream".into())
        })?;
        let file_schema = config.file_schema();
        let [ts, part, offset] =
            [TIMESTAMP, PARTITION, OFFSET].map(|c| file_schema.index_of(c).ok());
        let mut by_partition: BTreeMap<Option<i64>, Vec<(i64, PartitionedFile)>> = BTreeMap::new();
        for f in config.file_groups.iter().flat_map(|g| g.iter()) {
            let p = least(f, part).filter(|p| greatest(f, part) == Some(*p));
            let key = if p.is_some() { offset } else { ts };
            by_partition
                .entry(p)
                .or_default()
                .push((least(f, key).unwrap_or(i64::MIN), f.clone()));
        }
        tracing::debug!(
            files = config.file_groups.iter().map(|g| g.len()).sum::<usize>(),
            partitions = by_partition.len(),
            "replay"
        );
        let partitions = by_partition
            .into_iter()
            .map(|(p, mut files)| {
                files.sort_by(|a, b| {
                    (a.0, &a.1.object_meta.location).cmp(&(b.0, &b.1.object_meta.location))
                });
                let part = Partition {
                    key: if p.is_some() { OFFSET } else { TIMESTAMP },
                    key_col: if p.is_some() { offset } else { ts },
                    files: files.into(),
                    open: Vec::new(),
                    ready: VecDeque::new(),
                    row_groups: VecDeque::new(),
                };
                (None, part)
            })
            .collect();
        let store = ctx.runtime_env().object_store(&config.object_store_url)?;
        Ok(Replay {
            ctx: ctx.clone(),
            plan,
            schema,
            store,
            partitions,
        })
    }

    /// The next rows (at most [`BATCH_ROWS`]): of the partitions' next
    /// batches, the one that starts earliest in event time; `None` at the
    /// end.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, QueryError> {
        for i in 0..self.partitions.len() {
            if self.partitions[i].0.is_none() {
                let (ctx, plan, schema) = (&self.ctx, &self.plan, &self.schema);
                let next = self.partitions[i]
                    .1
                    .next(ctx, plan, schema, &self.store)
                    .await?;
                self.partitions[i].0 = next;
            }
        }
        // A partition without a next batch is done.
        self.partitions.retain(|p| p.0.is_some());
        let mut best: Option<(i64, usize)> = None;
        for (i, (head, _)) in self.partitions.iter().enumerate() {
            if let Some(b) = head {
                let first = values(b, TIMESTAMP)?.first().copied().unwrap_or(i64::MIN);
                if best.is_none_or(|(t, _)| first < t) {
                    best = Some((first, i));
                }
            }
        }
        Ok(best.and_then(|(_, i)| self.partitions[i].0.take()))
    }
}

impl Partition {
    /// The partition's next rows in key order; `None` at its end.
    async fn next(
        &mut self,
        ctx: &SessionContext,
        plan: &Arc<dyn ExecutionPlan>,
        schema: &SchemaRef,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Option<RecordBatch>, QueryError> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Ok(Some(b));
            }
            if let Some(group) = self.row_groups.pop_front() {
                // Nothing else is open: its rows go out as they are read.
                self.read(group, ctx, plan, schema).await?;
                self.hand_out(i64::MAX, true, schema)?;
                continue;
            }
            let Some((_, file)) = self.files.pop_front() else {
                if self.open.is_empty() {
                    return Ok(None);
                }
                self.hand_out(i64::MAX, true, schema)?;
                continue;
            };
            // No file left to open holds a lesser key than this.
            let bound = self.files.front().map_or(i64::MAX, |(k, _)| *k);
            if self.open.is_empty() && greatest(&file, self.key_col).is_some_and(|g| g < bound) {
                if let Some(groups) = self.row_groups_in_order(&file, ctx, store).await {
                    self.row_groups = groups;
                    continue;
                }
            }
            self.read(file, ctx, plan, schema).await?;
            self.hand_out(bound, bound == i64::MAX, schema)?;
        }
    }

    /// Reads one file's rows (the plan's filters and projection applied)
    /// and keeps them in key order: as read when they are, sorted when not.
    async fn read(
        &mut self,
        file: PartitionedFile,
        ctx: &SessionContext,
        plan: &Arc<dyn ExecutionPlan>,
        schema: &SchemaRef,
    ) -> Result<(), QueryError> {
        let plan = rescan(plan, vec![FileGroup::new(vec![file])])
            .ok_or_else(|| QueryError::Internal("the scan went missing".into()))?;
        let batches: Vec<RecordBatch> = execute_stream(plan, ctx.task_ctx())?.try_collect().await?;
        let mut batches = batches
            .into_iter()
            .map(without_null_times)
            .collect::<Result<Vec<_>, _>>()?;
        batches.retain(|b| b.num_rows() > 0);
        let mut last = i64::MIN;
        let mut sorted = true;
        for b in &batches {
            let v = values(b, self.key)?;
            sorted = v.first().is_some_and(|f| *f >= last) && v.windows(2).all(|w| w[0] <= w[1]);
            if !sorted {
                break;
            }
            last = v.last().copied().unwrap_or(last);
        }
        if batches.is_empty() {
            return Ok(());
        }
        if !sorted {
            batches = sorted_by(self.key, schema, &batches)?;
        }
        self.open.push(batches.into());
        Ok(())
    }

    /// `file`'s row groups as files of one row group each, when the
    /// statistics in its footer say their key ranges follow each other (so
    /// reading them one by one, each in key order, is reading the file in
    /// key order); `None` when they do not say so, or for one row group.
    /// An access plan already on the file (the text index's) is kept.
    async fn row_groups_in_order(
        &self,
        file: &PartitionedFile,
        ctx: &SessionContext,
        store: &Arc<dyn ObjectStore>,
    ) -> Option<VecDeque<PartitionedFile>> {
        let footer = footer(
            ctx.runtime_env().as_ref(),
            store.as_ref(),
            &file.object_meta,
        )
        .await;
        let meta = match footer {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(file = %file.object_meta.location, error = %e, "replay: no footer; the file is read whole");
                return None;
            }
        };
        let all = meta.row_groups();
        // Of a part of the file (DataFusion splits big files into byte
        // ranges), the row groups whose first page is in the range, as
        // DataFusion reads them.
        let groups: Vec<usize> = (0..all.len())
            .filter(|&i| {
                let c = all[i].column(0);
                let start = c
                    .dictionary_page_offset()
                    .unwrap_or_else(|| c.data_page_offset());
                file.range.as_ref().is_none_or(|r| r.contains(start))
            })
            .collect();
        if groups.len() < 2 {
            return None;
        }
        let col = meta
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == self.key)?;
        let mut last = i64::MIN;
        for &g in &groups {
            let Some(Statistics::Int64(s)) = all[g].column(col).statistics() else {
                return None;
            };
            let (min, max) = (*s.min_opt()?, *s.max_opt()?);
            if min < last {
                return None;
            }
            last = max;
        }
        let base = file.extensions.get::<ParquetAccessPlan>().cloned();
        let mut out = VecDeque::with_capacity(groups.len());
        for i in groups {
            let access = match &base {
                Some(b) if b.len() != all.len() => return None,
                Some(b) if !b.should_scan(i) => continue,
                Some(b) => b.inner()[i].clone(),
                None => RowGroupAccess::Scan,
            };
            let mut plan = ParquetAccessPlan::new_none(all.len());
            plan.set(i, access);
            let mut f = file.clone();
            f.extensions.insert(plan);
            out.push_back(f);
        }
        Some(out)
    }

    /// Queues the open files' rows with a key below `bound` (all of them
    /// when `all`), in key order.
    fn hand_out(&mut self, bound: i64, all: bool, schema: &SchemaRef) -> Result<(), QueryError> {
        let mut parts = Vec::new();
        for run in &mut self.open {
            while let Some(b) = run.front() {
                let end = if all {
                    b.num_rows()
                } else {
                    values(b, self.key)?.partition_point(|v| *v < bound)
                };
                if end == 0 {
                    break;
                }
                parts.push(b.slice(0, end));
                if end == b.num_rows() {
                    run.pop_front();
                } else {
                    let rest = b.slice(end, b.num_rows() - end);
                    run[0] = rest;
                    break;
                }
            }
        }
        self.open.retain(|run| !run.is_empty());
        let mut spans = Vec::with_capacity(parts.len());
        for p in &parts {
            let v = values(p, self.key)?;
            spans.push((v.first().copied(), v.last().copied()));
        }
        if spans.windows(2).all(|w| w[1].0 >= w[0].1) {
            self.ready.extend(parts);
        } else {
            // Files overlapping: their rows merged.
            self.ready.extend(sorted_by(self.key, schema, &parts)?);
        }
        Ok(())
    }
}

/// The rows of `batches` sorted by `key`, in batches of at most
/// [`BATCH_ROWS`].
fn sorted_by(
    key: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>, QueryError> {
    let rows = arrow::compute::concat_batches(schema, batches)?;
    let col = rows
        .column_by_name(key)
        .ok_or_else(|| QueryError::Internal(format!("no `{key}` column")))?;
    let order = arrow::compute::sort_to_indices(col, None, None)?;
    let rows = arrow::compute::take_record_batch(&rows, &order)?;
    Ok((0..rows.num_rows())
        .step_by(BATCH_ROWS)
        .map(|at| rows.slice(at, BATCH_ROWS.min(rows.num_rows() - at)))
        .collect())
}

/// A file's least (or greatest) value of column `col` of its file schema,
/// from its statistics.
fn least(f: &PartitionedFile, col: Option<usize>) -> Option<i64> {
    bound_of(f, col, true)
}

fn greatest(f: &PartitionedFile, col: Option<usize>) -> Option<i64> {
    bound_of(f, col, false)
}

fn bound_of(f: &PartitionedFile, col: Option<usize>, min: bool) -> Option<i64> {
    let stats = f.statistics.as_ref()?.column_statistics.get(col?)?;
    let v = if min {
        stats.min_value.get_value()?
    } else {
        stats.max_value.get_value()?
    };
    match v {
        ScalarValue::TimestampMicrosecond(Some(v), _) | ScalarValue::Int64(Some(v)) => Some(*v),
        _ => None,
    }
}

/// Column `col` of `rows` as i64 values (a timestamp's microseconds).
fn values(rows: &RecordBatch, col: &str) -> Result<ScalarBuffer<i64>, QueryError> {
    let c = rows
        .column_by_name(col)
        .ok_or_else(|| QueryError::Internal(format!("no `{col}` column")))?;
    match c.data_type() {
        DataType::Int64 => Ok(c.as_primitive::<Int64Type>().values().clone()),
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => Ok(c
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .clone()),
        t => Err(QueryError::Internal(format!(
            "`{col}` is {t}, not a number or a time in microseconds"
        ))),
    }
}

fn without_null_times(rows: RecordBatch) -> Result<RecordBatch, QueryError> {
    let Some(t) = rows.column_by_name(TIMESTAMP) else {
        return Ok(rows);
    };
    if t.null_count() == 0 {
        return Ok(rows);
    }
    let keep = arrow::compute::is_not_null(t)?;
    Ok(arrow::compute::filter_record_batch(&rows, &keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    /// Rows of one file: (time, partition, offset), `None` for a row
    /// without a time.
    fn write(
        dir: &std::path::Path,
        name: &str,
        schema: &SchemaRef,
        rows: &[(Option<i64>, i64, i64)],
    ) {
        write_groups(dir, name, schema, rows, 1024 * 1024);
    }

    /// [`write`] in row groups of at most `group_rows` rows.
    fn write_groups(
        dir: &std::path::Path,
        name: &str,
        schema: &SchemaRef,
        rows: &[(Option<i64>, i64, i64)],
        group_rows: usize,
    ) {
        let t: TimestampMicrosecondArray = rows.iter().map(|r| r.0).collect();
        let p: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        let o: Int64Array = rows.iter().map(|r| Some(r.2)).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(t.with_timezone("UTC")), Arc::new(p), Arc::new(o)],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        crate::query::testing::write_parquet_groups(&dir.join(name), &batch, group_rows);
    }

    /// Partition 0: an in-order file, and a file of late events (an earlier
    /// hour's folder) whose offsets fall inside the first's; partition 1:
    /// a file sorted by time, not offset (compacted; its row groups' offset
    /// ranges go down), then an in-order file of four row groups, read one
    /// at a time; and a file of two partitions. Each partition comes out in offset order, interleaved
    /// with the other by time; the mixed file in time order; every row with
    /// a time once, in batches of at most BATCH_ROWS.
    #[tokio::test]
    async fn partitions_replay_in_offset_order_interleaved_by_time() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(
                TIMESTAMP,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(PARTITION, DataType::Int64, false),
            Field::new(OFFSET, DataType::Int64, false),
        ]));
        // Offsets 0..30,000 but those divisible by 1,000, at time = offset.
        let p0: Vec<_> = (0..30_000)
            .filter(|o| o % 1_000 != 0)
            .map(|o| (Some(1_000_000 + o), 0, o))
            .collect();
        write(dir.path(), "p0-main.parquet", &schema, &p0);
        // Offsets divisible by 1,000: late events, much earlier in time.
        let mut late: Vec<_> = (0..30).map(|i| (Some(i), 0, i * 1_000)).collect();
        late.push((None, 0, 30_001));
        write(dir.path(), "p0-late.parquet", &schema, &late);
        // Partition 1, sorted by time, offsets descending.
        let p1: Vec<_> = (0..20_000)
            .map(|i| (Some(1_000_000 + i * 2), 1, 50_000 - i))
            .collect();
        write_groups(dir.path(), "p1-compacted.parquet", &schema, &p1, 5_000);
        // Then offsets 60,000..80,000 in order, in row groups of 6,000.
        let p1_groups: Vec<_> = (60_000..80_000)
            .map(|o| (Some(1_100_000 + o), 1, o))
            .collect();
        write_groups(dir.path(), "p1-groups.parquet", &schema, &p1_groups, 6_000);
        let mixed = [(Some(5), 2, 1), (Some(3), 3, 9), (Some(4), 2, 2)];
        write(dir.path(), "mixed.parquet", &schema, &mixed);

        let ctx = SessionContext::new();
        let table = crate::query::testing::parquet_folder(dir.path(), schema);
        ctx.register_table("app", Arc::new(table))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut reader = Replay::new(
            &ctx,
            "SELECT \"timestamp\", _partition, _offset FROM app WHERE _offset <> 7",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // The mixed file (in time order), partitions 0 and 1; partition 0's
        // files by first offset.
        assert_eq!(reader.partitions.len(), 3);
        assert_eq!(reader.partitions[0].1.key, TIMESTAMP);
        let firsts: Vec<i64> = reader.partitions[1].1.files.iter().map(|f| f.0).collect();
        assert_eq!(firsts, vec![0, 1]);
        // Partition 1: the compacted file is read whole, the other one row
        // group at a time.
        // (DataFusion may split a file into byte ranges: each range's row
        // groups are read one at a time.)
        let p1_part = &reader.partitions[2].1;
        let (mut compacted, mut groups) = (0, 0);
        for (_, f) in &p1_part.files {
            let found = p1_part
                .row_groups_in_order(f, &reader.ctx, &reader.store)
                .await;
            if f.object_meta
                .location
                .as_ref()
                .ends_with("p1-groups.parquet")
            {
                groups += found.map_or(0, |g| g.len());
            } else {
                assert!(found.is_none(), "{}", f.object_meta.location);
                compacted += 1;
            }
        }
        assert!(compacted >= 1);
        assert_eq!(groups, 4);

        let mut rows: Vec<(i64, i64, i64)> = Vec::new();
        let mut switches = 0;
        let mut last_part = None;
        while let Some(b) = reader.next().await.unwrap_or_else(|e| panic!("{e}")) {
            assert!(
                b.num_rows() > 0 && b.num_rows() <= BATCH_ROWS,
                "{}",
                b.num_rows()
            );
            let (t, p, o) = (
                values(&b, TIMESTAMP).unwrap_or_else(|e| panic!("{e}")),
                values(&b, PARTITION).unwrap_or_else(|e| panic!("{e}")),
                values(&b, OFFSET).unwrap_or_else(|e| panic!("{e}")),
            );
            let part = if p[0] >= 2 { 2 } else { p[0] };
            if last_part.is_some_and(|l| l != part) {
                switches += 1;
            }
            last_part = Some(part);
            rows.extend((0..b.num_rows()).map(|i| (t[i], p[i], o[i])));
        }
        for part in [0, 1] {
            let offsets: Vec<i64> = rows.iter().filter(|r| r.1 == part).map(|r| r.2).collect();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "partition {part} out of offset order"
            );
        }
        let mixed_times: Vec<i64> = rows.iter().filter(|r| r.1 >= 2).map(|r| r.0).collect();
        assert_eq!(mixed_times, vec![3, 4, 5]);
        assert!(
            switches >= 3,
            "partitions not interleaved by time: {switches} switches"
        );
        let mut expected: Vec<(i64, i64, i64)> = p0
            .iter()
            .chain(&late)
            .chain(&p1)
            .chain(&p1_groups)
            .chain(&mixed)
            .filter_map(|r| Some((r.0?, r.1, r.2)))
            .filter(|r| r.2 != 7)
            .collect();
        expected.sort_unstable();
        rows.sort_unstable();
        assert_eq!(rows, expected);

        // A query that is not a plain scan is refused, not read out of order.
        assert!(Replay::new(
            &ctx,
            "SELECT \"timestamp\", _partition, _offset FROM app ORDER BY _offset"
        )
        .await
        .is_err());
    }
}
