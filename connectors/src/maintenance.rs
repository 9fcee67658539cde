//! Archive upkeep: retention (delete, or move to a cold location, the
//! partitions older than a policy allows) and compaction (merge the small
//! files of a closed partition into one per source partition).
//!
//! Both work on whole files through `object_store`, so they run the same on a
//! local folder and on S3. New files are written whole before old ones are
//! deleted: a reader never sees a half file or loses rows.

use crate::delta::{NewFile, Operation, StreamTable, TableFile};
use crate::sinks::archive_file::{without_hints, BloomColumns, FileWriter};
use crate::store::ArchiveLocation;
use arrow::array::AsArray;
use arrow::datatypes::{Schema, SchemaRef, TimestampMicrosecondType};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use weir_engine::{EngineError, Result};

/// One retention rule (`[[retention]]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// The stream it applies to; `*` for every stream without a rule of its own.
    pub stream: String,
    /// Delete partitions whose time ended longer ago than this (`30d`, `12h`).
    #[serde(default, with = "humantime_serde")]
    pub delete_after: Option<Duration>,
    /// Move partitions older than this to `cold` (before `delete_after`).
    #[serde(default, with = "humantime_serde")]
    pub move_after: Option<Duration>,
    /// Where moved partitions go: a folder or `s3://bucket/prefix`.
    #[serde(default)]
    pub cold: Option<String>,
}

/// What retention did (or, in a dry run, would do) to one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetentionAction {
    pub stream: String,
    pub path: String,
    /// `delete` or `move`.
    pub action: &'static str,
    pub bytes: u64,
}

/// A data file of the archive and what its path says.
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    pub meta: ObjectMeta,
    pub stream: String,
    /// `stream=S/date=D[/hour=H]`, relative to the archive prefix.
    pub folder: String,
    /// Start of the partition's time (µs) and its length.
    pub start_us: i64,
    pub len_us: i64,
    /// Source partition, first and last offset, from the file name.
    pub partition: Option<i64>,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// The run that wrote it (see [`file_name`]); `None` in folder
    /// archives from before the Delta tables.
    pub epoch: Option<String>,
}

/// A data file's name: `part-PARTITION-FIRST-LAST-rEPOCH.parquet`, where
/// EPOCH is the writing run's (the archive always passes it), so a replay or
/// another writer of the same range never overwrites a file a table
/// version holds. Folder archives from before the Delta tables also have
/// `part-PARTITION-FIRST-LAST.parquet` (replayable sources), which
/// `weir archive migrate` reads.
pub fn file_name(partition: i64, first: i64, last: i64, epoch: Option<&str>) -> String {
    match epoch {
        Some(e) => format!("part-{partition:05}-{first:020}-{last:020}-r{e}.parquet"),
        None => format!("part-{partition:05}-{first:020}-{last:020}.parquet"),
    }
}

/// A new archive epoch: the time in microseconds and a random number, both
/// in hex (sortable by start, unique across processes).
pub fn new_epoch() -> String {
    format!(
        "{:x}{:08x}",
        chrono::Utc::now().timestamp_micros(),
        rand::random::<u32>()
    )
}

pub fn prefix_of(loc: &ArchiveLocation) -> String {
    if loc.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", loc.prefix)
    }
}

impl ArchiveFile {
    /// What the path of `meta` says, when it is an archive data file
    /// (`PREFIX/stream=S/date=D[/hour=H]/part-….parquet`).
    pub fn parse(meta: ObjectMeta, prefix: &str) -> Option<ArchiveFile> {
        let full = meta.location.as_ref().to_string();
        if !full.ends_with(".parquet") {
            return None;
        }
        let rel = full.strip_prefix(prefix).unwrap_or(&full);
        let parts: Vec<&str> = rel.split('/').collect();
        let stream = parts.first()?.strip_prefix("stream=")?;
        let date = parts
            .get(1)
            .and_then(|p| p.strip_prefix("date="))
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
        let hour = parts
            .get(2)
            .and_then(|p| p.strip_prefix("hour="))
            .and_then(|h| h.parse::<u32>().ok());
        let (start, len_us) = match hour {
            Some(h) => (date.and_hms_opt(h, 0, 0)?, 3_600_000_000),
            None => (date.and_hms_opt(0, 0, 0)?, 86_400_000_000),
        };
        let folder = parts[..parts.len() - 1].join("/");
        let name = parts.last().copied().unwrap_or("");
        let mut fields: Vec<&str> = name
            .trim_start_matches("part-")
            .trim_end_matches(".parquet")
            .split('-')
            .collect();
        let epoch = match fields.last().and_then(|f| f.strip_prefix('r')) {
            Some(e) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_hexdigit()) => {
                let e = e.to_string();
                fields.pop();
                Some(e)
            }
            _ => None,
        };
        let nums: Vec<i64> = fields.iter().filter_map(|n| n.parse().ok()).collect();
        let (partition, first, last) = match nums.as_slice() {
            [p, f, l] => (Some(*p), Some(*f), Some(*l)),
            [f, l] => (Some(0), Some(*f), Some(*l)),
            _ => (None, None, None),
        };
        Some(ArchiveFile {
            stream: stream.to_string(),
            folder,
            start_us: start.and_utc().timestamp_micros(),
            len_us,
            partition,
            first,
            last,
            epoch,
            meta,
        })
    }

    /// Whether this file holds every row of `other`: same folder, source
    /// partition and epoch, and its offsets span `other`'s (a compacted
    /// file, or a replay that wrote a longer range). Files of different runs
    /// of a non-replayable source never cover each other: their offsets
    /// number different events.
    fn covers(&self, other: &ArchiveFile) -> bool {
        let (Some(f), Some(l), Some(of), Some(ol)) =
            (self.first, self.last, other.first, other.last)
        else {
            return false;
        };
        self.folder == other.folder
            && self.partition == other.partition
            && self.epoch == other.epoch
            && f <= of
            && ol <= l
            && (f, l) != (of, ol)
    }
}

/// Splits files into live ones and those superseded by a file that covers
/// them (see [`ArchiveFile::covers`]). Readers use only live files, so the
/// moment between compaction writing its file and deleting the old ones (or
/// a crash in it) never shows a row twice.
pub fn split_superseded(files: Vec<ArchiveFile>) -> (Vec<ArchiveFile>, Vec<ArchiveFile>) {
    let mut groups: BTreeMap<(String, Option<i64>), Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        groups
            .entry((f.folder.clone(), f.partition))
            .or_default()
            .push(i);
    }
    let mut gone = vec![false; files.len()];
    for members in groups.values() {
        for &a in members {
            gone[a] = members.iter().any(|&b| files[b].covers(&files[a]));
        }
    }
    let (mut live, mut superseded) = (Vec::new(), Vec::new());
    for (f, gone) in files.into_iter().zip(gone) {
        if gone {
            superseded.push(f);
        } else {
            live.push(f);
        }
    }
    (live, superseded)
}

/// The stream folders of the archive (`PREFIX/stream=NAME`).
pub async fn stream_names(loc: &ArchiveLocation) -> Result<Vec<String>> {
    let prefix = prefix_of(loc);
    let root = StorePath::from(prefix.trim_end_matches('/'));
    let listing = loc
        .store
        .list_with_delimiter((!prefix.is_empty()).then_some(&root))
        .await
        .map_err(|e| EngineError::connector("archive", format!("listing {}: {e}", loc.url)))?;
    let mut names: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename()?.strip_prefix("stream=").map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// The data files of one stream as readers see them.
#[derive(Debug, Clone)]
pub struct StreamFiles {
    pub stream: String,
    pub files: Vec<ArchiveFile>,
    /// The table version read; `None` for a folder archive that is not a
    /// table yet (see [`migrate`]).
    pub version: Option<i64>,
    /// Partitioned by hour (else by day).
    pub hourly: bool,
}

/// The data files of a stream: those of its table's latest version (or of
/// `version`), or for a folder not yet migrated, its live files.
pub async fn stream_files(
    loc: &ArchiveLocation,
    table: &mut StreamTable,
    stream: &str,
    version: Option<i64>,
) -> Result<StreamFiles> {
    let prefix = prefix_of(loc);
    if table.load(version).await? {
        let files = table
            .files()
            .await?
            .into_iter()
            .filter_map(|f| ArchiveFile::parse(table_meta(table, &f), &prefix))
            .collect();
        return Ok(StreamFiles {
            stream: stream.to_string(),
            files,
            version: table.version(),
            hourly: table.hourly(),
        });
    }
    if version.is_some() {
        return Err(EngineError::connector(
            "archive",
            format!("stream `{stream}` is a folder of files, not a table: it has no versions (run `weir archive migrate`)"),
        ));
    }
    let (live, _) = folder_files(loc, table).await?;
    Ok(StreamFiles {
        stream: stream.to_string(),
        hourly: live.iter().any(|f| f.len_us < 86_400_000_000),
        files: live,
        version: None,
    })
}

/// The data files of a stream folder that is not a table, split into live
/// ones and those a compacted file supersedes.
async fn folder_files(
    loc: &ArchiveLocation,
    table: &StreamTable,
) -> Result<(Vec<ArchiveFile>, Vec<ArchiveFile>)> {
    let metas = list_folder(loc, table, "archive").await?;
    let prefix = prefix_of(loc);
    let files = metas
        .into_iter()
        .filter_map(|m| ArchiveFile::parse(m, &prefix))
        .collect();
    Ok(split_superseded(files))
}

/// Every object under a stream table's folder (data files, and its log),
/// whatever the table holds; `what` names the job in errors.
async fn list_folder(
    loc: &ArchiveLocation,
    table: &StreamTable,
    what: &str,
) -> Result<Vec<ObjectMeta>> {
    let dir = StorePath::from(table.dir());
    loc.store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| EngineError::connector(what, format!("listing {dir}: {e}")))
}

/// A table file as an object of the store.
fn table_meta(table: &StreamTable, f: &TableFile) -> ObjectMeta {
    ObjectMeta {
        location: StorePath::from(format!("{}/{}", table.dir(), f.path)),
        last_modified: chrono::DateTime::from_timestamp_millis(f.modified_ms).unwrap_or_default(),
        size: f.size,
        e_tag: None,
        version: None,
    }
}

/// The live data files of every stream of the archive.
pub async fn list_files(loc: &ArchiveLocation) -> Result<Vec<ArchiveFile>> {
    let mut all = Vec::new();
    for stream in stream_names(loc).await? {
        let mut table = StreamTable::new(loc, &stream)?;
        all.extend(stream_files(loc, &mut table, &stream, None).await?.files);
    }
    Ok(all)
}

/// The policy for a stream: its own, else `*`.
fn policy_for<'a>(policies: &'a [RetentionPolicy], stream: &str) -> Option<&'a RetentionPolicy> {
    policies
        .iter()
        .find(|p| p.stream == stream)
        .or_else(|| policies.iter().find(|p| p.stream == "*"))
}

/// Applies the retention policies: a stream's files whose partition time
/// ended longer ago than `delete_after` are removed from its table in one
/// commit (the files themselves go at the next [`vacuum`]); those older
/// than `move_after` are first copied to the cold location (same relative
/// path). With `dry_run`, nothing changes; the actions are returned either
/// way.
pub async fn retain(
    loc: &ArchiveLocation,
    policies: &[RetentionPolicy],
    cold: Option<&ArchiveLocation>,
    now_us: i64,
    dry_run: bool,
) -> Result<Vec<RetentionAction>> {
    let mut actions = Vec::new();
    for stream in stream_names(loc).await? {
        let Some(policy) = policy_for(policies, &stream) else {
            continue;
        };
        let mut table = StreamTable::new(loc, &stream)?;
        let listed = stream_files(loc, &mut table, &stream, None).await?;
        let is_table = listed.version.is_some();
        let table_files: HashMap<String, TableFile> = if is_table {
            table
                .files()
                .await?
                .into_iter()
                .map(|f| (format!("{}/{}", table.dir(), f.path), f))
                .collect()
        } else {
            HashMap::new()
        };
        let mut removed = Vec::new();
        for f in listed.files {
            let age_us = now_us - (f.start_us + f.len_us);
            let older = |d: Option<Duration>| d.is_some_and(|d| age_us >= d.as_micros() as i64);
            let action = if older(policy.delete_after) {
                "delete"
            } else if older(policy.move_after) {
                "move"
            } else {
                continue;
            };
            if !dry_run {
                if action == "move" {
                    copy_to_cold(loc, cold, &f).await?;
                }
                match table_files.get(f.meta.location.as_ref()) {
                    Some(tf) => removed.push(tf.clone()),
                    None => loc
                        .store
                        .delete(&f.meta.location)
                        .await
                        .map_err(|e| EngineError::connector("retention", e.to_string()))?,
                }
            }
            tracing::info!(stream = %f.stream, path = %f.meta.location, action, dry_run, "retention");
            actions.push(RetentionAction {
                stream: f.stream,
                path: f.meta.location.to_string(),
                action,
                bytes: f.meta.size,
            });
        }
        if !removed.is_empty() {
            let schema = Schema::empty();
            table
                .commit(
                    &schema,
                    listed.hourly,
                    &[],
                    &removed,
                    &[],
                    Operation::Delete,
                )
                .await
                .map_err(|e| EngineError::connector("retention", e.to_string()))?;
        }
    }
    Ok(actions)
}

/// Copies a file to the cold location, at the same relative path.
async fn copy_to_cold(
    loc: &ArchiveLocation,
    cold: Option<&ArchiveLocation>,
    f: &ArchiveFile,
) -> Result<()> {
    let cold = cold.ok_or_else(|| {
        EngineError::connector(
            "retention",
            format!(
                "stream `{}` moves data but has no `cold` location",
                f.stream
            ),
        )
    })?;
    let bytes = loc
        .store
        .get(&f.meta.location)
        .await
        .map_err(|e| EngineError::connector("retention", e.to_string()))?
        .bytes()
        .await
        .map_err(|e| EngineError::connector("retention", e.to_string()))?;
    let rel = f
        .meta
        .location
        .as_ref()
        .strip_prefix(&prefix_of(loc))
        .unwrap_or(f.meta.location.as_ref())
        .to_string();
    let to = StorePath::from(format!("{}{rel}", prefix_of(cold)));
    cold.store
        .put(&to, PutPayload::from(bytes))
        .await
        .map_err(|e| EngineError::connector("retention", format!("copying to {to}: {e}")))?;
    Ok(())
}

/// What compaction did to one folder and source partition.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Compaction {
    pub folder: String,
    pub partition: i64,
    pub files_in: usize,
    pub rows: usize,
    pub path_out: String,
    pub bytes_out: u64,
}

/// Merges, in every partition folder whose time ended more than `grace` ago,
/// the files of each source partition into one (Delta's OPTIMIZE, by
/// Weir's own writer so the merged file keeps its read hints): the merged
/// file is uploaded, then one commit adds it and removes the old ones, so a
/// reader sees either the old files or the new one, never both. The old
/// files go at the next [`vacuum`]. Columns missing from some files are
/// null in the merged one. Folder archives not yet migrated are skipped.
pub async fn compact(
    loc: &ArchiveLocation,
    now_us: i64,
    grace: Duration,
) -> Result<Vec<Compaction>> {
    let prefix = prefix_of(loc);
    let mut done = Vec::new();
    for stream in stream_names(loc).await? {
        let mut table = StreamTable::new(loc, &stream)?;
        if !table.load(None).await? {
            tracing::warn!(%stream, "compaction: a folder of files, not a table; run `weir archive migrate` first");
            continue;
        }
        let mut groups: BTreeMap<(String, i64), Vec<(TableFile, ArchiveFile)>> = BTreeMap::new();
        for tf in table.files().await? {
            let Some(f) = ArchiveFile::parse(table_meta(&table, &tf), &prefix) else {
                continue;
            };
            let Some(p) = f.partition else { continue };
            if now_us - (f.start_us + f.len_us) < grace.as_micros() as i64 {
                continue;
            }
            groups
                .entry((f.folder.clone(), p))
                .or_default()
                .push((tf, f));
        }
        for ((folder, partition), files) in groups {
            for files in bins(files, COMPACT_TARGET_BYTES) {
                let (added, c) = merge(loc, &table, &folder, partition, &files).await?;
                let removes: Vec<TableFile> = files.iter().map(|(t, _)| t.clone()).collect();
                let schema = Schema::empty();
                match table
                    .commit(
                        &schema,
                        table.hourly(),
                        &[added],
                        &removes,
                        &[],
                        Operation::Optimize,
                    )
                    .await
                {
                    Ok(_) => done.push(c),
                    Err(e) => {
                        // Another writer removed these files (retention, another
                        // compaction): the merged file is in no version.
                        tracing::warn!(%folder, error = %e, "compaction: not committed");
                        let _ = loc
                            .store
                            .delete(&StorePath::from(c.path_out.as_str()))
                            .await;
                    }
                }
            }
        }
    }
    Ok(done)
}

/// The size compaction merges small files up to (bytes of input Parquet
/// per merged file; also about what it holds in memory at once).
pub const COMPACT_TARGET_BYTES: u64 = 128 << 20;

/// Bin-packs a folder's files of one source partition for compaction: in
/// offset order, consecutive small files are grouped while their total
/// stays within `target`; a file already at three quarters of it is left
/// as it is (and ends a group), and a group of one needs no merge.
fn bins<T>(mut files: Vec<(T, ArchiveFile)>, target: u64) -> Vec<Vec<(T, ArchiveFile)>> {
    files.sort_by(|a, b| {
        (a.1.first, a.1.last, &a.1.meta.location).cmp(&(b.1.first, b.1.last, &b.1.meta.location))
    });
    let mut out = Vec::new();
    let mut bin: Vec<(T, ArchiveFile)> = Vec::new();
    let mut size = 0;
    for f in files {
        let n = f.1.meta.size;
        if n >= target / 4 * 3 {
            // Big enough; a bin never spans it, so merged ranges stay whole.
            out.push(std::mem::take(&mut bin));
            size = 0;
            continue;
        }
        if size + n > target && !bin.is_empty() {
            out.push(std::mem::take(&mut bin));
            size = 0;
        }
        size += n;
        bin.push(f);
    }
    out.push(bin);
    out.retain(|b| b.len() >= 2);
    out
}

/// Rows of a file compaction sorts by event time (a file held decoded
/// once more while sorting); bigger files are copied in their order.
const SORT_ROWS: i64 = 2_000_000;

/// A file's earliest event time, from its row groups' statistics.
fn earliest(b: &ParquetRecordBatchReaderBuilder<bytes::Bytes>) -> Option<i64> {
    use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
    let conv =
        StatisticsConverter::try_new(weir_dsl::types::TIMESTAMP, b.schema(), b.parquet_schema())
            .ok()?;
    let mins = conv.row_group_mins(b.metadata().row_groups()).ok()?;
    mins.as_primitive_opt::<TimestampMicrosecondType>()
        .and_then(arrow::compute::min)
}

/// The batches as one, sorted by event time (rows without a time last).
/// Without a time column, as they are.
fn by_time(
    schema: &SchemaRef,
    batches: &[arrow::array::RecordBatch],
) -> std::result::Result<arrow::array::RecordBatch, String> {
    let all = arrow::compute::concat_batches(schema, batches).map_err(|e| e.to_string())?;
    let Some(t) = all.column_by_name(weir_dsl::types::TIMESTAMP) else {
        return Ok(all);
    };
    let order = arrow::compute::sort_to_indices(
        t,
        Some(arrow::compute::SortOptions {
            descending: false,
            nulls_first: false,
        }),
        None,
    )
    .map_err(|e| e.to_string())?;
    arrow::compute::take_record_batch(&all, &order).map_err(|e| e.to_string())
}

async fn merge(
    loc: &ArchiveLocation,
    table: &StreamTable,
    folder: &str,
    partition: i64,
    files: &[(TableFile, ArchiveFile)],
) -> Result<(NewFile, Compaction)> {
    let err = |e: String| EngineError::connector("compaction", e);
    // The union of the files' schemas.
    let mut readers = Vec::new();
    let mut schemas = Vec::new();
    for (_, f) in files {
        let bytes = loc
            .store
            .get(&f.meta.location)
            .await
            .map_err(|e| err(format!("{}: {e}", f.meta.location)))?
            .bytes()
            .await
            .map_err(|e| err(format!("{}: {e}", f.meta.location)))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| err(format!("{}: {e}", f.meta.location)))?;
        // Hints differ between files (a column's dictionary may overflow
        // in one); the merged file gets its own.
        schemas.push(without_hints(builder.schema()));
        readers.push(builder);
    }
    let merged: SchemaRef = Arc::new(
        Schema::try_merge(schemas).map_err(|e| err(format!("schemas do not merge: {e}")))?,
    );
    // The filters the files have (the archive's `index` when they were written).
    let index = BloomColumns::of_files(readers.iter().map(|r| r.metadata().as_ref()));
    let mut writer = FileWriter::new(merged.clone(), &index).map_err(|e| err(e.to_string()))?;
    let mut rows = 0;
    let mut time: Option<(i64, i64)> = None;
    // Event-time order, so row groups prune by time inside an hour: files
    // by their earliest event, and each file's rows sorted by time (files
    // of at most SORT_ROWS rows; a bigger one is copied as it is).
    readers.sort_by_cached_key(|b| earliest(b).unwrap_or(i64::MAX));
    for builder in readers {
        let small = builder.metadata().file_metadata().num_rows() <= SORT_ROWS;
        let mut batches = Vec::new();
        for batch in builder.build().map_err(|e| err(e.to_string()))? {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            batches.push(conform(&batch, &merged).map_err(err)?);
        }
        if small && !batches.is_empty() {
            batches = vec![by_time(&merged, &batches).map_err(err)?];
        }
        for batch in batches {
            rows += batch.num_rows();
            if let Some(t) = batch
                .column_by_name(weir_dsl::types::TIMESTAMP)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            {
                if let (Some(lo), Some(hi)) = (arrow::compute::min(t), arrow::compute::max(t)) {
                    time = Some(time.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                }
            }
            writer.write(&batch).map_err(|e| err(e.to_string()))?;
        }
    }
    let bytes = writer.finish().map_err(|e| err(e.to_string()))?;
    let first = files.iter().filter_map(|(_, f)| f.first).min().unwrap_or(0);
    let last = files.iter().filter_map(|(_, f)| f.last).max().unwrap_or(0);
    let name = file_name(partition, first, last, Some(&new_epoch()));
    let in_table = format!(
        "{}{name}",
        files[0]
            .0
            .path
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| format!("{d}/"))
    );
    let path = StorePath::from(format!("{}/{in_table}", table.dir()));
    let n = bytes.len() as u64;
    loc.store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| err(format!("writing {path}: {e}")))?;
    tracing::info!(%path, files = files.len(), rows, "compacted");
    let added = NewFile {
        path: in_table,
        size: n,
        partition: files[0]
            .0
            .partition
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect(),
        rows: rows as u64,
        time,
    };
    Ok((
        added,
        Compaction {
            folder: folder.to_string(),
            partition,
            files_in: files.len(),
            rows,
            path_out: path.to_string(),
            bytes_out: n,
        },
    ))
}

/// How long a data file stays after it left its table (and an uploaded
/// file waits for its commit) before `weir serve` vacuums it: queries and
/// time travel within this window still find it.
pub const VACUUM_GRACE: Duration = Duration::from_secs(3600);

/// What vacuum deleted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Vacuumed {
    pub files: usize,
    pub bytes: u64,
}

/// Deletes the data files no longer in their table's latest version
/// (removed by retention or compaction, or uploaded by a flush that never
/// committed) once they are older than `grace`: until then queries that
/// started on an older version, and time travel within `grace`, still
/// read them.
pub async fn vacuum(loc: &ArchiveLocation, now_us: i64, grace: Duration) -> Result<Vacuumed> {
    let mut out = Vacuumed::default();
    let cutoff_ms = now_us / 1000 - grace.as_millis() as i64;
    for stream in stream_names(loc).await? {
        let mut table = StreamTable::new(loc, &stream)?;
        if !table.load(None).await? {
            continue;
        }
        let live: std::collections::HashSet<String> = table
            .files()
            .await?
            .into_iter()
            .map(|f| format!("{}/{}", table.dir(), f.path))
            .collect();
        for m in list_folder(loc, &table, "vacuum").await? {
            let path = m.location.as_ref();
            if !path.ends_with(".parquet")
                || path.contains("/_delta_log/")
                || live.contains(path)
                || m.last_modified.timestamp_millis() > cutoff_ms
            {
                continue;
            }
            loc.store
                .delete(&m.location)
                .await
                .map_err(|e| EngineError::connector("vacuum", format!("deleting {path}: {e}")))?;
            tracing::info!(%path, "vacuum: deleted a file no longer in the table");
            out.files += 1;
            out.bytes += m.size;
        }
    }
    Ok(out)
}

/// What migration did to one stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Migrated {
    pub stream: String,
    /// Files added to the new table, as they are (no data rewritten).
    pub files: usize,
    pub rows: u64,
    /// Files left out because a compacted file covers them (deleted by
    /// the next vacuum).
    pub superseded: usize,
}

/// Turns every stream folder of a folder archive into a Delta table
/// without rewriting data: one commit adds its live files (those no
/// compacted file supersedes) with their partition values and row counts
/// read from the Parquet footers. Streams that already are tables are left
/// alone; with `dry_run` nothing is written.
pub async fn migrate(loc: &ArchiveLocation, dry_run: bool) -> Result<Vec<Migrated>> {
    let mut out = Vec::new();
    for stream in stream_names(loc).await? {
        let mut table = StreamTable::new(loc, &stream)?;
        if table.load(None).await? {
            continue;
        }
        let (live, superseded) = folder_files(loc, &table).await?;
        if live.is_empty() {
            continue;
        }
        let hourly = live.iter().any(|f| f.len_us < 86_400_000_000);
        let mut adds = Vec::new();
        let mut schemas = Vec::new();
        let mut rows = 0;
        for f in &live {
            let (n, schema) = footer(loc, &f.meta).await?;
            rows += n;
            schemas.push(without_hints(&schema));
            let rel = f
                .meta
                .location
                .as_ref()
                .strip_prefix(&format!("{}/", table.dir()))
                .unwrap_or(f.meta.location.as_ref())
                .to_string();
            let partition = rel
                .split('/')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            adds.push(NewFile {
                path: rel,
                size: f.meta.size,
                partition,
                rows: n,
                time: None,
            });
        }
        let schema = Schema::try_merge(schemas)
            .map_err(|e| EngineError::connector("migrate", format!("schemas do not merge: {e}")))?;
        if !dry_run {
            table
                .commit(&schema, hourly, &adds, &[], &[], Operation::Append)
                .await
                .map_err(|e| EngineError::connector("migrate", e.to_string()))?;
        }
        tracing::info!(%stream, files = adds.len(), rows, dry_run, "migrated to a Delta table");
        out.push(Migrated {
            stream,
            files: adds.len(),
            rows,
            superseded: superseded.len(),
        });
    }
    Ok(out)
}

/// A Parquet file's row count and Arrow schema, from its footer.
async fn footer(loc: &ArchiveLocation, meta: &ObjectMeta) -> Result<(u64, Schema)> {
    let err = |e: String| EngineError::connector("migrate", format!("{}: {e}", meta.location));
    let md = crate::sinks::archive_file::read_footer(loc.store.as_ref(), meta)
        .await
        .map_err(err)?;
    let rows = md.file_metadata().num_rows().max(0) as u64;
    let schema = parquet::arrow::parquet_to_arrow_schema(
        md.file_metadata().schema_descr(),
        md.file_metadata().key_value_metadata(),
    )
    .map_err(|e| err(e.to_string()))?;
    Ok((rows, schema))
}

/// A batch with the columns of `schema` in its order; missing ones null.
fn conform(
    batch: &arrow::array::RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<arrow::array::RecordBatch, String> {
    let cols = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()).map_err(|e| e.to_string()),
            None => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    arrow::array::RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> ArchiveFile {
        let meta = ObjectMeta {
            location: StorePath::from(path),
            last_modified: chrono::Utc::now(),
            size: 1,
            e_tag: None,
            version: None,
        };
        ArchiveFile::parse(meta, "a/").unwrap()
    }

    /// Compaction writes a file's rows in event-time order, and knows a
    /// file's earliest event from its statistics.
    #[test]
    fn merged_rows_are_in_event_time_order() {
        use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
        use arrow::datatypes::{DataType, Field, TimeUnit};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(
                weir_dsl::types::TIMESTAMP,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(weir_dsl::types::OFFSET, DataType::Int64, true),
        ]));
        let batch = |ts: Vec<Option<i64>>, offsets: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                    Arc::new(Int64Array::from(offsets)),
                ],
            )
            .unwrap()
        };
        let sorted = by_time(
            &schema,
            &[
                batch(vec![Some(30), None, Some(10)], vec![0, 1, 2]),
                batch(vec![Some(20)], vec![3]),
            ],
        )
        .unwrap();
        let offsets = sorted
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(offsets.values().to_vec(), vec![2, 3, 0, 1]);

        let mut w = FileWriter::new(schema.clone(), &BloomColumns::Usual).unwrap();
        w.write(&batch(vec![Some(50), Some(40)], vec![0, 1]))
            .unwrap();
        let bytes = bytes::Bytes::from(w.finish().unwrap());
        let b = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(earliest(&b), Some(40));
    }

    #[test]
    fn compaction_packs_small_files_in_offset_order_up_to_the_target() {
        let h = "a/stream=app/date=2026-03-01/hour=00";
        let sized = |first: i64, size: u64| {
            let mut f = file(&format!(
                "{h}/part-00000-{first:020}-{:020}-rx.parquet",
                first + 9
            ));
            f.meta.size = size;
            ((), f)
        };
        // Target 100: 40+40 | 30+40 (+30 would pass 100) | 80 is big
        // enough already and ends the group | a last 10 alone is left.
        let files = vec![
            sized(30, 40),
            sized(0, 40),
            sized(10, 40),
            sized(20, 30),
            sized(40, 80),
            sized(50, 10),
        ];
        let firsts: Vec<Vec<i64>> = bins(files, 100)
            .iter()
            .map(|b| b.iter().map(|(_, f)| f.first.unwrap()).collect())
            .collect();
        assert_eq!(firsts, vec![vec![0, 10], vec![20, 30]]);
    }

    #[test]
    fn files_covered_by_a_wider_range_are_superseded() {
        let h = "a/stream=app/date=2026-03-01/hour=00";
        let files = vec![
            file(&format!("{h}/part-00000-{:020}-{:020}.parquet", 0, 99)),
            file(&format!("{h}/part-00000-{:020}-{:020}.parquet", 100, 199)),
            file(&format!("{h}/part-00000-{:020}-{:020}.parquet", 0, 199)),
            // Another source partition, another hour: not covered.
            file(&format!("{h}/part-00001-{:020}-{:020}.parquet", 0, 99)),
            file(&format!(
                "a/stream=app/date=2026-03-01/hour=01/part-00000-{:020}-{:020}.parquet",
                50, 60
            )),
            // Overlapping but not inside: kept.
            file(&format!("{h}/part-00000-{:020}-{:020}.parquet", 150, 250)),
        ];
        let (live, gone) = split_superseded(files);
        let names = |v: &[ArchiveFile]| -> Vec<(Option<i64>, Option<i64>, Option<i64>)> {
            v.iter().map(|f| (f.partition, f.first, f.last)).collect()
        };
        assert_eq!(
            names(&gone),
            vec![
                (Some(0), Some(0), Some(99)),
                (Some(0), Some(100), Some(199))
            ]
        );
        assert_eq!(live.len(), 4);
        assert_eq!(live[0].stream, "app");
        assert_eq!(live[0].len_us, 3_600_000_000);
    }

    #[test]
    fn files_of_different_runs_never_supersede_each_other() {
        let h = "a/stream=app/date=2026-03-01/hour=00";
        let name = |first, last, epoch| format!("{h}/{}", file_name(0, first, last, epoch));
        let files = vec![
            // Run 1 wrote 0..99, run 2 restarted at 0 and wrote 0..199.
            file(&name(0, 99, Some("18f0a1"))),
            file(&name(0, 199, Some("18f0b2"))),
            // Within a run, a covering file (compaction) supersedes.
            file(&name(100, 199, Some("18f0b2"))),
            // A replayable source's file is not covered by a run's file.
            file(&name(0, 50, None)),
        ];
        assert_eq!(files[0].epoch.as_deref(), Some("18f0a1"));
        assert_eq!((files[0].first, files[0].last), (Some(0), Some(99)));
        let (live, gone) = split_superseded(files);
        assert_eq!(live.len(), 3);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].first, gone[0].epoch.as_deref()),
            (Some(100), Some("18f0b2"))
        );
    }
}
