//! A user's scope as a row filter inside the plan. Every table a scoped
//! user queries is registered as a view of its stream with the filter
//! applied (no unfiltered table is registered under any name), so
//! sub-queries, joins, CTEs, `UNION`s and functions over `_raw` all read
//! filtered rows: the filter is part of the table, not of the SQL text.
//! A field the stream lacks reads as empty text, as in
//! [`crate::auth::Scope::admits`].

use crate::auth::Scope;
use arrow::datatypes::Schema;
use datafusion::logical_expr::{binary_expr, col, lit, Expr, Operator};
use weir_engine::alerting::MatchOp;

/// The filter for `scope` over a table with `schema`; `None` when the scope
/// admits every row.
pub fn filter(scope: &Scope, schema: &Schema) -> Option<Expr> {
    let mut conds = Vec::new();
    for m in &scope.matchers {
        if schema.field_with_name(&m.name).is_err() {
            // Every row has the field empty: the matcher holds for all or none.
            if m.matches_value(None) {
                continue;
            }
            return Some(lit(false));
        }
        // Quoted: the field's exact name, whatever its case. An absent
        // value is empty text; it is handled with IS NULL rather than
        // coalesce(), which would unpack dictionary columns row by row.
        let field = col(format!("\"{}\"", m.name));
        let empty_matches = m.matches_value(None);
        let value = match m.op {
            MatchOp::Equal | MatchOp::NotEqual => lit(m.value.clone()),
            MatchOp::Regex | MatchOp::NotRegex => lit(format!("^(?:{})$", m.value)),
        };
        let test = match m.op {
            MatchOp::Equal => field.clone().eq(value),
            MatchOp::NotEqual => field.clone().not_eq(value),
            MatchOp::Regex => binary_expr(field.clone(), Operator::RegexMatch, value),
            MatchOp::NotRegex => binary_expr(field.clone(), Operator::RegexNotMatch, value),
        };
        // Rows with the field present decide by `test`; rows without it
        // (null) as the empty text would.
        conds.push(if empty_matches {
            field.is_null().or(test)
        } else {
            field.is_not_null().and(test)
        });
    }
    conds.into_iter().reduce(Expr::and)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn missing_fields_decide_statically() {
        let schema = Schema::new(vec![Field::new("service", DataType::Utf8, true)]);
        let everything = Scope::everything();
        assert!(filter(&everything, &schema).is_none());
        let env = Scope::parse("environment=\"prod\"").unwrap();
        assert_eq!(filter(&env, &schema), Some(lit(false)));
        let not_env = Scope::parse("environment!=\"prod\"").unwrap();
        assert!(filter(&not_env, &schema).is_none());
        let svc = Scope::parse("service=\"checkout\"").unwrap();
        assert!(filter(&svc, &schema).is_some());
    }
}
