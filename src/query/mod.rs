//! SQL over the archive with DataFusion: every stream (`stream=NAME/` in the
//! archive) is a table of the same name, with its Hive partitions `date` (and
//! `hour`) as columns, so time filters prune folders, and Parquet statistics
//! and page indexes prune row groups and pages.
//!
//! Schema evolution: a table's schema is the union of its files' schemas;
//! columns a file lacks read as null (see [`schema`]). Text columns that
//! files hold dictionary-encoded are read and grouped as dictionaries (see
//! [`dictionary`], [`dense_count`] and [`dictionary_like`]). Limits (timeout, rows, bytes scanned)
//! are checked on every query; errors carry DataFusion's message.

pub mod bloom_probe;
pub mod dense_count;
pub mod dictionary;
pub mod dictionary_like;
pub mod footer;
pub mod format;
pub mod guard;
pub mod newest_first;
pub mod replay;
pub mod schema;
pub mod scope;
pub mod text_index;
pub mod udf;
pub mod where_sql;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_connectors::delta::StreamTable;
use weir_connectors::live_store::LiveStore;
use weir_connectors::maintenance::{self, prefix_of};
use weir_connectors::store::ArchiveLocation;

/// Why a query failed. Everything but `Internal` is the user's to fix (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Sql(String),
    #[error("the query ran longer than {0:?}; narrow the time range or raise the limit")]
    Timeout(Duration),
    #[error("the query would scan {scanned} bytes, more than the limit of {limit}; narrow the time range (start/end or a WHERE on timestamp/date)")]
    TooMuchData { scanned: u64, limit: u64 },
    #[error("{0}")]
    TooComplex(String),
    #[error("only read-only queries run here: {0}")]
    NotReadOnly(String),
    #[error(
        "{0} queries are running already, the most this server runs at once; try again shortly"
    )]
    Busy(usize),
    #[error("archive: {0}")]
    Internal(String),
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        match e.find_root() {
            E::ResourcesExhausted(m) => QueryError::Sql(format!(
                "the query needs more memory than the query memory limit allows ({m}); \
                 narrow the time range, aggregate more, or raise [query] memory_limit"
            )),
            // DataFusion prefixes messages with their kind; keep them as they are.
            _ => QueryError::Sql(e.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for QueryError {
    fn from(e: arrow::error::ArrowError) -> Self {
        QueryError::Internal(e.to_string())
    }
}

/// Server-wide query settings (`[query]` in the config file).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySettings {
    /// Memory all running queries may hold together, in bytes; operators
    /// that can spill (sorts, grouped aggregations) spill to a temporary
    /// folder beyond it, others fail with a clear error.
    pub memory_limit: u64,
    /// Queries that run at once; more wait up to `queue_wait`, then are
    /// refused (HTTP 503).
    pub max_concurrent: usize,
    /// How long a query waits for a free slot.
    #[serde(with = "humantime_serde")]
    pub queue_wait: Duration,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            memory_limit: 2 << 30,
            max_concurrent: 4,
            queue_wait: Duration::from_secs(10),
        }
    }
}

/// Limits on one query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Rows returned at most; more are cut off (and reported as truncated).
    pub max_rows: usize,
    /// Bytes of Parquet a query may touch (after folder pruning by time range).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            max_rows: 100_000,
            max_bytes: 64 << 30,
        }
    }
}

/// What of the archive a query reads: an optional event-time range,
/// applied to every table, and optionally an earlier version of the tables
/// (time travel).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeRange {
    /// Microseconds since the epoch, inclusive.
    pub start_us: Option<i64>,
    /// Microseconds since the epoch, exclusive.
    pub end_us: Option<i64>,
    /// Read the tables as they were (see [`AsOf`]); `None`: their latest
    /// versions.
    pub as_of: Option<AsOf>,
}

/// An earlier state of the archive's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsOf {
    /// This version of every stream's table.
    Version(i64),
    /// The last version of each table committed at or before this time
    /// (ms since the epoch); streams created later are absent.
    TimeMs(i64),
}

impl AsOf {
    /// `VERSION` (a number) or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<AsOf, QueryError> {
        let t = text.trim();
        if let Ok(v) = t.parse::<i64>() {
            if v < 0 {
                return Err(QueryError::Sql(format!("as_of version `{t}` is negative")));
            }
            return Ok(AsOf::Version(v));
        }
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| AsOf::TimeMs(d.timestamp_millis()))
            .map_err(|_| {
                QueryError::Sql(format!(
                    "as_of `{t}` is neither a table version (e.g. 12) nor an RFC 3339 time (e.g. 2026-03-01T00:00:00Z)"
                ))
            })
    }
}

/// A query as the API and the CLI take it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    /// RFC 3339; events at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// RFC 3339; events before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Time travel: a table version or an RFC 3339 time (see [`AsOf`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

impl QueryRequest {
    /// The time range, or an error naming the bad bound.
    pub fn range(&self) -> Result<TimeRange, QueryError> {
        let parse = |name: &str, v: &Option<String>| -> Result<Option<i64>, QueryError> {
            v.as_deref()
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map(|t| t.timestamp_micros())
                        .map_err(|e| {
                            QueryError::Sql(format!(
                                "{name} `{t}` is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z): {e}"
                            ))
                        })
                })
                .transpose()
        };
        Ok(TimeRange {
            start_us: parse("start", &self.start)?,
            end_us: parse("end", &self.end)?,
            as_of: self.as_of.as_deref().map(AsOf::parse).transpose()?,
        })
    }

    /// The limits, with the request's own on top of `base`.
    pub fn limits(&self, base: Limits) -> Limits {
        Limits {
            max_rows: self
                .max_rows
                .map_or(base.max_rows, |m| m.min(base.max_rows)),
            timeout: self
                .timeout_ms
                .map_or(base.timeout, |t| Duration::from_millis(t).min(base.timeout)),
            ..base
        }
    }
}

/// The result of a query.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// More rows existed than `max_rows`.
    pub truncated: bool,
}

/// A stream found in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    /// Files and bytes within the time range.
    pub files: usize,
    pub bytes: u64,
    /// Partition columns: `date`, and `hour` when partitioned by hour.
    pub hourly: bool,
    /// A hash of every file's path, size and modification time (all of
    /// them, not only those in range): the schema is inferred again when
    /// it changes.
    pub fingerprint: u64,
    /// Every live file of the stream.
    pub objects: Vec<object_store::ObjectMeta>,
    /// Where its files are read through (`weir://archive/`, or a store of
    /// its own for a time-travel query).
    pub base: String,
}

const SCHEME: &str = "weir://archive/";

/// Queries one archive.
///
/// One DataFusion runtime serves every query, so Parquet footers and page
/// indexes are read once per file (DataFusion's metadata cache checks size
/// and modification time), and each stream's schema is inferred once per
/// set of files. The archive is listed once per query: new files are always
/// seen.
pub struct QueryEngine {
    location: ArchiveLocation,
    runtime: Arc<RuntimeEnv>,
    settings: QuerySettings,
    /// One permit per query allowed to run at once.
    slots: tokio::sync::Semaphore,
    /// Per stream: the files' fingerprint and the schema inferred from them.
    schemas: Mutex<HashMap<String, (u64, SchemaRef)>>,
    /// Per file (path and size: archive files are never rewritten): the
    /// statistics of its scope columns, per row group.
    scope_stats: Mutex<HashMap<(String, u64), Arc<FileScopeStats>>>,
    /// Each stream's Delta table, read again incrementally per query.
    tables: tokio::sync::Mutex<HashMap<String, StreamTable>>,
    /// The store queries list through: only the files of the versions read.
    live: Arc<LiveStore>,
    /// Stores of time-travel queries, by what they read (oldest first;
    /// at most [`AS_OF_STORES`]): a past version's files never change, so
    /// one store serves every query of the same `as_of`.
    as_of_stores: Mutex<Vec<(AsOf, String, Arc<LiveStore>)>>,
    /// Files' full-text indexes, read once.
    text_indexes: Arc<text_index::TextIndexes>,
    /// Where files' bloom filters keep their bits, read once.
    bloom_filters: Arc<bloom_probe::BloomFilters>,
}

/// How many time-travel views stay registered at once.
const AS_OF_STORES: usize = 16;

/// Per scope field: the column's statistics in each row group, or `None`
/// when the file has no such column.
type FileScopeStats = HashMap<String, Option<Vec<scope::ColumnStats>>>;

impl QueryEngine {
    pub fn new(location: ArchiveLocation, settings: QuerySettings) -> Result<Self, QueryError> {
        // No list-files cache: it would hide files written after a first query.
        let caches = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let memory = usize::try_from(settings.memory_limit).unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(caches)
            .with_memory_limit(memory, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let url = url::Url::parse(SCHEME).map_err(|e| QueryError::Internal(e.to_string()))?;
        // Through LiveStore: files superseded by a compacted one are not listed.
        let live = Arc::new(LiveStore::new(location.store.clone(), prefix_of(&location)));
        runtime.register_object_store(&url, live.clone());
        Ok(QueryEngine {
            location,
            runtime,
            slots: tokio::sync::Semaphore::new(settings.max_concurrent.max(1)),
            settings,
            schemas: Mutex::new(HashMap::new()),
            scope_stats: Mutex::new(HashMap::new()),
            tables: tokio::sync::Mutex::new(HashMap::new()),
            live,
            as_of_stores: Mutex::new(Vec::new()),
            text_indexes: Arc::default(),
            bloom_filters: Arc::default(),
        })
    }

    /// The streams in the archive, with their size within `range`.
    pub async fn streams(&self, range: TimeRange) -> Result<Vec<StreamInfo>, QueryError> {
        let internal = |e: weir_engine::EngineError| QueryError::Internal(e.to_string());
        let names = maintenance::stream_names(&self.location)
            .await
            .map_err(internal)?;
        let mut streams: BTreeMap<String, StreamInfo> = BTreeMap::new();
        let (live, base) = match range.as_of {
            None => (self.live.clone(), SCHEME.to_string()),
            Some(a) => self.as_of_store(a)?,
        };
        let mut tables = self.tables.lock().await;
        for name in names {
            let table = match tables.entry(name.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(StreamTable::new(&self.location, &name).map_err(internal)?)
                }
            };
            let version = match range.as_of {
                None => None,
                Some(AsOf::Version(v)) => Some(v),
                Some(AsOf::TimeMs(ms)) => match table.version_at(ms).await.map_err(internal)? {
                    Some(v) => Some(v),
                    // The stream's table did not exist yet.
                    None => continue,
                },
            };
            let listed = maintenance::stream_files(&self.location, table, &name, version)
                .await
                .map_err(|e| QueryError::Sql(e.to_string()))?;
            if listed.version.is_some() {
                live.set_table(
                    table.dir(),
                    listed
                        .files
                        .iter()
                        .map(|f| f.meta.location.to_string())
                        .collect(),
                );
            }
            let s = streams.entry(name.clone()).or_insert_with(|| StreamInfo {
                name: name.clone(),
                files: 0,
                bytes: 0,
                hourly: listed.hourly,
                fingerprint: 0,
                objects: Vec::new(),
                base: base.clone(),
            });
            for f in listed.files {
                // Order-independent: the store lists in any order.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (f.meta.location.as_ref(), f.meta.size, f.meta.last_modified).hash(&mut h);
                s.fingerprint = s.fingerprint.wrapping_add(h.finish());
                if in_range(f.start_us, f.len_us, range) {
                    s.files += 1;
                    s.bytes += f.meta.size;
                }
                s.objects.push(f.meta);
            }
        }
        Ok(streams.into_values().collect())
    }

    /// The store a time-travel query lists through, and its base URL:
    /// registered once per `as_of`, the oldest dropped past
    /// [`AS_OF_STORES`].
    fn as_of_store(&self, a: AsOf) -> Result<(Arc<LiveStore>, String), QueryError> {
        let mut stores = self.as_of_stores.lock().unwrap_or_else(|p| p.into_inner());
        let host = match a {
            AsOf::Version(v) => format!("v{v}"),
            AsOf::TimeMs(t) => format!("t{t}"),
        };
        if let Some((_, base, live)) = stores.iter().find(|(k, _, _)| *k == a) {
            return Ok((live.clone(), base.clone()));
        }
        let base = format!("weir://asof-{host}/");
        let url = url::Url::parse(&base).map_err(|e| QueryError::Internal(e.to_string()))?;
        let live = Arc::new(LiveStore::new(
            self.location.store.clone(),
            prefix_of(&self.location),
        ));
        if stores.len() >= AS_OF_STORES {
            let (_, old, _) = stores.remove(0);
            if let Ok(old) = url::Url::parse(&old) {
                let _ = self.runtime.deregister_object_store(&old);
            }
        }
        self.runtime.register_object_store(&url, live.clone());
        stores.push((a, base.clone(), live.clone()));
        Ok((live, base))
    }

    /// A DataFusion session with every stream registered as a table, and the
    /// streams (files and bytes counted within `range`). With a time range
    /// or a scope, each table is a view with the filter inside it (see
    /// [`scope`]); the unfiltered table is never registered.
    pub async fn session(
        &self,
        range: TimeRange,
        who: &crate::auth::Scope,
    ) -> Result<(SessionContext, Vec<StreamInfo>), QueryError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(2)
            .set_bool("datafusion.execution.parquet.enable_page_index", true);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(dense_count::DenseCountRule))
            .with_physical_optimizer_rule(Arc::new(newest_first::NewestFirst))
            .build();
        let ctx = SessionContext::new_with_state(state);
        udf::register(&ctx);
        ctx.add_optimizer_rule(Arc::new(dictionary::DictionaryGroupBy));
        ctx.add_optimizer_rule(Arc::new(dictionary_like::DictionaryLike));
        let streams = self.streams(range).await?;
        for s in &streams {
            let (options, table_url) = self.listing(s)?;
            let schema = self.schema(&ctx, s, &options, &table_url).await?;
            let config = ListingTableConfig::new(table_url)
                .with_listing_options(options)
                .with_schema(schema.clone());
            // Substring searches on `message` skip row groups through the
            // files' text indexes.
            let table: Arc<dyn datafusion::catalog::TableProvider> =
                Arc::new(text_index::IndexedTable::new(
                    Arc::new(ListingTable::try_new(config)?),
                    self.text_indexes.clone(),
                    self.bloom_filters.clone(),
                ));
            let scoped = if self.scope_holds_for_all(s, who).await {
                None
            } else {
                scope::filter(who, &schema)
            };
            if range.start_us.is_none() && range.end_us.is_none() && scoped.is_none() {
                ctx.register_table(s.name.as_str(), table)?;
                continue;
            }
            // The range and the scope as a view: partition columns prune
            // folders, the timestamp filter prunes row groups and pages.
            let mut df = ctx.read_table(table)?;
            if let Some(cond) = range_condition(range) {
                let cond = ctx.parse_sql_expr(&cond, df.schema())?;
                df = df.filter(cond)?;
            }
            if let Some(cond) = scoped {
                df = df.filter(cond)?;
            }
            // A view the planner inlines (not a provider it cannot see
            // into), so the filters are pushed into the Parquet scan and
            // the dictionary rewrites still see the table.
            let view = datafusion::catalog::view::ViewTable::new(df.into_unoptimized_plan(), None);
            ctx.register_table(s.name.as_str(), Arc::new(view))?;
        }
        Ok((ctx, streams))
    }

    /// Whether the files' statistics prove every row of the stream is
    /// inside `who` (then no filter is needed). Footers are read once per
    /// file; any doubt (no statistics, an unreadable footer) keeps the
    /// filter.
    async fn scope_holds_for_all(&self, stream: &StreamInfo, who: &crate::auth::Scope) -> bool {
        if who.is_everything() {
            return true;
        }
        for meta in &stream.objects {
            let stats = match self.file_scope_stats(meta).await {
                Some(s) => s,
                None => return false,
            };
            for m in &who.matchers {
                let holds = match stats.get(&m.name) {
                    Some(Some(groups)) => groups.iter().all(|g| scope::holds_for_all(m, Some(g))),
                    Some(None) => scope::holds_for_all(m, None),
                    None => false,
                };
                if !holds {
                    return false;
                }
            }
        }
        true
    }

    async fn file_scope_stats(
        &self,
        meta: &object_store::ObjectMeta,
    ) -> Option<Arc<FileScopeStats>> {
        use parquet::file::statistics::Statistics;
        let key = (meta.location.to_string(), meta.size);
        if let Some(s) = self
            .scope_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Some(s.clone());
        }
        let md =
            weir_connectors::sinks::archive_file::read_footer(self.location.store.as_ref(), meta)
                .await
                .ok()?;
        let columns = md.file_metadata().schema_descr();
        let mut out = FileScopeStats::new();
        for field in crate::auth::scope::FIELDS {
            let index =
                (0..columns.num_columns()).find(|i| columns.column(*i).path().string() == *field);
            let groups = index.map(|i| {
                md.row_groups()
                    .iter()
                    .map(|rg| {
                        let text =
                            |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                        let st = rg.column(i).statistics();
                        scope::ColumnStats {
                            rows: u64::try_from(rg.num_rows()).unwrap_or(0),
                            nulls: st.and_then(Statistics::null_count_opt),
                            min: st.and_then(|s| {
                                text(s.min_bytes_opt()).map(|v| (v, s.min_is_exact()))
                            }),
                            max: st.and_then(|s| {
                                text(s.max_bytes_opt()).map(|v| (v, s.max_is_exact()))
                            }),
                        }
                    })
                    .collect()
            });
            out.insert(field.to_string(), groups);
        }
        let out = Arc::new(out);
        self.scope_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, out.clone());
        Some(out)
    }

    /// The stream's schema: the union of its files', inferred again only
    /// when its files changed.
    async fn schema(
        &self,
        ctx: &SessionContext,
        stream: &StreamInfo,
        options: &ListingOptions,
        url: &ListingTableUrl,
    ) -> Result<SchemaRef, QueryError> {
        let cached = {
            let schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
            schemas
                .get(&stream.name)
                .filter(|(fp, _)| *fp == stream.fingerprint)
                .map(|(_, s)| s.clone())
        };
        if let Some(s) = cached {
            return Ok(s);
        }
        let schema = schema::infer(&ctx.state(), options, url).await?;
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream.name.clone(), (stream.fingerprint, schema.clone()));
        Ok(schema)
    }

    /// How a stream's files are listed as a table: Parquet files with
    /// the `date` (and `hour`) partition columns, and where they are.
    fn listing(&self, s: &StreamInfo) -> Result<(ListingOptions, ListingTableUrl), QueryError> {
        let mut cols = vec![("date".to_string(), DataType::Utf8)];
        if s.hourly {
            cols.push(("hour".to_string(), DataType::Utf8));
        }
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(cols);
        let url = ListingTableUrl::parse(format!(
            "{}{}stream={}/",
            s.base,
            prefix_of(&self.location),
            s.name
        ))?;
        Ok((options, url))
    }

    /// The columns of one stream's table (a scope filters rows, never
    /// columns), without building the other streams' tables.
    pub async fn table_schema(&self, stream: &str) -> Result<SchemaRef, QueryError> {
        let streams = self.streams(TimeRange::default()).await?;
        let s = streams
            .iter()
            .find(|s| s.name == stream)
            .ok_or_else(|| QueryError::Sql(format!("no stream `{stream}` in the archive")))?;
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), self.runtime.clone());
        let (options, url) = self.listing(s)?;
        self.schema(&ctx, s, &options, &url).await
    }

    /// Runs one SQL statement within the limits.
    pub async fn run(
        &self,
        sql: &str,
        range: TimeRange,
        limits: Limits,
        who: &crate::auth::Scope,
    ) -> Result<QueryResult, QueryError> {
        guard::check_size(sql)?;
        let _slot = tokio::time::timeout(self.settings.queue_wait, self.slots.acquire())
            .await
            .map_err(|_| QueryError::Busy(self.settings.max_concurrent))?
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let work = async {
            let (ctx, streams) = self.session(range, who).await?;
            let df = guard::read_only(&ctx, sql).await?;
            // Bytes the query may touch: the files of the streams it names,
            // after pruning by the time range.
            let lower = sql.to_ascii_lowercase();
            let scanned: u64 = streams
                .iter()
                .filter(|s| mentions(&lower, &s.name))
                .map(|s| s.bytes)
                .sum();
            if scanned > limits.max_bytes {
                return Err(QueryError::TooMuchData {
                    scanned,
                    limit: limits.max_bytes,
                });
            }
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await?;
            let mut batches = Vec::new();
            let mut rows = 0;
            let mut truncated = false;
            while let Some(b) = stream.try_next().await? {
                let room = limits.max_rows - rows;
                if b.num_rows() > room {
                    batches.push(b.slice(0, room));
                    rows += room;
                    truncated = true;
                    break;
                }
                rows += b.num_rows();
                batches.push(b);
            }
            Ok(QueryResult {
                schema,
                batches,
                rows,
                truncated,
            })
        };
        tokio::time::timeout(limits.timeout, work)
            .await
            .map_err(|_| QueryError::Timeout(limits.timeout))?
    }
}

/// Whether `sql` (lower case) names the table `name` as a word.
fn mentions(sql: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    sql.match_indices(&name).any(|(i, _)| {
        let before = sql[..i].chars().next_back();
        let after = sql[i + name.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

/// Whether a partition starting at `start_us` and `len_us` long can hold
/// events of `range`.
fn in_range(start_us: i64, len_us: i64, range: TimeRange) -> bool {
    let end = start_us + len_us;
    range.start_us.is_none_or(|s| end > s) && range.end_us.is_none_or(|e| start_us < e)
}

/// The range as a SQL condition with partition-column bounds; none for
/// no range.
fn range_condition(range: TimeRange) -> Option<String> {
    let ts = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let day = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut conds = Vec::new();
    if let Some(s) = range.start_us {
        conds.push(format!("\"timestamp\" >= TIMESTAMP '{}'", ts(s)));
        conds.push(format!("\"date\" >= '{}'", day(s)));
    }
    if let Some(e) = range.end_us {
        conds.push(format!("\"timestamp\" < TIMESTAMP '{}'", ts(e)));
        conds.push(format!("\"date\" <= '{}'", day(e)));
    }
    (!conds.is_empty()).then(|| conds.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_as_words() {
        assert!(mentions("select * from app where x", "app"));
        assert!(!mentions("select * from apps", "app"));
        assert!(!mentions("select happy from x", "app"));
    }

    #[test]
    fn as_of_is_a_version_or_a_time() {
        assert_eq!(AsOf::parse("12").unwrap(), AsOf::Version(12));
        assert_eq!(
            AsOf::parse("2026-03-01T00:00:00Z").unwrap(),
            AsOf::TimeMs(1_772_323_200_000)
        );
        assert!(AsOf::parse("-1").is_err());
        assert!(AsOf::parse("last week").is_err());
    }

    #[test]
    fn folders_outside_the_range_are_pruned() {
        let r = TimeRange {
            start_us: Some(1_772_330_400_000_000), // 2026-03-01T02:00Z
            end_us: Some(1_772_334_000_000_000),   // 03:00
            as_of: None,
        };
        let hour = 3_600_000_000;
        let day_start = 1_772_323_200_000_000; // 2026-03-01T00:00Z
        assert!(in_range(day_start + 2 * hour, hour, r));
        assert!(!in_range(day_start + hour, hour, r));
        assert!(!in_range(day_start + 3 * hour, hour, r));
        assert!(in_range(day_start, 24 * hour, r));
        assert!(!in_range(day_start + 24 * hour, 24 * hour, r));
    }
}

/// What the query modules' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use datafusion::prelude::SessionContext;

    /// Runs `sql` and returns its rows as a text table (an `EXPLAIN` gives
    /// its plan).
    pub async fn table(ctx: &SessionContext, sql: &str) -> String {
        let rows = ctx
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    }

    /// Writes `batch` as a Parquet file at `path` (default properties).
    pub fn write_parquet(path: &std::path::Path, batch: &datafusion::arrow::array::RecordBatch) {
        write_parquet_groups(path, batch, 1024 * 1024);
    }

    /// [`write_parquet`] in row groups of at most `group_rows` rows.
    pub fn write_parquet_groups(
        path: &std::path::Path,
        batch: &datafusion::arrow::array::RecordBatch,
        group_rows: usize,
    ) {
        let mut bytes = Vec::new();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props))
            .unwrap_or_else(|e| panic!("{e}"));
        w.write(batch).unwrap_or_else(|e| panic!("{e}"));
        w.close().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A table of the Parquet files in `dir`, with `schema`.
    pub fn parquet_folder(
        dir: &std::path::Path,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> datafusion::datasource::listing::ListingTable {
        use datafusion::datasource::file_format::parquet::ParquetFormat;
        use datafusion::datasource::listing::{
            ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
        };
        let url =
            ListingTableUrl::parse(format!("{}/", dir.display())).unwrap_or_else(|e| panic!("{e}"));
        let options = ListingOptions::new(std::sync::Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        ListingTable::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }
}
