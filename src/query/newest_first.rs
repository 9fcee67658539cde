//! "The latest N" reads the newest files first. For a top-k by event time
//! (`ORDER BY timestamp DESC LIMIT N`, the search view's and the search
//! API's page), [`NewestFirst`] deals the scan's files to its partitions
//! newest first (archive paths sort by date, hour, then offsets). The sort
//! stays; what changes is that its threshold (DataFusion's TopK dynamic
//! filter, pushed into the Parquet scan) is set by the newest events at
//! once, so the files and row groups older than the N-th newest event are
//! skipped by their time statistics instead of read.
//!
//! [`scan`] and [`rescan`] find and replace a plan's files for the other
//! readers that pick files themselves (the time-ordered reader).

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;
use weir_dsl::types::TIMESTAMP;

/// See the module doc.
#[derive(Debug, Default)]
pub struct NewestFirst;

impl PhysicalOptimizerRule for NewestFirst {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let first = sort.expr().first();
            let newest_first = sort.fetch().is_some()
                && first.options.descending
                && first
                    .expr
                    .downcast_ref::<Column>()
                    .is_some_and(|c| c.name() == TIMESTAMP);
            if !newest_first {
                return Ok(Transformed::no(node));
            }
            match reorder(sort.input()) {
                Some(input) => Ok(Transformed::yes(replace_children_if_necessary(
                    node.clone(),
                    vec![input],
                )?)),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "weir_newest_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The plan with its Parquet scan's files dealt newest first to its
/// partitions; `None` when there is no such scan or one file.
fn reorder(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let config = scan(plan)?;
    let mut files: Vec<_> = config
        .file_groups
        .iter()
        .flat_map(|g| g.iter().cloned())
        .collect();
    if files.len() < 2 {
        return None;
    }
    files.sort_by(|a, b| b.object_meta.location.cmp(&a.object_meta.location));
    let n = config.file_groups.len().max(1);
    let mut groups = vec![Vec::new(); n];
    for (i, f) in files.into_iter().enumerate() {
        groups[i % n].push(f);
    }
    rescan(plan, groups.into_iter().map(FileGroup::new).collect())
}

/// The plan's Parquet scan, found through the nodes that keep rows as they
/// are (filters, projections, repartitioning).
pub fn scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        return exec.data_source().downcast_ref::<FileScanConfig>();
    }
    match plan.children()[..] {
        [child] if passes(plan) => scan(child),
        _ => None,
    }
}

/// The plan with its Parquet scan reading `groups` (one output partition
/// each) instead of its own files; `None` when there is no such scan.
pub fn rescan(
    plan: &Arc<dyn ExecutionPlan>,
    groups: Vec<FileGroup>,
) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        let mut config = exec.data_source().downcast_ref::<FileScanConfig>()?.clone();
        config.file_groups = groups;
        return Some(DataSourceExec::from_data_source(config));
    }
    let [child] = plan.children()[..] else {
        return None;
    };
    if !passes(plan) {
        return None;
    }
    let child = rescan(child, groups)?;
    replace_children_if_necessary(plan.clone(), vec![child]).ok()
}

fn passes(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<FilterExec>().is_some()
        || plan.downcast_ref::<ProjectionExec>().is_some()
        || plan.downcast_ref::<RepartitionExec>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{RecordBatch, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Four hourly files: a top-k by time gets them dealt newest first to
    /// its two partitions; other queries keep the listing's order.
    #[tokio::test]
    async fn a_top_k_by_time_reads_the_newest_files_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let schema = Arc::new(Schema::new(vec![Field::new(
            TIMESTAMP,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]));
        for hour in 0..4i64 {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(
                    TimestampMicrosecondArray::from(vec![hour * 3_600_000_000])
                        .with_timezone("UTC"),
                )],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            crate::query::testing::write_parquet(
                &dir.path().join(format!("h{hour}.parquet")),
                &batch,
            );
        }
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(NewestFirst))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let table = crate::query::testing::parquet_folder(dir.path(), schema);
        ctx.register_table("app", Arc::new(table))
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move { crate::query::testing::table(&ctx, &format!("EXPLAIN {sql}")).await }
        };
        let order = |text: &str| {
            let groups = text.split("file_groups={").nth(1).unwrap_or_default();
            let groups = groups.split('}').next().unwrap_or_default().to_string();
            ["h0", "h1", "h2", "h3"]
                .iter()
                .filter_map(|h| groups.find(h).map(|at| (at, *h)))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_values()
                .collect::<Vec<_>>()
        };
        let top = plan("SELECT * FROM app ORDER BY timestamp DESC LIMIT 1").await;
        assert_eq!(order(&top), vec!["h3", "h1", "h2", "h0"], "{top}");
        let oldest = plan("SELECT * FROM app ORDER BY timestamp ASC LIMIT 1").await;
        assert_eq!(order(&oldest), vec!["h0", "h1", "h2", "h3"], "{oldest}");
    }
}
