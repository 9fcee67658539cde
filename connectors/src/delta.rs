//! The archive as Delta Lake tables: each stream is one table at
//! `PREFIX/stream=NAME/`, partitioned by `date` (and `hour`), whose data
//! files are the archive's Parquet files where they always were
//! (`date=D/hour=H/part-….parquet`), so other engines (Spark, Trino,
//! DuckDB, polars, the `deltalake` Python package) read the archive as a
//! table.
//!
//! A file is part of the archive once a commit adds it, never before: a
//! reader sees the files of one table version, so a half-done flush, a
//! crash between upload and commit, or compaction swapping files never
//! shows a row twice or a missing row. Each commit of a replayable source
//! (Kafka) also records, with Delta's `txn` action, how far each source
//! partition is archived ([`app_id`] → the last offset included): the
//! writer skips what a replay sends again, so every offset lands exactly
//! once. Two writers of one partition (a rebalance, a zombie process)
//! conflict on that `txn` and the later one re-checks its range (see
//! [`CommitError::Conflict`]).
//!
//! The `deltalake` crate does the log: protocol, metadata, optimistic
//! concurrency (a commit is a put-if-absent of the next version),
//! checkpoints, time travel.

use crate::store::ArchiveLocation;
use arrow::datatypes::{DataType as ArrowType, Schema};
use deltalake_core::errors::DeltaTableError;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{
    Action, Add, DataType, MetadataExt, Remove, StructField, StructType, Transaction,
};
use deltalake_core::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::table::state::DeltaTableState;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStoreExt;
use std::collections::HashMap;
use std::sync::Arc;
use weir_engine::{EngineError, Result};

/// The `txn` application id of one source partition of a stream.
pub fn app_id(stream: &str, partition: i64) -> String {
    format!("weir:{stream}:{partition}")
}

/// The folder of a stream's table inside the store (`PREFIX/stream=NAME`).
pub fn table_dir(loc: &ArchiveLocation, stream: &str) -> String {
    if loc.prefix.is_empty() {
        format!("stream={stream}")
    } else {
        format!("{}/stream={stream}", loc.prefix)
    }
}

/// A data file written but not yet in the table.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Relative to the table's folder (`date=D/hour=H/part-….parquet`).
    pub path: String,
    pub size: u64,
    /// `date`, `hour`.
    pub partition: Vec<(String, String)>,
    pub rows: u64,
    /// Smallest and largest event time (µs), for readers' file skipping.
    pub time: Option<(i64, i64)>,
}

/// A data file of the table's current version.
#[derive(Debug, Clone)]
pub struct TableFile {
    /// Relative to the table's folder.
    pub path: String,
    pub size: u64,
    pub partition: HashMap<String, Option<String>>,
    /// When it was added (ms since the epoch).
    pub modified_ms: i64,
    pub rows: Option<u64>,
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another writer committed a `txn` of the same source partition since
    /// this table's state was read: reload and re-check the range.
    #[error("another writer archived the same source partition: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(#[from] EngineError),
}

/// What a commit does, for the table's history.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    /// New events (an archive flush, or recovered files).
    Append,
    /// Files merged into fewer (compaction): same rows.
    Optimize,
    /// Expired partitions removed (retention).
    Delete,
}

/// One stream's table.
pub struct StreamTable {
    log: LogStoreRef,
    state: Option<DeltaTableState>,
    dir: String,
}

fn delta_err(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::connector("archive", format!("delta table {what}: {e}"))
}

impl StreamTable {
    /// The table of `stream` in the archive (not read yet: see [`Self::load`]).
    pub fn new(loc: &ArchiveLocation, stream: &str) -> Result<StreamTable> {
        let dir = table_dir(loc, stream);
        let url = loc
            .root_url
            .join(&format!("{}/", dir_in_root(loc, &dir)))
            .map_err(|e| delta_err("location", e))?;
        let path = StorePath::from_url_path(url.path()).map_err(|e| delta_err("location", e))?;
        let prefixed: Arc<dyn object_store::ObjectStore> =
            Arc::new(PrefixStore::new(loc.root.clone(), path));
        let log = default_logstore(prefixed, loc.root.clone(), &url, &StorageConfig::default());
        Ok(StreamTable {
            log,
            state: None,
            dir,
        })
    }

    /// The table's folder in the archive store.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Reads the latest version (or `version`); false when there is no
    /// table yet.
    pub async fn load(&mut self, version: Option<i64>) -> Result<bool> {
        let version = version.map(|v| v.max(0) as u64);
        match &mut self.state {
            Some(state) if version.is_none() => match state.update(self.log.as_ref(), None).await {
                Ok(()) => return Ok(true),
                Err(e) => return Err(delta_err("update", e)),
            },
            _ => {}
        }
        if self.state.is_none() && !self.has_log().await? {
            return Ok(false);
        }
        match DeltaTableState::try_new(self.log.as_ref(), version).await {
            Ok(s) => {
                self.state = Some(s);
                Ok(true)
            }
            Err(e) if not_a_table(&e) => Ok(false),
            Err(DeltaTableError::InvalidVersion(v)) => Err(EngineError::connector(
                "archive",
                format!("table {} has no version {v}", self.dir),
            )),
            Err(e) => Err(delta_err("read", e)),
        }
    }

    /// Whether the table's log has any entry (a quiet check: the kernel
    /// logs an error for a missing table).
    async fn has_log(&self) -> Result<bool> {
        let log = StorePath::from("_delta_log");
        let mut listing = self.log.object_store(None).list(Some(&log));
        match listing.try_next().await {
            Ok(first) => Ok(first.is_some()),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(delta_err("read", e)),
        }
    }

    /// The latest version at or before `time_ms` (time travel by time).
    pub async fn version_at(&self, time_ms: i64) -> Result<Option<i64>> {
        let latest = match self.log.get_latest_version(0).await {
            Ok(v) => v,
            Err(e) if not_a_table(&e) => return Ok(None),
            Err(e) => return Err(delta_err("read", e)),
        };
        // Commit times rise with versions: a binary search over them, so a
        // long-lived table (a commit every few seconds) costs a few dozen
        // reads, not one per version. A version whose log entry is gone
        // (cleaned up after a checkpoint) is older than any that is left.
        let store = self.log.object_store(None);
        let committed_by = |v: u64| {
            let store = store.clone();
            async move {
                let path = StorePath::from(format!("_delta_log/{v:020}.json"));
                match store.head(&path).await {
                    Ok(m) => Ok(m.last_modified.timestamp_millis() <= time_ms),
                    Err(object_store::Error::NotFound { .. }) => Ok(true),
                    Err(e) => Err(delta_err("read", e)),
                }
            }
        };
        // The first version committed after `time_ms` is in lo..=hi+1.
        let (mut lo, mut hi) = (0u64, latest + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if committed_by(mid).await? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1).map(|v| v as i64))
    }

    pub fn version(&self) -> Option<i64> {
        self.state.as_ref().map(|s| s.version() as i64)
    }

    /// Whether the table is partitioned by hour.
    pub fn hourly(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.metadata().partition_columns().iter().any(|c| c == "hour"))
    }

    /// The last offset archived of a source partition, from the loaded
    /// version.
    pub async fn archived_upto(&self, app: &str) -> Result<Option<i64>> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        state
            .transaction_version(self.log.as_ref(), app)
            .await
            .map_err(|e| delta_err("read", e))
    }

    /// The data files of the loaded version.
    pub async fn files(&self) -> Result<Vec<TableFile>> {
        let Some(state) = &self.state else {
            return Ok(Vec::new());
        };
        let views: Vec<_> = state
            .snapshot()
            .file_views(self.log.as_ref(), None)
            .try_collect()
            .await
            .map_err(|e| delta_err("read", e))?;
        Ok(views
            .into_iter()
            .map(|f| TableFile {
                path: f.path().to_string(),
                size: f.size().max(0) as u64,
                partition: f.partition_values_map(),
                modified_ms: f.modification_time(),
                rows: f.num_records().map(|n| n as u64),
            })
            .collect())
    }

    /// Creates the table if there is none, with `schema` and the partition
    /// columns.
    async fn create(&mut self, schema: &Schema, hourly: bool) -> Result<()> {
        if self.load(None).await? {
            return Ok(());
        }
        let mut partition = vec!["date"];
        if hourly {
            partition.push("hour");
        }
        let created = CreateBuilder::new()
            .with_log_store(self.log.clone())
            .with_columns(delta_fields(schema, &partition))
            .with_partition_columns(partition)
            .with_save_mode(SaveMode::Ignore)
            .with_table_name(self.dir.rsplit('=').next().unwrap_or_default().to_string())
            .await;
        match created {
            Ok(_) | Err(DeltaTableError::Transaction { .. }) => {}
            Err(e) => return Err(delta_err("create", e)),
        }
        if self.load(None).await? {
            Ok(())
        } else {
            Err(delta_err("create", "the table is still missing"))
        }
    }

    /// Adds and removes files in one commit, with the `txn` versions of
    /// the source partitions they archive. Creates the table first when
    /// there is none and widens its schema when `schema` has new columns.
    pub async fn commit(
        &mut self,
        schema: &Schema,
        hourly: bool,
        adds: &[NewFile],
        removes: &[TableFile],
        txns: &[(String, i64)],
        operation: Operation,
    ) -> std::result::Result<i64, CommitError> {
        if self.state.is_none() {
            self.create(schema, hourly).await?;
        }
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| delta_err("commit", "no table"))?;
        let now = chrono::Utc::now().timestamp_millis();
        let data_change = !matches!(operation, Operation::Optimize);
        let mut actions = Vec::with_capacity(adds.len() + removes.len() + 1);
        if let Some(meta) = widened(state, schema)? {
            actions.push(Action::Metadata(meta));
        }
        for f in adds {
            actions.push(Action::Add(Add {
                path: f.path.clone(),
                partition_values: f
                    .partition
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
                size: f.size as i64,
                modification_time: now,
                data_change,
                stats: Some(stats(f)),
                ..Default::default()
            }));
        }
        for f in removes {
            actions.push(Action::Remove(Remove {
                path: f.path.clone(),
                data_change,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(f.partition.clone()),
                size: Some(f.size as i64),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            }));
        }
        let op = match operation {
            Operation::Append => DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
            Operation::Optimize => DeltaOperation::Optimize {
                predicate: None,
                target_size: 0,
            },
            Operation::Delete => DeltaOperation::Delete {
                predicate: Some("partitions past retention".into()),
            },
        };
        let txns: Vec<Transaction> = txns
            .iter()
            .map(|(app, v)| Transaction::new_with_last_update(app, *v, Some(now)))
            .collect();
        let properties = CommitProperties::default().with_application_transactions(txns);
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .with_max_retries(20)
            .build(Some(state), self.log.clone(), op)
            .await;
        match committed {
            Ok(done) => {
                let v = done.version as i64;
                self.state = Some(done.snapshot);
                Ok(v)
            }
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(e),
            }) => {
                // The caller re-checks against the newer version.
                self.load(None).await?;
                Err(CommitError::Conflict(e.to_string()))
            }
            Err(e) => Err(delta_err("commit", e).into()),
        }
    }
}

/// Whether a read failed because there is no table (no folder, or no log).
fn not_a_table(e: &DeltaTableError) -> bool {
    match e {
        DeltaTableError::NotATable(_) => true,
        // The kernel's error type is not re-exported: told by its text.
        DeltaTableError::KernelError(k) => {
            let t = k.to_string();
            t.contains("Invalid table location") || t.contains("No files in log segment")
        }
        _ => false,
    }
}

/// `dir` relative to the root store's URL: the store's prefix is already
/// in `root_url`.
fn dir_in_root<'a>(loc: &ArchiveLocation, dir: &'a str) -> &'a str {
    if loc.prefix.is_empty() {
        dir
    } else {
        dir.strip_prefix(&format!("{}/", loc.prefix)).unwrap_or(dir)
    }
}

/// The table's columns for an archive schema, then the partition columns.
fn delta_fields(schema: &Schema, partition: &[&str]) -> Vec<StructField> {
    let mut fields: Vec<StructField> = schema
        .fields()
        .iter()
        .filter(|f| !partition.contains(&f.name().as_str()))
        .map(|f| StructField::new(f.name(), delta_type(f.data_type()), true))
        .collect();
    for p in partition {
        fields.push(StructField::new(*p, DataType::STRING, true));
    }
    fields
}

/// The Delta type an archive column is read as.
fn delta_type(t: &ArrowType) -> DataType {
    match t {
        ArrowType::Int64 | ArrowType::Duration(_) => DataType::LONG,
        ArrowType::Int32 => DataType::INTEGER,
        ArrowType::Float64 => DataType::DOUBLE,
        ArrowType::Boolean => DataType::BOOLEAN,
        ArrowType::Timestamp(_, Some(_)) => DataType::TIMESTAMP,
        ArrowType::Timestamp(_, None) => DataType::TIMESTAMP_NTZ,
        _ => DataType::STRING,
    }
}

/// The table's metadata with `schema`'s new columns added, if it has any.
fn widened(
    state: &DeltaTableState,
    schema: &Schema,
) -> Result<Option<deltalake_core::kernel::Metadata>> {
    let current = state.schema();
    let mut fields: Vec<StructField> = current.fields().cloned().collect();
    let mut added = false;
    for f in schema.fields() {
        if current.field(f.name()).is_none() {
            fields.push(StructField::new(f.name(), delta_type(f.data_type()), true));
            added = true;
        }
    }
    if !added {
        return Ok(None);
    }
    let widened = StructType::try_new(fields).map_err(|e| delta_err("schema", e))?;
    state
        .metadata()
        .clone()
        .with_schema(&widened)
        .map(Some)
        .map_err(|e| delta_err("schema", e))
}

/// A file's statistics as Delta readers skip by them: row count and the
/// event-time bounds (to the millisecond, widened outward).
fn stats(f: &NewFile) -> String {
    let mut s = serde_json::json!({ "numRecords": f.rows });
    if let Some((lo, hi)) = f.time {
        let ms = |us: i64| {
            chrono::DateTime::from_timestamp_millis(us)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        s["minValues"] = serde_json::json!({ "timestamp": ms(lo.div_euclid(1000)) });
        s["maxValues"] = serde_json::json!({ "timestamp": ms((hi + 999).div_euclid(1000)) });
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType as A, Field};

    #[tokio::test]
    async fn txn_versions_are_per_application() {
        let dir = tempfile::tempdir().unwrap();
        let loc = crate::store::open(None, dir.path(), dir.path(), &Default::default()).unwrap();
        let mut t = StreamTable::new(&loc, "app").unwrap();
        assert!(!t.load(None).await.unwrap());
        let schema = Schema::new(vec![Field::new("_offset", A::Int64, true)]);
        let txns = |a: i64, b: i64| vec![(app_id("app", 2), a), (app_id("app", 3), b)];
        t.commit(
            &schema,
            true,
            &[],
            &[],
            &txns(3567, 14999),
            Operation::Append,
        )
        .await
        .unwrap();
        t.commit(
            &schema,
            true,
            &[],
            &[],
            &[(app_id("app", 3), 20000)],
            Operation::Append,
        )
        .await
        .unwrap();
        let mut fresh = StreamTable::new(&loc, "app").unwrap();
        assert!(fresh.load(None).await.unwrap());
        for table in [&t, &fresh] {
            assert_eq!(
                table.archived_upto(&app_id("app", 2)).await.unwrap(),
                Some(3567)
            );
            assert_eq!(
                table.archived_upto(&app_id("app", 3)).await.unwrap(),
                Some(20000)
            );
            assert_eq!(table.archived_upto(&app_id("app", 0)).await.unwrap(), None);
        }
    }
}
