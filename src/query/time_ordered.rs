//! A query's rows in event-time order without sorting the whole range (the
//! backtest's reader). `ORDER BY timestamp` over a day of archive holds the
//! day in memory and sorts it, though archive files arrive almost in time
//! order. [`TimeOrdered`] instead reads the scan's files one at a time in
//! order of their earliest event (the files' statistics): each file's rows
//! are sorted only when they are not in order already (a followed source
//! writes them in order; compaction sorts them), and the rows earlier than
//! the next file's earliest event are handed out, merged with those of the
//! files still open where files overlap in time. So memory holds the files
//! that overlap in time, not the range, and in-order files cost a check.
//!
//! The query must read one stream through a plain Parquet scan (filters and
//! projections above it; no sort, aggregate or join) and name `timestamp`
//! among its columns; rows without a time are left out.

use super::newest_first::{rescan, scan};
use super::QueryError;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use weir_dsl::types::TIMESTAMP;

/// Rows of a batch handed out at most (DataFusion's batch size: the
/// simulated clock moves per batch, as it does live).
const BATCH_ROWS: usize = 8192;

/// See the module doc.
pub struct TimeOrdered {
    ctx: SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    /// Files not opened yet, earliest first, with their earliest event
    /// (`i64::MIN` when the statistics do not say).
    files: VecDeque<(i64, PartitionedFile)>,
    /// Rows of the opened files not handed out yet, each file's batches
    /// in time order.
    open: Vec<VecDeque<RecordBatch>>,
    ready: VecDeque<RecordBatch>,
    schema: SchemaRef,
}

impl TimeOrdered {
    /// Plans `sql` in `ctx` (whose tables must be Parquet listings).
    pub async fn new(ctx: &SessionContext, sql: &str) -> Result<TimeOrdered, QueryError> {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let schema = plan.schema();
        if schema.index_of(TIMESTAMP).is_err() {
            return Err(QueryError::Internal(format!(
                "a time-ordered read needs `{TIMESTAMP}` among its columns"
            )));
        }
        let config = scan(&plan).ok_or_else(|| {
            QueryError::Internal("a time-ordered read needs a plain scan of one stream".into())
        })?;
        let ts = config.file_schema().index_of(TIMESTAMP).ok();
        let mut files: Vec<(i64, PartitionedFile)> = config
            .file_groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|f| (earliest(f, ts).unwrap_or(i64::MIN), f.clone()))
            .collect();
        tracing::debug!(
            files = files.len(),
            without_statistics = files.iter().filter(|f| f.0 == i64::MIN).count(),
            "time-ordered read"
        );
        files.sort_by(|a, b| {
            (a.0, &a.1.object_meta.location).cmp(&(b.0, &b.1.object_meta.location))
        });
        Ok(TimeOrdered {
            ctx: ctx.clone(),
            plan,
            files: files.into(),
            open: Vec::new(),
            ready: VecDeque::new(),
            schema,
        })
    }

    /// The next rows in time order (at most [`BATCH_ROWS`]); `None` at
    /// the end.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, QueryError> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Ok(Some(b));
            }
            let Some((_, file)) = self.files.pop_front() else {
                if self.open.is_empty() {
                    return Ok(None);
                }
                self.hand_out(i64::MAX, true)?;
                continue;
            };
            self.read(file).await?;
            // No file left to open holds anything earlier than this.
            let bound = self.files.front().map_or(i64::MAX, |(t, _)| *t);
            self.hand_out(bound, bound == i64::MAX)?;
        }
    }

    /// Reads one file's rows (the plan's filters and projection applied)
    /// and keeps them in time order: as read when they are, sorted when not.
    async fn read(&mut self, file: PartitionedFile) -> Result<(), QueryError> {
        let plan = rescan(&self.plan, vec![FileGroup::new(vec![file])])
            .ok_or_else(|| QueryError::Internal("the scan went missing".into()))?;
        let batches: Vec<RecordBatch> = execute_stream(plan, self.ctx.task_ctx())?
            .try_collect()
            .await?;
        let mut batches = batches
            .into_iter()
            .map(without_null_times)
            .collect::<Result<Vec<_>, _>>()?;
        batches.retain(|b| b.num_rows() > 0);
        let mut last = i64::MIN;
        let mut sorted = true;
        for b in &batches {
            let t = times(b)?;
            let v = t.values();
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
            let rows = arrow::compute::concat_batches(&self.schema, &batches)?;
            let order = arrow::compute::sort_to_indices(&times(&rows)?, None, None)?;
            let rows = arrow::compute::take_record_batch(&rows, &order)?;
            batches = (0..rows.num_rows())
                .step_by(BATCH_ROWS)
                .map(|at| rows.slice(at, BATCH_ROWS.min(rows.num_rows() - at)))
                .collect();
        }
        self.open.push(batches.into());
        Ok(())
    }

    /// Queues the open files' rows earlier than `bound` (all of them when
    /// `all`), in time order.
    fn hand_out(&mut self, bound: i64, all: bool) -> Result<(), QueryError> {
        let mut parts = Vec::new();
        for run in &mut self.open {
            while let Some(b) = run.front() {
                let t = times(b)?;
                let end = if all {
                    b.num_rows()
                } else {
                    t.values().partition_point(|v| *v < bound)
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
        if parts.is_empty() {
            return Ok(());
        }
        let overlapping = parts.len() > 1 && {
            let spans: Vec<(i64, i64)> = parts
                .iter()
                .filter_map(|p| {
                    let t = times(p).ok()?;
                    Some((*t.values().first()?, *t.values().last()?))
                })
                .collect();
            spans.windows(2).any(|w| w[1].0 < w[0].1)
        };
        if !overlapping {
            self.ready.extend(parts);
            return Ok(());
        }
        // Files overlapping in time: their rows merged by time.
        let merged = arrow::compute::concat_batches(&self.schema, &parts)?;
        let order = arrow::compute::sort_to_indices(&times(&merged)?, None, None)?;
        let merged = arrow::compute::take_record_batch(&merged, &order)?;
        let mut at = 0;
        while at < merged.num_rows() {
            let n = BATCH_ROWS.min(merged.num_rows() - at);
            self.ready.push_back(merged.slice(at, n));
            at += n;
        }
        Ok(())
    }
}

/// A file's earliest event time, from its statistics.
fn earliest(f: &PartitionedFile, ts: Option<usize>) -> Option<i64> {
    let stats = f.statistics.as_ref()?;
    let col = stats.column_statistics.get(ts?)?;
    match col.min_value.get_value()? {
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        _ => None,
    }
}

fn times(
    rows: &RecordBatch,
) -> Result<arrow::array::PrimitiveArray<TimestampMicrosecondType>, QueryError> {
    rows.column_by_name(TIMESTAMP)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .cloned()
        .ok_or_else(|| QueryError::Internal(format!("`{TIMESTAMP}` is not a timestamp")))
}

fn without_null_times(rows: RecordBatch) -> Result<RecordBatch, QueryError> {
    let t = times(&rows)?;
    if t.null_count() == 0 {
        return Ok(rows);
    }
    let keep = arrow::compute::is_not_null(&t)?;
    Ok(arrow::compute::filter_record_batch(&rows, &keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    /// Rows of one file: (time, id), with `None` for a row without a time.
    fn write(dir: &std::path::Path, name: &str, schema: &SchemaRef, rows: &[(Option<i64>, i64)]) {
        let t: TimestampMicrosecondArray = rows.iter().map(|r| r.0).collect();
        let id: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(t.with_timezone("UTC")), Arc::new(id)],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema.clone(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        w.write(&batch).unwrap_or_else(|e| panic!("{e}"));
        w.close().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Files in order, out of order inside, overlapping in time, and
    /// larger than a batch: every row with a time comes out once, in time
    /// order, in batches of at most BATCH_ROWS.
    #[tokio::test]
    async fn rows_come_out_in_time_order_across_and_within_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(
                TIMESTAMP,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("id", DataType::Int64, false),
        ]));
        // In order, and long: 20,000 rows at even times 0..40,000.
        let a: Vec<_> = (0..20_000).map(|i| (Some(i * 2), i)).collect();
        write(dir.path(), "a.parquet", &schema, &a);
        // Out of order, overlapping a (odd times), one row without a time.
        let mut b: Vec<_> = (0..5_000)
            .map(|i| (Some(30_001 - i * 2), 100_000 + i))
            .collect();
        b.push((None, 999_999));
        write(dir.path(), "b.parquet", &schema, &b);
        // Later than both.
        write(
            dir.path(),
            "c.parquet",
            &schema,
            &[(Some(90_000), 7), (Some(90_000), 8)],
        );

        let ctx = SessionContext::new();
        let table = crate::query::testing::parquet_folder(dir.path(), schema);
        ctx.register_table("app", Arc::new(table))
            .unwrap_or_else(|e| panic!("{e}"));

        let mut reader = TimeOrdered::new(&ctx, "SELECT \"timestamp\", id FROM app WHERE id <> 5")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Opened earliest first, as the files' statistics say.
        let earliest: Vec<i64> = reader.files.iter().map(|(t, _)| *t).collect();
        assert_eq!(earliest, vec![0, 20_003, 90_000]);
        let mut times = Vec::new();
        let mut ids = Vec::new();
        while let Some(b) = reader.next().await.unwrap_or_else(|e| panic!("{e}")) {
            assert!(
                b.num_rows() > 0 && b.num_rows() <= BATCH_ROWS,
                "{}",
                b.num_rows()
            );
            times.extend(
                super::times(&b)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .values()
                    .iter()
                    .copied(),
            );
            ids.extend(
                b.column(1)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "out of order");
        let mut expected: Vec<i64> = a
            .iter()
            .chain(&b)
            .filter(|r| r.0.is_some())
            .map(|r| r.1)
            .collect();
        expected.extend([7, 8]);
        expected.retain(|id| *id != 5);
        expected.sort_unstable();
        ids.sort_unstable();
        assert_eq!(ids, expected);
        assert_eq!(times.last(), Some(&90_000));

        // A query that is not a plain scan is refused, not read out of order.
        assert!(
            TimeOrdered::new(&ctx, "SELECT \"timestamp\", count(*) FROM app GROUP BY 1")
                .await
                .is_err()
        );
    }
}
