//! The archive: every event of a source as Parquet (zstd, dictionary-encoded,
//! page statistics) on object storage, Hive-partitioned by event time:
//! `stream=NAME/date=YYYY-MM-DD/hour=HH/part-PARTITION-FIRST-LAST.parquet`.
//!
//! A file holds the events of one source partition; its name comes from the
//! partition and the first and last source offset in it, so a replayed write
//! replaces a file rather than duplicating it. Sources whose offsets restart
//! at every run add the run's epoch to the name, so a restart never replaces
//! or hides an earlier run's events (`…-rEPOCH.parquet`). Files are uploaded
//! whole once closed (the local store writes a temporary file and renames
//! it), so a reader never sees half a file. Files roll at a size and at an
//! age.
//!
//! A failed upload is retried (the pipeline waits: backpressure) for up to
//! [`UPLOAD_PATIENCE`]. When the sink closes (the stream ended or the engine
//! stops) it retries for `close_grace` at most, then writes what it could not
//! upload to the local `recovery` folder, named by its object path, so a
//! full disk or an unreachable store never hangs a shutdown nor loses the
//! buffer; the next sink of the stream uploads the recovered files first.

use super::archive_file::FileWriter;
use super::archive_raw::RawMode;
use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef, TimestampMicrosecondType};
use async_trait::async_trait;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::BTreeMap;
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
    /// Folder (prefix) inside the store.
    pub prefix: String,
    pub granularity: Granularity,
    pub roll_bytes: u64,
    pub roll_every: Duration,
    /// What `_raw` keeps (see [`archive_raw`](super::archive_raw)).
    pub raw: RawMode,
    /// This run's epoch, in every file name, when the source's offsets
    /// restart at each run (see [`crate::maintenance::file_name`]).
    pub epoch: Option<String>,
    /// A local folder for files that could not be uploaded when the sink
    /// closed (see [`ArchiveSink`]); the next sink of the stream uploads them.
    pub recovery: Option<std::path::PathBuf>,
    /// How long closing keeps retrying failed uploads before it spills them
    /// to `recovery`.
    pub close_grace: Duration,
}

struct OpenFile {
    writer: FileWriter,
    first_offset: i64,
    last_offset: i64,
    opened: Instant,
}

type FileKey = (i64, i64);

struct Inner {
    store: Arc<dyn ObjectStore>,
    cfg: ArchiveConfig,
    schema: SchemaRef,
    /// Open files by (time bucket start, source partition).
    open: Mutex<BTreeMap<FileKey, OpenFile>>,
    files: prometheus::IntCounter,
    bytes: prometheus::IntCounter,
    /// `weir_sink_healthy{sink="archive:STREAM"}`, removed when the sink is
    /// dropped (a deleted pipeline's archive no longer counts).
    healthy: prometheus::IntGauge,
    healthy_vec: prometheus::IntGaugeVec,
    /// Set when the sink closes: failing uploads spill after it.
    spill_after: std::sync::OnceLock<Instant>,
    /// Uploads in progress (also those of the aged-roll task); closing
    /// waits for them.
    uploading: std::sync::atomic::AtomicUsize,
    uploaded: tokio::sync::Notify,
    /// Uploading the files an earlier run left in `recovery`.
    recovering: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        store: Arc<dyn ObjectStore>,
        cfg: ArchiveConfig,
        schema: SchemaRef,
        metrics: &weir_engine::Metrics,
    ) -> ArchiveSink {
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
            store,
            cfg,
            schema,
            open: Mutex::new(BTreeMap::new()),
            spill_after: std::sync::OnceLock::new(),
            uploading: std::sync::atomic::AtomicUsize::new(0),
            uploaded: tokio::sync::Notify::new(),
            recovering: Mutex::new(None),
        });
        if let (Some(dir), Ok(handle)) = (
            inner.cfg.recovery.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            if dir.exists() {
                let task = handle.spawn(recover(inner.store.clone(), dir, inner.prefix()));
                if let Ok(mut r) = inner.recovering.try_lock() {
                    *r = Some(task);
                }
            }
        }
        // Roll files by age even when no events arrive.
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
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
        ArchiveSink { inner }
    }
}

impl Inner {
    fn bucket_len_us(&self) -> i64 {
        match self.cfg.granularity {
            Granularity::Hour => 3_600_000_000,
            Granularity::Day => 86_400_000_000,
        }
    }

    fn object_path(
        &self,
        (bucket_start_us, partition): FileKey,
        first: i64,
        last: i64,
    ) -> StorePath {
        let t = chrono::DateTime::from_timestamp_micros(bucket_start_us).unwrap_or_default();
        let mut p = format!(
            "{}stream={}/date={}/",
            self.prefix(),
            self.cfg.stream,
            t.format("%Y-%m-%d")
        );
        if self.cfg.granularity == Granularity::Hour {
            p.push_str(&format!("hour={}/", t.format("%H")));
        }
        p.push_str(&crate::maintenance::file_name(
            partition,
            first,
            last,
            self.cfg.epoch.as_deref(),
        ));
        StorePath::from(p)
    }

    async fn write(&self, batch: &RecordBatch) -> Result<()> {
        let batch = &super::archive_raw::reduce(batch, self.cfg.raw)?;
        let ts = batch
            .column_by_name(TIMESTAMP)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| EngineError::Internal("archive: batch has no timestamp".into()))?;
        // A batch comes from one source partition.
        let partition = batch
            .column_by_name(PARTITION)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .filter(|c| !c.is_empty() && c.is_valid(0))
            .map_or(0, |c| c.value(0));
        let len = self.bucket_len_us();
        // Rows by time bucket (usually one bucket per batch).
        let mut buckets: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for i in 0..batch.num_rows() {
            let t = if ts.is_valid(i) { ts.value(i) } else { 0 };
            buckets
                .entry(t.div_euclid(len) * len)
                .or_default()
                .push(i as u32);
        }
        let mut to_upload = Vec::new();
        {
            let mut open = self.open.lock().await;
            for (bucket, rows) in buckets {
                let part = if rows.len() == batch.num_rows() {
                    batch.clone()
                } else {
                    take_record_batch(batch, &UInt32Array::from(rows))?
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
                        writer: FileWriter::new(self.schema.clone()).map_err(|e| {
                            EngineError::connector("archive", format!("parquet: {e}"))
                        })?,
                        first_offset: lo,
                        last_offset: hi,
                        opened: Instant::now(),
                    }),
                };
                file.writer
                    .write(&part)
                    .map_err(|e| EngineError::connector("archive", format!("parquet: {e}")))?;
                file.first_offset = file.first_offset.min(lo);
                file.last_offset = file.last_offset.max(hi);
                let size = file.writer.size();
                if size as u64 >= self.cfg.roll_bytes {
                    if let Some(f) = open.remove(&key) {
                        to_upload.push((key, f));
                    }
                }
            }
        }
        for (key, f) in to_upload {
            self.upload(key, f).await?;
        }
        Ok(())
    }

    /// Closes and uploads files older than the roll age (or all, with `all`).
    async fn roll(&self, all: bool) -> Result<()> {
        let ready: Vec<(FileKey, OpenFile)> = {
            let mut open = self.open.lock().await;
            let keys: Vec<FileKey> = open
                .iter()
                .filter(|(_, f)| all || f.opened.elapsed() >= self.cfg.roll_every)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| open.remove(&k).map(|f| (k, f)))
                .collect()
        };
        for (key, f) in ready {
            self.upload(key, f).await?;
        }
        Ok(())
    }

    async fn upload(&self, key: FileKey, f: OpenFile) -> Result<()> {
        use std::sync::atomic::Ordering;
        self.uploading.fetch_add(1, Ordering::SeqCst);
        let res = self.upload_file(key, f).await;
        self.uploading.fetch_sub(1, Ordering::SeqCst);
        self.uploaded.notify_waiters();
        res
    }

    /// Closes the sink: uploads every open file, retrying failures until
    /// `close_grace` has passed, then spilling to `recovery`.
    async fn close(&self) -> Result<()> {
        let _ = self.spill_after.set(Instant::now() + self.cfg.close_grace);
        let rolled = self.roll(true).await;
        // Uploads of the aged-roll task spill after the grace too.
        loop {
            let notified = self.uploaded.notified();
            if self.uploading.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        if let Some(task) = self.recovering.lock().await.take() {
            let _ = task.await;
        }
        rolled
    }

    /// Keeps a file that could not be uploaded in the recovery folder.
    fn spill(&self, path: &StorePath, bytes: &[u8]) -> Result<bool> {
        let Some(dir) = &self.cfg.recovery else {
            return Ok(false);
        };
        let rel = path
            .as_ref()
            .strip_prefix(&self.prefix())
            .unwrap_or(path.as_ref());
        let to = dir.join(rel);
        let tmp = to.with_extension("parquet.tmp");
        let io =
            |e: std::io::Error| EngineError::io(format!("spilling {path} to {}", to.display()), e);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &to).map_err(io)?;
        tracing::warn!(%path, recovery = %to.display(), "archive: upload still failing at shutdown; kept in the recovery folder, uploaded at the next start");
        Ok(true)
    }

    fn prefix(&self) -> String {
        if self.cfg.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.cfg.prefix.trim_end_matches('/'))
        }
    }

    async fn upload_file(&self, key: FileKey, f: OpenFile) -> Result<()> {
        let path = self.object_path(key, f.first_offset, f.last_offset);
        let bytes = bytes::Bytes::from(
            f.writer
                .finish()
                .map_err(|e| EngineError::connector("archive", format!("parquet: {e}")))?,
        );
        let n = bytes.len() as u64;
        // Cheap clones: one buffer shared by the payload and a spill.
        let payload = PutPayload::from(bytes.clone());
        // The store retries each request itself; on top of that, keep the
        // file and try again for a while, so an outage of the store delays the
        // pipeline (backpressure) instead of losing events.
        let mut wait = Duration::from_millis(500);
        let give_up = Instant::now() + UPLOAD_PATIENCE;
        loop {
            match self.store.put(&path, payload.clone()).await {
                Ok(_) => {
                    self.healthy.set(1);
                    break;
                }
                Err(e)
                    if self.spill_after.get().is_some_and(|t| Instant::now() >= *t)
                        && self.spill(&path, &bytes)? =>
                {
                    self.healthy.set(0);
                    tracing::debug!(error = %e, "spilled after a failed upload");
                    return Ok(());
                }
                Err(e) if Instant::now() < give_up => {
                    self.healthy.set(0);
                    tracing::warn!(%path, error = %e, ?wait, "archive upload failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    return Err(EngineError::connector(
                        "archive",
                        format!("uploading {path}: {e} (gave up after {UPLOAD_PATIENCE:?})"),
                    ))
                }
            }
        }
        self.files.inc();
        self.bytes.inc_by(n);
        tracing::debug!(%path, bytes = n, "archived");
        Ok(())
    }
}

fn min_max(a: &arrow::array::PrimitiveArray<Int64Type>) -> (i64, i64) {
    let lo = arrow::compute::min(a).unwrap_or(0);
    let hi = arrow::compute::max(a).unwrap_or(0);
    (lo, hi)
}

#[async_trait]
impl Sink for ArchiveSink {
    async fn write(&self, batch: &RecordBatch) -> Result<()> {
        self.inner.write(batch).await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.roll(true).await
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

/// Uploads the files an earlier run spilled to `dir` (named by their path
/// in the archive), deleting each once it is stored. Failures are logged and
/// the file kept for the next start.
async fn recover(store: Arc<dyn ObjectStore>, dir: std::path::PathBuf, prefix: String) {
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "parquet") {
                continue;
            }
            let Ok(rel) = p.strip_prefix(&dir) else {
                continue;
            };
            let to = StorePath::from(format!("{prefix}{}", rel.to_string_lossy()));
            let put = match std::fs::read(&p) {
                Ok(bytes) => store
                    .put(&to, PutPayload::from(bytes))
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match put {
                Ok(_) => {
                    let _ = std::fs::remove_file(&p);
                    tracing::info!(path = %to, "archive: recovered a file kept at the last shutdown");
                }
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "archive: recovering a kept file failed; tried again at the next start")
                }
            }
        }
    }
}
