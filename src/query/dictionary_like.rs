//! `LIKE` on dictionary-encoded text, once per distinct text.
//!
//! Text columns the archive files hold dictionary-encoded are read as
//! `Dictionary(Int32, Utf8)` (see [`dictionary`](super::dictionary)). Type
//! coercion casts them to text for `LIKE`, which unpacks every row;
//! [`DictionaryLike`] drops that cast, and Arrow's kernel matches each
//! distinct text of the batch's dictionary once and maps the answers to the
//! rows.

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, Like, LogicalPlan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use weir_connectors::sinks::archive_file::dictionary_text;

/// Drops the cast of dictionary-encoded text in `LIKE`; see the module doc.
#[derive(Debug, Default)]
pub struct DictionaryLike;

impl OptimizerRule for DictionaryLike {
    fn name(&self) -> &str {
        "weir_dictionary_like"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !matches!(plan, LogicalPlan::Filter(_) | LogicalPlan::Projection(_)) {
            return Ok(Transformed::no(plan));
        }
        let Some(input) = plan.inputs().first().map(|i| i.schema().clone()) else {
            return Ok(Transformed::no(plan));
        };
        plan.map_expressions(|e| e.transform_up(|e| uncast_like(e, &input)))
    }
}

/// `CAST(col AS text) LIKE 'p'` as `col LIKE 'p'` when `col` is dictionary
/// text (Arrow's `LIKE` takes a dictionary and a text pattern).
fn uncast_like(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Like(like) = &e else {
        return Ok(Transformed::no(e));
    };
    let Expr::Cast(Cast { expr: inner, field }) = like.expr.as_ref() else {
        return Ok(Transformed::no(e));
    };
    let text_pattern = matches!(
        like.pattern.as_ref(),
        Expr::Literal(datafusion::common::ScalarValue::Utf8(Some(_)), _)
    );
    if !text_pattern
        || field.data_type() != &DataType::Utf8
        || !inner.get_type(schema).is_ok_and(|t| t == dictionary_text())
    {
        return Ok(Transformed::no(e));
    }
    Ok(Transformed::yes(Expr::Like(Like {
        expr: inner.clone(),
        ..like.clone()
    })))
}
