//! The archive: every event of a source as Parquet (zstd, dictionary-encoded,
//! page statistics) on object storage, in the stream's Delta Lake table
//! (see [`crate::delta`]): `stream=NAME/date=YYYY-MM-DD/hour=HH/part-….parquet`.
//!
//! Open files (one per event-time bucket and source partition) fill in
//! memory. A flush — a checkpoint barrier, a file reaching its size or age
//! — closes every open file, uploads them whole and adds them to the table
//! in one commit, with the last offset of each source partition as that
//! partition's `txn` version when the source is replayable (Kafka). Before
//! writing a partition's first batch, the sink reads that version and
//! drops what a replay sends again: after any crash, each offset is in the
//! table exactly once. A file uploaded but not committed (a crash between
//! the two) is in no table version, so no reader sees it.
//!
//! A failed upload or commit is retried (the pipeline waits: backpressure)
//! for up to [`UPLOAD_PATIENCE`]. When the sink closes it retries for
//! `close_grace` at most; then a source that cannot be replayed (http,
//! stdin, a generator, a followed file) keeps the files in the local
//! `recovery` folder, added to the table by the next sink of the stream,
//! and a replayable source gives up (nothing is committed, so the next run
//! reads the range again from Kafka).

use super::archive_file::FileWriter;
use super::archive_raw::RawMode;
use crate::delta::{app_id, CommitError, NewFile, Operation, StreamTable};
use crate::store::ArchiveLocation;
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef, TimestampMicrosecondType};
use async_trait::async_trait;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use weir_dsl::types::{OFFSET, PARTITION, TIMESTAMP};
use weir_engine::{EngineError, Result, Sink};

/// How long an upload is retried before the archive reports an error.
pub const UPLOAD_PATIENCE: Duration = Duration::from_secs(600);

/// How finely files are partitioned by event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    pub stream: String,
    pub granularity: Granularity,
    pub roll_bytes: u64,
    pub roll_every: Duration,
    /// What `_raw` keeps (see [`archive_raw`](super::archive_raw)).
    pub raw: RawMode,
    /// The columns with bloom filters (`index (…)`).
    pub index: super::archive_file::BloomColumns,
    /// Whether the source reads the same events at the same offsets again
    /// after a restart (Kafka): then commits carry `txn` versions and
    /// replayed events are dropped.
    pub replayable: bool,
    /// This run's tag, in every file name, so two runs or two processes
    /// never write the same object.
    pub epoch: String,
    /// A local folder for files that could not be stored when the sink
    /// closed (see [`ArchiveSink`]); the next sink of the stream adds them.
    pub recovery: Option<std::path::PathBuf>,
    /// How long closing keeps retrying failed uploads before it spills them
    /// to `recovery`.
    pub close_grace: Duration,
}

struct OpenFile {
    writer: FileWriter,
    first_offset: i64,
    last_offset: i64,
    rows: u64,
    /// Smallest and largest event time.
    time: (i64, i64),
    opened: Instant,
}

type FileKey = (i64, i64);

/// A closed file: uploaded (or about to be) but not yet in the table.
struct Closed {
    partition: i64,
    first: i64,
    last: i64,
    file: NewFile,
    bytes: bytes::Bytes,
}

struct Inner {
    location: ArchiveLocation,
    cfg: ArchiveConfig,
    schema: SchemaRef,
    /// Open files by (time bucket start, source partition).
    open: Mutex<BTreeMap<FileKey, OpenFile>>,
    /// The stream's table; held through a whole flush, so flushes (and
    /// their commits) happen one at a time and in order.
    table: Arc<Mutex<StreamTable>>,
    /// Per source partition: the last offset in the table (`None`: none
    /// yet), read before the partition's first write.
    archived: std::sync::Mutex<HashMap<i64, Option<i64>>>,
    /// Per source partition: the last offset written by this sink (open or
    /// committed). A replayable source delivers a partition's offsets in
    /// order, so anything at or below it is a redelivery (the source fell
    /// back to its committed position: a rebalance, lost partitions).
    written: std::sync::Mutex<HashMap<i64, i64>>,
    files: prometheus::IntCounter,
    bytes: prometheus::IntCounter,
    /// `weir_sink_healthy{sink="archive:STREAM"}`, removed when the sink is
    /// dropped (a deleted pipeline's archive no longer counts).
    healthy: prometheus::IntGauge,
    healthy_vec: prometheus::IntGaugeVec,
    /// Set when the sink closes: failing uploads spill after it.
    spill_after: std::sync::OnceLock<Instant>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self
            .healthy_vec
            .remove_label_values(&[&format!("archive:{}", self.cfg.stream)]);
    }
}

/// A [`Sink`] writing an event stream to the archive.
pub struct ArchiveSink {
    inner: Arc<Inner>,
}

impl ArchiveSink {
    pub fn new(
        location: ArchiveLocation,
        cfg: ArchiveConfig,
        schema: SchemaRef,
        metrics: &weir_engine::Metrics,
    ) -> Result<ArchiveSink> {
        let table = StreamTable::new(&location, &cfg.stream)?;
        let inner = Arc::new(Inner {
            files: metrics.archive_files.with_label_values(&[&cfg.stream]),
            bytes: metrics.archive_bytes.with_label_values(&[&cfg.stream]),
            healthy: {
                let g = metrics
                    .sink_healthy
                    .with_label_values(&[&format!("archive:{}", cfg.stream)]);
                g.set(1);
                g
            },
            healthy_vec: metrics.sink_healthy.clone(),
            location,
            cfg,
            schema,
            open: Mutex::new(BTreeMap::new()),
            table: Arc::new(Mutex::new(table)),
            archived: std::sync::Mutex::new(HashMap::new()),
            written: std::sync::Mutex::new(HashMap::new()),
            spill_after: std::sync::OnceLock::new(),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            // Files an earlier run kept locally go in first: the task holds
            // the table until they are committed.
            if let Some(dir) = inner.cfg.recovery.clone().filter(|d| d.exists()) {
                if let Ok(mut table) = inner.table.clone().try_lock_owned() {
                    let task_inner = inner.clone();
                    handle.spawn(async move {
                        task_inner.recover(&mut table, dir).await;
                    });
                }
            }
            // Roll files by age even when no events arrive.
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if let Err(e) = inner.roll(false).await {
                        tracing::error!(error = %e, "archive: rolling aged files failed");
                    }
                }
            });
        }
        Ok(ArchiveSink { inner })
    }
}

impl Inner {
    fn bucket_len_us(&self) -> i64 {
        match self.cfg.granularity {
            Granularity::Hour => 3_600_000_000,
            Granularity::Day => 86_400_000_000,
        }
    }

    fn hourly(&self) -> bool {
        self.cfg.granularity == Granularity::Hour
    }

    /// The partition values and the path inside the table of a file.
    fn file_place(
        &self,
        (bucket_start_us, partition): FileKey,
        first: i64,
        last: i64,
    ) -> (Vec<(String, String)>, String) {
        let t = chrono::DateTime::from_timestamp_micros(bucket_start_us).unwrap_or_default();
        let date = t.format("%Y-%m-%d").to_string();
        let mut values = vec![("date".to_string(), date.clone())];
        let mut rel = format!("date={date}/");
        if self.hourly() {
            let hour = t.format("%H").to_string();
            rel.push_str(&format!("hour={hour}/"));
            values.push(("hour".to_string(), hour));
        }
        rel.push_str(&crate::maintenance::file_name(
            partition,
            first,
            last,
            Some(&self.cfg.epoch),
        ));
        (values, rel)
    }

    /// The object path of a file given by its path inside the table.
    fn object_path(&self, table: &StreamTable, rel: &str) -> StorePath {
        StorePath::from(format!("{}/{rel}", table.dir()))
    }

    /// The last offset of `partition` already in the table, read once
    /// (after the files an earlier run kept are committed).
    async fn archived_upto(&self, partition: i64) -> Result<Option<i64>> {
        if let Some(v) = self.archived_cached(partition) {
            return Ok(v);
        }
        let mut table = self.table.lock().await;
        table.load(None).await?;
        let v = table
            .archived_upto(&app_id(&self.cfg.stream, partition))
            .await?;
        self.archived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partition, v);
        if let Some(v) = v {
            tracing::info!(stream = %self.cfg.stream, partition, offset = v, "archive: partition archived up to this offset; a replay of earlier offsets is dropped");
        }
        Ok(v)
    }

    fn archived_cached(&self, partition: i64) -> Option<Option<i64>> {
        self.archived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&partition)
            .copied()
    }

    fn set_archived(&self, partition: i64, offset: i64) {
        let mut a = self.archived.lock().unwrap_or_else(|p| p.into_inner());
        let e = a.entry(partition).or_insert(None);
        *e = Some(e.map_or(offset, |v| v.max(offset)));
    }

    /// `batch` without the rows of offsets the table or this sink already
    /// holds.
    async fn not_yet_archived(&self, partition: i64, batch: RecordBatch) -> Result<RecordBatch> {
        let table = self.archived_upto(partition).await?;
        let written = self
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&partition)
            .copied();
        let Some(upto) = table.max(written) else {
            return Ok(batch);
        };
        tracing::trace!(
            partition,
            ?table,
            ?written,
            rows = batch.num_rows(),
            "archive: checking for replayed events"
        );
        let offsets = batch
            .column_by_name(OFFSET)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| EngineError::Internal("archive: no _offset".into()))?;
        let (lo, _) = min_max(offsets);
        if lo > upto {
            return Ok(batch);
        }
        let keep: BooleanArray = offsets
            .iter()
            .map(|o| Some(o.is_some_and(|o| o > upto)))
            .collect();
        let kept = weir_engine::filter_batch(&batch, &keep)?;
        tracing::debug!(
            partition,
            lo,
            dropped = batch.num_rows() - kept.num_rows(),
            upto,
            ?table,
            ?written,
            "archive: dropped replayed events"
        );
        Ok(kept)
    }

    async fn write(&self, batch: &RecordBatch) -> Result<()> {
        let batch = super::archive_raw::reduce(batch, self.cfg.raw)?;
        // A batch comes from one source partition.
        let partition = batch
            .column_by_name(PARTITION)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .filter(|c| !c.is_empty() && c.is_valid(0))
            .map_or(0, |c| c.value(0));
        let batch = if self.cfg.replayable {
            self.not_yet_archived(partition, batch).await?
        } else {
            batch
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.cfg.replayable {
            if let Some(c) = batch
                .column_by_name(OFFSET)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
            {
                let (_, hi) = min_max(c);
                let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
                let e = w.entry(partition).or_insert(hi);
                *e = (*e).max(hi);
            }
        }
        let ts = batch
            .column_by_name(TIMESTAMP)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| EngineError::Internal("archive: batch has no timestamp".into()))?;
        let len = self.bucket_len_us();
        // Rows by time bucket (usually one bucket per batch), with each
        // bucket's smallest and largest time.
        let mut buckets: BTreeMap<i64, (Vec<u32>, i64, i64)> = BTreeMap::new();
        for i in 0..batch.num_rows() {
            let t = if ts.is_valid(i) { ts.value(i) } else { 0 };
            let b = buckets
                .entry(t.div_euclid(len) * len)
                .or_insert_with(|| (Vec::new(), t, t));
            b.0.push(i as u32);
            b.1 = b.1.min(t);
            b.2 = b.2.max(t);
        }
        let mut full = false;
        {
            let mut open = self.open.lock().await;
            for (bucket, (rows, t_lo, t_hi)) in buckets {
                let part = if rows.len() == batch.num_rows() {
                    batch.clone()
                } else {
                    take_record_batch(&batch, &UInt32Array::from(rows))?
                };
                let part_offsets = part
                    .column_by_name(OFFSET)
                    .and_then(|c| c.as_primitive_opt::<Int64Type>())
                    .ok_or_else(|| EngineError::Internal("archive: no _offset".into()))?;
                let (lo, hi) = min_max(part_offsets);
                let key = (bucket, partition);
                let file = match open.entry(key) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => e.insert(OpenFile {
                        writer: FileWriter::new(self.schema.clone(), &self.cfg.index).map_err(
                            |e| EngineError::connector("archive", format!("parquet: {e}")),
                        )?,
                        first_offset: lo,
                        last_offset: hi,
                        rows: 0,
                        time: (t_lo, t_hi),
                        opened: Instant::now(),
                    }),
                };
                file.writer
                    .write(&part)
                    .map_err(|e| EngineError::connector("archive", format!("parquet: {e}")))?;
                file.first_offset = file.first_offset.min(lo);
                file.last_offset = file.last_offset.max(hi);
                file.rows += part.num_rows() as u64;
                file.time = (file.time.0.min(t_lo), file.time.1.max(t_hi));
                full |= file.writer.size() as u64 >= self.cfg.roll_bytes;
            }
        }
        if full {
            self.roll(true).await?;
        }
        Ok(())
    }

    /// Closes every open file and commits them in one version, when one
    /// of them is older than the roll age (or always, with `all`).
    async fn roll(&self, all: bool) -> Result<()> {
        let mut table = self.table.lock().await;
        let ready: Vec<(FileKey, OpenFile)> = {
            let mut open = self.open.lock().await;
            let due = all
                || open
                    .values()
                    .any(|f| f.opened.elapsed() >= self.cfg.roll_every);
            if !due {
                return Ok(());
            }
            std::mem::take(&mut *open).into_iter().collect()
        };
        if ready.is_empty() {
            return Ok(());
        }
        let mut closed = Vec::with_capacity(ready.len());
        for (key, f) in ready {
            let (partition_values, rel) = self.file_place(key, f.first_offset, f.last_offset);
            let bytes = bytes::Bytes::from(
                f.writer
                    .finish()
                    .map_err(|e| EngineError::connector("archive", format!("parquet: {e}")))?,
            );
            closed.push(Closed {
                partition: key.1,
                first: f.first_offset,
                last: f.last_offset,
                file: NewFile {
                    path: rel,
                    size: bytes.len() as u64,
                    partition: partition_values,
                    rows: f.rows,
                    time: Some(f.time),
                },
                bytes,
            });
        }
        self.store(&mut table, closed).await
    }

    /// Uploads closed files and commits them, retrying failures; at
    /// close, after the grace, spills (non-replayable sources) or gives up.
    async fn store(&self, table: &mut StreamTable, mut closed: Vec<Closed>) -> Result<()> {
        let mut wait = Duration::from_millis(500);
        let give_up = Instant::now() + UPLOAD_PATIENCE;
        let mut uploaded = vec![false; closed.len()];
        loop {
            let attempt = self
                .upload_and_commit(table, &mut closed, &mut uploaded)
                .await;
            let e = match attempt {
                Ok(()) => {
                    self.healthy.set(1);
                    return Ok(());
                }
                Err(e) => e,
            };
            self.healthy.set(0);
            let closing = self.spill_after.get().is_some_and(|t| Instant::now() >= *t);
            if closing {
                if self.cfg.replayable {
                    return Err(EngineError::connector(
                        "archive",
                        format!("{e}; nothing of this flush was committed: the source reads it again at the next start"),
                    ));
                }
                if self.spill(table, &closed)? {
                    return Ok(());
                }
            }
            if Instant::now() >= give_up {
                return Err(EngineError::connector(
                    "archive",
                    format!("{e} (gave up after {UPLOAD_PATIENCE:?})"),
                ));
            }
            // Not past the end of the grace, if stopping.
            let pause = match self.spill_after.get() {
                Some(t) => wait.min(t.saturating_duration_since(Instant::now())),
                None => wait,
            };
            tracing::warn!(stream = %self.cfg.stream, error = %e, wait = ?pause, "archive flush failed; retrying");
            tokio::time::sleep(pause).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    async fn upload_and_commit(
        &self,
        table: &mut StreamTable,
        closed: &mut Vec<Closed>,
        uploaded: &mut Vec<bool>,
    ) -> Result<()> {
        if self.cfg.replayable {
            // Another process may have archived these partitions since
            // this one read their positions (a rebalance): what the table
            // holds now is dropped before anything is uploaded.
            table.load(None).await?;
            self.recheck(table, closed, uploaded).await?;
            if closed.is_empty() {
                return Ok(());
            }
        }
        self.upload(table, closed, uploaded).await?;
        // A conflict (another writer archived the same partitions) is
        // resolved by re-checking the range against the newer version.
        for _ in 0..10 {
            let mut txns: BTreeMap<i64, i64> = BTreeMap::new();
            if self.cfg.replayable {
                for c in closed.iter() {
                    let v = txns.entry(c.partition).or_insert(c.last);
                    *v = (*v).max(c.last);
                }
            }
            let txn_list: Vec<(String, i64)> = txns
                .iter()
                .map(|(p, v)| (app_id(&self.cfg.stream, *p), *v))
                .collect();
            let adds: Vec<NewFile> = closed.iter().map(|c| c.file.clone()).collect();
            match table
                .commit(
                    &self.schema,
                    self.hourly(),
                    &adds,
                    &[],
                    &txn_list,
                    Operation::Append,
                )
                .await
            {
                Ok(version) => {
                    for (p, v) in txns {
                        self.set_archived(p, v);
                    }
                    let n: u64 = closed.iter().map(|c| c.file.size).sum();
                    self.files.inc_by(closed.len() as u64);
                    self.bytes.inc_by(n);
                    tracing::debug!(stream = %self.cfg.stream, version, files = closed.len(), bytes = n, "archived");
                    return Ok(());
                }
                Err(CommitError::Conflict(why)) => {
                    tracing::warn!(stream = %self.cfg.stream, %why, "archive: concurrent commit; re-checking the range");
                    self.recheck(table, closed, uploaded).await?;
                    if closed.is_empty() {
                        return Ok(());
                    }
                    self.upload(table, closed, uploaded).await?;
                }
                Err(CommitError::Other(e)) => return Err(e),
            }
        }
        Err(EngineError::connector(
            "archive",
            "commits kept conflicting with another writer",
        ))
    }

    /// Uploads the closed files not uploaded yet.
    async fn upload(
        &self,
        table: &StreamTable,
        closed: &[Closed],
        uploaded: &mut [bool],
    ) -> Result<()> {
        for (c, done) in closed.iter().zip(uploaded.iter_mut()) {
            if *done {
                continue;
            }
            let path = self.object_path(table, &c.file.path);
            self.location
                .store
                .put(&path, PutPayload::from(c.bytes.clone()))
                .await
                .map_err(|e| EngineError::connector("archive", format!("uploading {path}: {e}")))?;
            *done = true;
        }
        Ok(())
    }

    /// Drops from `closed` what the table now holds
    /// (another writer archived it), rewriting files that hold both.
    async fn recheck(
        &self,
        table: &mut StreamTable,
        closed: &mut Vec<Closed>,
        uploaded: &mut Vec<bool>,
    ) -> Result<()> {
        let mut kept = Vec::new();
        let mut kept_uploaded = Vec::new();
        for (mut c, up) in std::mem::take(closed).into_iter().zip(uploaded.iter()) {
            let upto = table
                .archived_upto(&app_id(&self.cfg.stream, c.partition))
                .await?;
            if let Some(v) = upto {
                self.set_archived(c.partition, v);
            }
            let old = self.object_path(table, &c.file.path);
            match upto {
                Some(v) if v >= c.last => {
                    tracing::info!(
                        partition = c.partition,
                        upto = v,
                        "archive: another writer archived this range; dropped"
                    );
                    if *up {
                        let _ = self.location.store.delete(&old).await;
                    }
                }
                Some(v) if v >= c.first => {
                    if *up {
                        let _ = self.location.store.delete(&old).await;
                    }
                    let Some(trimmed) = trim(&c.bytes, v)? else {
                        continue;
                    };
                    c.first = v + 1;
                    let key = (0, c.partition);
                    let (_, rel) = self.file_place(key, c.first, c.last);
                    let folder = c.file.path.rsplit_once('/').map_or("", |(f, _)| f);
                    let name = rel.rsplit('/').next().unwrap_or(&rel);
                    c.file.path = format!("{folder}/{name}");
                    c.file.size = trimmed.0.len() as u64;
                    c.file.rows = trimmed.1;
                    c.bytes = trimmed.0;
                    kept.push(c);
                    kept_uploaded.push(false);
                }
                _ => {
                    kept.push(c);
                    kept_uploaded.push(*up);
                }
            }
        }
        *closed = kept;
        *uploaded = kept_uploaded;
        Ok(())
    }

    /// Closes the sink: commits every open file, retrying failures until
    /// `close_grace` has passed (counted from the stop, when the engine
    /// said it was stopping first).
    async fn close(&self) -> Result<()> {
        self.stopping();
        self.roll(true).await
    }

    /// From now on, failing flushes are retried for `close_grace` at most.
    fn stopping(&self) {
        let _ = self.spill_after.set(Instant::now() + self.cfg.close_grace);
    }

    /// Keeps files that could not be stored in the recovery folder.
    fn spill(&self, table: &StreamTable, closed: &[Closed]) -> Result<bool> {
        let Some(dir) = &self.cfg.recovery else {
            return Ok(false);
        };
        for c in closed {
            let to = dir.join(&c.file.path);
            let tmp = to.with_extension("parquet.tmp");
            let io = |e: std::io::Error| {
                EngineError::io(format!("keeping {} in {}", c.file.path, to.display()), e)
            };
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&tmp, &c.bytes).map_err(io)?;
            std::fs::rename(&tmp, &to).map_err(io)?;
            tracing::warn!(table = %table.dir(), recovery = %to.display(), "archive: storing still failing at shutdown; kept in the recovery folder, added at the next start");
        }
        Ok(true)
    }

    /// Uploads and commits the files an earlier run kept in `dir` (named
    /// by their path in the table), deleting each once committed. Failures
    /// are logged and the files kept for the next start.
    async fn recover(&self, table: &mut StreamTable, dir: std::path::PathBuf) {
        let mut found = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    found.push(p);
                }
            }
        }
        if found.is_empty() {
            return;
        }
        let mut adds = Vec::new();
        for p in &found {
            let Ok(rel) = p.strip_prefix(&dir) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let bytes = match std::fs::read(p) {
                Ok(b) => bytes::Bytes::from(b),
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "archive: cannot read a kept file; tried again at the next start");
                    continue;
                }
            };
            let rows = parquet::file::reader::SerializedFileReader::new(bytes.clone())
                .map(|r| {
                    use parquet::file::reader::FileReader;
                    r.metadata().file_metadata().num_rows().max(0) as u64
                })
                .unwrap_or(0);
            let partition = rel
                .split('/')
                .filter_map(|part| part.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let path = self.object_path(table, &rel);
            if let Err(e) = self
                .location
                .store
                .put(&path, PutPayload::from(bytes.clone()))
                .await
            {
                tracing::warn!(%path, error = %e, "archive: recovering a kept file failed; tried again at the next start");
                return;
            }
            adds.push(NewFile {
                size: bytes.len() as u64,
                path: rel,
                partition,
                rows,
                time: None,
            });
        }
        match table
            .commit(
                &self.schema,
                self.hourly(),
                &adds,
                &[],
                &[],
                Operation::Append,
            )
            .await
        {
            Ok(version) => {
                for p in &found {
                    let _ = std::fs::remove_file(p);
                }
                tracing::info!(
                    files = adds.len(),
                    version,
                    "archive: recovered the files kept at the last shutdown"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "archive: committing recovered files failed; tried again at the next start")
            }
        }
    }
}

/// The rows of a closed file after offset `upto`, as a new file and its
/// row count; `None` when nothing is left.
fn trim(bytes: &bytes::Bytes, upto: i64) -> Result<Option<(bytes::Bytes, u64)>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let err =
        |e: &dyn std::fmt::Display| EngineError::connector("archive", format!("parquet: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(|e| err(&e))?;
    let schema = Arc::new(super::archive_file::without_hints(reader.schema()));
    let index = super::archive_file::BloomColumns::of_files([reader.metadata().as_ref()]);
    let mut writer = FileWriter::new(schema.clone(), &index).map_err(|e| err(&e))?;
    let mut rows = 0u64;
    for batch in reader.build().map_err(|e| err(&e))? {
        let batch = batch.map_err(|e| err(&e))?;
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let offsets = batch
            .column_by_name(OFFSET)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| EngineError::Internal("archive: no _offset".into()))?;
        let keep: BooleanArray = offsets
            .iter()
            .map(|o| Some(o.is_some_and(|o| o > upto)))
            .collect();
        let kept = weir_engine::filter_batch(&batch, &keep)?;
        rows += kept.num_rows() as u64;
        writer.write(&kept).map_err(|e| err(&e))?;
    }
    if rows == 0 {
        return Ok(None);
    }
    Ok(Some((
        bytes::Bytes::from(writer.finish().map_err(|e| err(&e))?),
        rows,
    )))
}

fn min_max(a: &arrow::array::PrimitiveArray<Int64Type>) -> (i64, i64) {
    let lo = arrow::compute::min(a).unwrap_or(0);
    let hi = arrow::compute::max(a).unwrap_or(0);
    (lo, hi)
}

/// The archive's table as the record of where each source partition is
/// archived up to (its `txn` versions).
struct TablePositions(Arc<Inner>);

#[async_trait]
impl weir_engine::StoredPositions for TablePositions {
    async fn stored_upto(&self, partitions: &[i64]) -> Result<HashMap<i64, i64>> {
        let mut table = self.0.table.lock().await;
        table.load(None).await?;
        let mut out = HashMap::new();
        for &p in partitions {
            if let Some(v) = table.archived_upto(&app_id(&self.0.cfg.stream, p)).await? {
                self.0.set_archived(p, v);
                out.insert(p, v);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Sink for ArchiveSink {
    fn stored_positions(&self) -> Option<Arc<dyn weir_engine::StoredPositions>> {
        self.inner
            .cfg
            .replayable
            .then(|| Arc::new(TablePositions(self.inner.clone())) as _)
    }

    async fn write(&self, batch: &RecordBatch) -> Result<()> {
        self.inner.write(batch).await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.roll(true).await
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }

    fn stopping(&self) {
        self.inner.stopping();
    }
}
