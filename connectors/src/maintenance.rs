//! Archive upkeep: retention (delete, or move to a cold location, the
//! partitions older than a policy allows) and compaction (merge the small
//! files of a closed partition into one per source partition).
//!
//! Both work on whole files through `object_store`, so they run the same on a
//! local folder and on S3. New files are written whole before old ones are
//! deleted: a reader never sees a half file or loses rows.

use crate::sinks::archive_file::{without_hints, FileWriter};
use crate::store::ArchiveLocation;
use arrow::datatypes::{Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use std::collections::BTreeMap;
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
    /// The run that wrote it, for sources whose offsets restart at every
    /// run (see [`file_name`]); `None` for replayable sources.
    pub epoch: Option<String>,
}

/// A data file's name: `part-PARTITION-FIRST-LAST.parquet` for a replayable
/// source, where a replay of the same range writes the same name again and a
/// longer range supersedes it; `part-PARTITION-FIRST-LAST-rEPOCH.parquet` for
/// a source whose offsets restart at every run, so two runs' files never
/// share a name or supersede each other.
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

/// Every Parquet file of the archive, with what its path says, superseded
/// ones included.
pub async fn list_all_files(loc: &ArchiveLocation) -> Result<Vec<ArchiveFile>> {
    let prefix = prefix_of(loc);
    let root = StorePath::from(prefix.as_str());
    let metas: Vec<ObjectMeta> = loc
        .store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| EngineError::connector("archive", format!("listing {}: {e}", loc.url)))?;
    Ok(metas
        .into_iter()
        .filter_map(|m| ArchiveFile::parse(m, &prefix))
        .collect())
}

/// The live data files of the archive (superseded ones left out).
pub async fn list_files(loc: &ArchiveLocation) -> Result<Vec<ArchiveFile>> {
    Ok(split_superseded(list_all_files(loc).await?).0)
}

/// The policy for a stream: its own, else `*`.
fn policy_for<'a>(policies: &'a [RetentionPolicy], stream: &str) -> Option<&'a RetentionPolicy> {
    policies
        .iter()
        .find(|p| p.stream == stream)
        .or_else(|| policies.iter().find(|p| p.stream == "*"))
}

/// Applies retention at `now_us`: files of partitions that ended more than
/// `delete_after` ago are deleted; more than `move_after` ago, copied to the
/// cold location (same relative path) and then deleted. With `dry_run`,
/// nothing changes; the actions are returned either way.
pub async fn retain(
    loc: &ArchiveLocation,
    policies: &[RetentionPolicy],
    cold: Option<&ArchiveLocation>,
    now_us: i64,
    dry_run: bool,
) -> Result<Vec<RetentionAction>> {
    let mut actions = Vec::new();
    for f in list_all_files(loc).await? {
        let Some(policy) = policy_for(policies, &f.stream) else {
            continue;
        };
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
                    .map_err(|e| {
                        EngineError::connector("retention", format!("copying to {to}: {e}"))
                    })?;
            }
            loc.store
                .delete(&f.meta.location)
                .await
                .map_err(|e| EngineError::connector("retention", e.to_string()))?;
        }
        tracing::info!(stream = %f.stream, path = %f.meta.location, action, dry_run, "retention");
        actions.push(RetentionAction {
            stream: f.stream,
            path: f.meta.location.to_string(),
            action,
            bytes: f.meta.size,
        });
    }
    Ok(actions)
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
/// the files of each source partition (and run epoch) into one file named by
/// the union of their offsets. The new file is written whole first; the old ones are
/// deleted after. Columns missing from some files are null in the merged one.
pub async fn compact(
    loc: &ArchiveLocation,
    now_us: i64,
    grace: Duration,
) -> Result<Vec<Compaction>> {
    let (live, superseded) = split_superseded(list_all_files(loc).await?);
    // Left by an earlier run stopped between writing and deleting: their
    // rows are in the file that covers them.
    for f in superseded {
        loc.store.delete(&f.meta.location).await.map_err(|e| {
            EngineError::connector("compaction", format!("deleting {}: {e}", f.meta.location))
        })?;
        tracing::info!(path = %f.meta.location, "deleted a file superseded by a compacted one");
    }
    let mut groups: BTreeMap<(String, i64, Option<String>), Vec<ArchiveFile>> = BTreeMap::new();
    for f in live {
        let (Some(p), Some(_), Some(_)) = (f.partition, f.first, f.last) else {
            continue;
        };
        if now_us - (f.start_us + f.len_us) < grace.as_micros() as i64 {
            continue;
        }
        groups
            .entry((f.folder.clone(), p, f.epoch.clone()))
            .or_default()
            .push(f);
    }
    let mut done = Vec::new();
    for ((folder, partition, epoch), files) in groups {
        if files.len() < 2 {
            continue;
        }
        done.push(merge(loc, &folder, partition, epoch.as_deref(), &files).await?);
    }
    Ok(done)
}

async fn merge(
    loc: &ArchiveLocation,
    folder: &str,
    partition: i64,
    epoch: Option<&str>,
    files: &[ArchiveFile],
) -> Result<Compaction> {
    let err = |e: String| EngineError::connector("compaction", e);
    // The union of the files' schemas.
    let mut readers = Vec::new();
    let mut schemas = Vec::new();
    for f in files {
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
    let mut writer = FileWriter::new(merged.clone()).map_err(|e| err(e.to_string()))?;
    let mut rows = 0;
    for builder in readers {
        for batch in builder.build().map_err(|e| err(e.to_string()))? {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            let batch = conform(&batch, &merged).map_err(err)?;
            rows += batch.num_rows();
            writer.write(&batch).map_err(|e| err(e.to_string()))?;
        }
    }
    let bytes = writer.finish().map_err(|e| err(e.to_string()))?;
    let first = files.iter().filter_map(|f| f.first).min().unwrap_or(0);
    let last = files.iter().filter_map(|f| f.last).max().unwrap_or(0);
    let path = StorePath::from(format!(
        "{}{folder}/{}",
        prefix_of(loc),
        file_name(partition, first, last, epoch)
    ));
    let n = bytes.len() as u64;
    loc.store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| err(format!("writing {path}: {e}")))?;
    for f in files {
        if f.meta.location != path {
            loc.store
                .delete(&f.meta.location)
                .await
                .map_err(|e| err(format!("deleting {}: {e}", f.meta.location)))?;
        }
    }
    tracing::info!(%path, files = files.len(), rows, "compacted");
    Ok(Compaction {
        folder: folder.to_string(),
        partition,
        files_in: files.len(),
        rows,
        path_out: path.to_string(),
        bytes_out: n,
    })
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
