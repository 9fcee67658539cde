//! Full-text searches skip what cannot match: a stream's table is wrapped
//! in [`IndexedTable`], which finds the substrings a query's filters need
//! in `message` (`LIKE '%word%'`, `ILIKE`, `strpos(…) > 0`, `contains`,
//! `starts_with`, `ends_with`, `=`, through `lower()` and casts), and,
//! where a file's text index (see
//! [`weir_connectors::sinks::text_index`]) says a row group lacks one,
//! tells the Parquet scan not to read it — and drops files with no row
//! group left. The exact predicate still runs on what is read, so results
//! are the same with and without the index. EXPLAIN ANALYZE shows
//! `row_groups_pruned_text_index` and `files_pruned_text_index` on the scan.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Constraints, Result, ScalarValue, Statistics};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::ParquetSource;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Like, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::metrics::MetricBuilder;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weir_connectors::sinks::text_index::{needle_trigrams, TextIndex, COLUMN};

use super::bloom_probe::{self, BloomFilters, Lookup, TimeSpan};
use super::footer::footer;
use datafusion::execution::runtime_env::RuntimeEnv;

/// Bytes of text indexes kept in memory; past it the cache starts over.
const CACHE_BYTES: usize = 256 << 20;

/// A file's index by its path and size (`None`: it has none).
type Found = HashMap<(String, u64), Option<Arc<TextIndex>>>;

/// Text indexes of archive files, read from their footers once (archive
/// files are never rewritten: a path and size name one content), and the
/// bytes they hold.
#[derive(Default)]
pub struct TextIndexes {
    cache: Mutex<(Found, usize)>,
}

impl TextIndexes {
    fn cached(&self, key: &(String, u64)) -> Option<Option<Arc<TextIndex>>> {
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.0.get(key).cloned()
    }

    fn keep(&self, key: (String, u64), index: Option<Arc<TextIndex>>) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let size = index.as_ref().map_or(0, |i| i.size()) + 64;
        if c.1 + size > CACHE_BYTES {
            c.0.clear();
            c.1 = 0;
        }
        c.1 += size;
        c.0.insert(key, index);
    }

    /// The index of each file (`None`: the file has none, or its footer
    /// could not be read — it is then read whole).
    async fn of_files(
        &self,
        runtime: &RuntimeEnv,
        store: Arc<dyn object_store::ObjectStore>,
        files: Vec<object_store::ObjectMeta>,
    ) -> Found {
        let found = futures::stream::iter(files)
            .map(|meta| {
                let store = store.clone();
                async move {
                    let key = (meta.location.to_string(), meta.size);
                    if let Some(hit) = self.cached(&key) {
                        return (key, hit);
                    }
                    let index = footer(runtime, store.as_ref(), &meta)
                        .await
                        .ok()
                        .and_then(|md| TextIndex::of_file(&md))
                        .filter(|i| i.column == COLUMN)
                        .map(Arc::new);
                    self.keep(key.clone(), index.clone());
                    (key, index)
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        found.into_iter().collect()
    }
}

/// A stream's table whose scans use the files' text indexes.
#[derive(Debug)]
pub struct IndexedTable {
    inner: Arc<ListingTable>,
    indexes: Arc<TextIndexes>,
    blooms: Arc<BloomFilters>,
}

impl std::fmt::Debug for TextIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextIndexes")
    }
}

impl IndexedTable {
    pub fn new(
        inner: Arc<ListingTable>,
        indexes: Arc<TextIndexes>,
        blooms: Arc<BloomFilters>,
    ) -> IndexedTable {
        IndexedTable {
            inner,
            indexes,
            blooms,
        }
    }

    /// The scan for a needle query: the row groups and files the needles
    /// rule out skipped, and late materialisation (the filters' columns
    /// decoded first, the others only for the rows that pass — what makes
    /// a lookup read kilobytes of a row group instead of all of it; left
    /// off for other queries, where decoding twice costs more than it saves).
    async fn prune(
        &self,
        state: &dyn Session,
        plan: Arc<dyn ExecutionPlan>,
        needles: &[Vec<u32>],
        lookups: &[Lookup],
        span: Option<TimeSpan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(config) = scan_config(&plan) else {
            return Ok(plan);
        };
        let store = state.runtime_env().object_store(&config.object_store_url)?;
        let files: Vec<object_store::ObjectMeta> = config
            .file_groups
            .iter()
            .flat_map(|g| g.iter().map(|f| f.object_meta.clone()))
            .collect();
        let indexes = if needles.is_empty() {
            Found::new()
        } else {
            self.indexes
                .of_files(state.runtime_env(), store.clone(), files.clone())
                .await
        };
        let probes = if lookups.is_empty() {
            HashMap::new()
        } else {
            self.blooms
                .probe_files(state.runtime_env(), store, files, lookups, span.as_ref())
                .await
        };
        // A lookup is a needle where the files have bloom filters on its
        // column (the archive's `index`); other equalities (`service =
        // 'api'`) are read as plain scans.
        if needles.is_empty()
            && probes
                .values()
                .all(|p| p.as_ref().is_some_and(|p| p.probed == 0))
        {
            return Ok(plan);
        }
        let (mut row_groups_pruned, mut files_pruned) = (0, 0);
        let (mut bloom_probed, mut bloom_pruned, mut outside) = (0, 0, 0);
        let mut groups = Vec::with_capacity(config.file_groups.len());
        for g in &config.file_groups {
            let mut kept = Vec::with_capacity(g.len());
            for f in g.iter() {
                let key = (f.object_meta.location.to_string(), f.object_meta.size);
                let index = indexes.get(&key).cloned().flatten();
                let probe = probes.get(&key).and_then(Option::as_ref);
                let n = match (&index, probe) {
                    (_, Some(p)) => p.may_match.len(),
                    (Some(i), None) => i.row_groups.len(),
                    (None, None) => {
                        kept.push(f.clone());
                        continue;
                    }
                };
                bloom_probed += probe.map_or(0, |p| p.probed);
                let mut access = ParquetAccessPlan::new_all(n);
                for i in 0..n {
                    if probe.is_some_and(|p| p.outside.get(i).copied().unwrap_or(false)) {
                        access.skip(i);
                        outside += 1;
                    } else if index
                        .as_ref()
                        .is_some_and(|x| i < x.row_groups.len() && !x.may_match(i, needles))
                    {
                        access.skip(i);
                        row_groups_pruned += 1;
                    } else if probe.is_some_and(|p| !p.may_match[i]) {
                        access.skip(i);
                        bloom_pruned += 1;
                    }
                }
                if access.row_group_index_iter().next().is_none() {
                    files_pruned += 1;
                    continue;
                }
                let mut f = f.clone();
                // An access plan already there (none today) is kept.
                if f.extensions.get::<ParquetAccessPlan>().is_none() {
                    f.extensions.insert(access);
                }
                kept.push(f);
            }
            groups.push(FileGroup::new(kept));
        }
        let metrics = config.file_source.metrics();
        MetricBuilder::new(metrics)
            .global_counter("row_groups_pruned_text_index")
            .add(row_groups_pruned);
        MetricBuilder::new(metrics)
            .global_counter("files_pruned_text_index")
            .add(files_pruned);
        if !lookups.is_empty() {
            MetricBuilder::new(metrics)
                .global_counter("row_groups_bloom_probed")
                .add(bloom_probed);
            MetricBuilder::new(metrics)
                .global_counter("row_groups_pruned_bloom_probe")
                .add(bloom_pruned);
            MetricBuilder::new(metrics)
                .global_counter("row_groups_pruned_time_span")
                .add(outside);
        }
        // Every file probed: DataFusion's bloom pass would only read the
        // kept row groups' filters whole again.
        let probed_all = !lookups.is_empty() && probes.values().all(Option::is_some);
        let mut pruned = config.clone();
        pruned.file_groups = groups;
        if let Some(p) = config.file_source.downcast_ref::<ParquetSource>() {
            pruned.file_source = Arc::new(
                p.clone()
                    .with_pushdown_filters(true)
                    .with_reorder_filters(true)
                    .with_bloom_filter_on_read(!probed_all),
            );
        }
        let mut replacement =
            Some(DataSourceExec::from_data_source(pruned) as Arc<dyn ExecutionPlan>);
        let out = plan.transform_up(|node| {
            if node.downcast_ref::<DataSourceExec>().is_some() {
                if let Some(r) = replacement.take() {
                    return Ok(Transformed::yes(r));
                }
            }
            Ok(Transformed::no(node))
        })?;
        Ok(out.data)
    }
}

/// The Parquet scan's configuration in a table's scan plan.
fn scan_config(plan: &Arc<dyn ExecutionPlan>) -> Option<FileScanConfig> {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        return exec.data_source().downcast_ref::<FileScanConfig>().cloned();
    }
    plan.children().into_iter().find_map(scan_config)
}

#[async_trait]
impl TableProvider for IndexedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(Vec::as_slice))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let filters = args.filters().unwrap_or_default();
        let needles: Vec<Vec<u32>> = needles(filters, COLUMN)
            .iter()
            .filter_map(|n| needle_trigrams(n))
            .collect();
        let lookups = bloom_probe::lookups(filters);
        let lookup = !needles.is_empty() || !lookups.is_empty();
        let result = self.inner.scan_with_args(state, args).await?;
        if !lookup {
            return Ok(result);
        }
        let plan = self
            .prune(
                state,
                result.into_inner(),
                &needles,
                &lookups,
                bloom_probe::time_span(filters, weir_dsl::types::TIMESTAMP),
            )
            .await?;
        Ok(ScanResult::new(plan))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

/// The substrings `column` must contain for a row to pass every filter
/// (the conjuncts the index can answer; others add nothing).
pub fn needles(filters: &[Expr], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in filters {
        for c in split_conjunction(f) {
            needed(c, column, &mut out);
        }
    }
    out
}

fn needed(e: &Expr, column: &str, out: &mut Vec<String>) {
    match e {
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char,
            ..
        }) if is_column(expr, column) => {
            if let Some(p) = text(pattern) {
                out.extend(like_literals(&p, escape_char.unwrap_or('\\')));
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            match op {
                Operator::Eq => {
                    for (a, b) in [(left, right), (right, left)] {
                        if is_column(a, column) {
                            out.extend(text(b));
                        }
                    }
                }
                // strpos(column, 'x') > 0 (or >= 1)
                Operator::Gt | Operator::GtEq => {
                    let positive = match (op, literal_int(right)) {
                        (Operator::Gt, Some(n)) => n >= 0,
                        (Operator::GtEq, Some(n)) => n >= 1,
                        _ => false,
                    };
                    if let (true, Expr::ScalarFunction(f)) = (positive, left.as_ref()) {
                        if f.name() == "strpos" || f.name() == "instr" {
                            if let [hay, n] = f.args.as_slice() {
                                if is_column(hay, column) {
                                    out.extend(text(n));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Expr::ScalarFunction(f) if matches!(f.name(), "contains" | "starts_with" | "ends_with") => {
            if let [hay, n] = f.args.as_slice() {
                if is_column(hay, column) {
                    out.extend(text(n));
                }
            }
        }
        _ => {}
    }
}

/// Whether `e` is the column, possibly cast or lower-cased.
fn is_column(e: &Expr, column: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == column,
        Expr::Cast(c) => is_column(&c.expr, column),
        Expr::TryCast(c) => is_column(&c.expr, column),
        Expr::ScalarFunction(f) if f.name() == "lower" => {
            f.args.first().is_some_and(|a| is_column(a, column))
        }
        _ => false,
    }
}

fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Literal(ScalarValue::Dictionary(_, v), _) => {
            text(&Expr::Literal(v.as_ref().clone(), None))
        }
        Expr::Cast(c) => text(&c.expr),
        _ => None,
    }
}

fn literal_int(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int64(Some(n)) => Some(*n),
            ScalarValue::Int32(Some(n)) => Some(i64::from(*n)),
            _ => None,
        },
        Expr::Cast(c) => literal_int(&c.expr),
        _ => None,
    }
}

/// The literal runs of a `LIKE` pattern: what a match contains, between
/// its wildcards (`%`, `_`), with escapes undone.
fn like_literals(pattern: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(n) => run.push(n),
                None => run.push(c),
            }
        } else if c == '%' || c == '_' {
            if !run.is_empty() {
                out.push(std::mem::take(&mut run));
            }
        } else {
            run.push(c);
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit, SessionContext};

    fn of(sql_filter: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        let schema = datafusion::common::DFSchema::try_from(
            datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new(
                    "message",
                    datafusion::arrow::datatypes::DataType::Utf8,
                    true,
                ),
                datafusion::arrow::datatypes::Field::new(
                    "service",
                    datafusion::arrow::datatypes::DataType::Utf8,
                    true,
                ),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = ctx
            .parse_sql_expr(sql_filter, &schema)
            .unwrap_or_else(|e| panic!("{sql_filter}: {e}"));
        needles(&[e], "message")
    }

    #[test]
    fn the_substrings_every_match_contains_are_found() {
        assert_eq!(of("message LIKE '%time%out%'"), vec!["time", "out"]);
        assert_eq!(of("message ILIKE 'Disk_full%'"), vec!["Disk", "full"]);
        assert_eq!(of(r"message LIKE '%100\%%'"), vec!["100%"]);
        assert_eq!(
            of("strpos(lower(CAST(message AS VARCHAR)), 'reset') > 0 AND service = 'api'"),
            vec!["reset"]
        );
        assert_eq!(
            of("contains(message, 'refused') AND message = 'x y z'"),
            vec!["refused", "x y z"]
        );
        assert_eq!(of("starts_with(message, 'GET')"), vec!["GET"]);
    }

    /// Files with and without an index (written before it existed) in one
    /// table: the same rows as a plain scan, and the indexed row groups
    /// without the word are not read.
    #[tokio::test]
    async fn results_equal_a_plain_scan_and_files_without_an_index_are_read_whole() {
        use datafusion::arrow::array::{RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let schema = Arc::new(Schema::new(vec![Field::new(
            "message",
            DataType::Utf8,
            true,
        )]));
        let batch = |texts: Vec<String>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(texts))])
                .unwrap_or_else(|e| panic!("{e}"))
        };
        // Indexed: 300,000 rows (three row groups); the word only in the last.
        use weir_connectors::sinks::archive_file::{BloomColumns, FileWriter};
        let mut w =
            FileWriter::new(schema.clone(), &BloomColumns::Usual).unwrap_or_else(|e| panic!("{e}"));
        for chunk in 0..30 {
            let texts = (0..10_000)
                .map(|i| match (chunk, i) {
                    (29, 7) => "deadlock detected".to_string(),
                    _ => format!("request {i} served"),
                })
                .collect();
            w.write(&batch(texts)).unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = w.finish().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("a.parquet"), bytes).unwrap_or_else(|e| panic!("{e}"));
        // Without an index: plain Parquet, the word twice.
        crate::query::testing::write_parquet(
            &dir.path().join("b.parquet"),
            &batch(vec!["a DEADLOCK".into(), "fine".into(), "deadlock".into()]),
        );

        let ctx = SessionContext::new();
        let listing = Arc::new(crate::query::testing::parquet_folder(
            dir.path(),
            schema.clone(),
        ));
        ctx.register_table("plain", listing.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        ctx.register_table(
            "indexed",
            Arc::new(IndexedTable::new(listing, Arc::default(), Arc::default())),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let count = |sql: String| {
            let ctx = ctx.clone();
            async move { crate::query::testing::table(&ctx, &sql).await }
        };
        for filter in [
            "message LIKE '%deadlock%'",
            "message ILIKE '%DEADLOCK%'",
            "strpos(lower(message), 'deadlock') > 0",
            "message LIKE '%served%'",
            "message = 'deadlock detected'",
        ] {
            let plain = count(format!("SELECT count(*) FROM plain WHERE {filter}")).await;
            let indexed = count(format!("SELECT count(*) FROM indexed WHERE {filter}")).await;
            assert_eq!(plain, indexed, "{filter}");
        }
        assert!(
            count("SELECT count(*) FROM indexed WHERE message ILIKE '%DEADLOCK%'".into())
                .await
                .contains("| 3 ")
        );
        let plan = count(
            "EXPLAIN ANALYZE SELECT count(*) FROM indexed WHERE message LIKE '%deadlock%'".into(),
        )
        .await;
        assert!(plan.contains("row_groups_pruned_text_index=2"), "{plan}");
        let plan = count(
            "EXPLAIN ANALYZE SELECT count(*) FROM indexed WHERE message LIKE '%nowhere%'".into(),
        )
        .await;
        assert!(plan.contains("files_pruned_text_index=1"), "{plan}");
    }

    #[test]
    fn what_a_match_need_not_contain_is_not_a_needle() {
        for f in [
            "message NOT LIKE '%timeout%'",
            "message LIKE '%a%' OR message LIKE '%b%'",
            "strpos(message, 'x') = 0",
            "upper(message) LIKE '%STRASSE%'",
            "service LIKE '%api%'",
        ] {
            assert!(of(f).is_empty(), "{f}: {:?}", of(f));
        }
        let e = !col("message").like(lit("%deadlock%"));
        assert!(needles(&[e], "message").is_empty());
    }
}
