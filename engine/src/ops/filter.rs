//! `| where COND`: keeps the rows for which the condition is true (null counts as
//! false), with [`crate::rows::filter_batch`].

use super::Operator;
use crate::error::Result;
use crate::expr::PhysicalExpr;
use crate::rows::filter_batch;
use arrow::array::Array;
use arrow::record_batch::RecordBatch;

pub struct Filter {
    pub predicate: PhysicalExpr,
}

impl Filter {
    /// `| where COND`.
    pub fn from_stage(cond: &weir_dsl::ast::Expr, s: &mut super::StageContext) -> Result<Filter> {
        Ok(Filter {
            predicate: s.compile(cond)?,
        })
    }
}

impl Operator for Filter {
    fn name(&self) -> &'static str {
        "where"
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mask = self.predicate.eval_predicate(&batch)?;
        if mask.true_count() == batch.num_rows() && mask.null_count() == 0 {
            return Ok(vec![batch]);
        }
        let out = filter_batch(&batch, &mask)?;
        Ok(if out.num_rows() == 0 {
            vec![]
        } else {
            vec![out]
        })
    }
}
