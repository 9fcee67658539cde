//! A user's scope as a row filter inside the plan. Every table a scoped
//! user queries is registered as a view of its stream with the filter
//! applied (no unfiltered table is registered under any name), so
//! sub-queries, joins, CTEs, `UNION`s and functions over `_raw` all read
//! filtered rows: the filter is part of the table, not of the SQL text.
//! A field the stream lacks reads as empty text, as in
//! [`crate::auth::Scope::admits`].
//!
//! When the files' Parquet statistics prove that every row is inside the
//! scope (a user scoped to `environment="production"` on a stream of
//! production logs), no filter is added at all ([`holds_for_all`]), so such
//! a scope costs nothing.

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

/// What a row group's statistics say of one text column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnStats {
    pub rows: u64,
    /// Null (absent) values; none when unknown.
    pub nulls: Option<u64>,
    /// Lower and upper bounds of the values, and whether each is exact.
    pub min: Option<(String, bool)>,
    pub max: Option<(String, bool)>,
}

/// Whether `m` holds for every row a row group with these statistics
/// holds (`None`: the file has no such column, so every row reads it
/// empty). False when the statistics cannot tell.
pub fn holds_for_all(m: &weir_engine::alerting::Matcher, stats: Option<&ColumnStats>) -> bool {
    let Some(st) = stats else {
        return m.matches_value(None);
    };
    let Some(nulls) = st.nulls else { return false };
    if nulls > 0 && !m.matches_value(None) {
        return false;
    }
    if nulls >= st.rows {
        return true;
    }
    let (Some((min, min_exact)), Some((max, max_exact))) = (&st.min, &st.max) else {
        return false;
    };
    let single = *min_exact && *max_exact && min == max;
    match m.op {
        MatchOp::Equal => single && *min == m.value,
        // Bounds stay bounds when truncated.
        MatchOp::NotEqual => m.value < *min || m.value > *max,
        MatchOp::Regex | MatchOp::NotRegex => single && m.matches_value(Some(min)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn statistics_prove_a_scope_or_leave_the_filter() {
        let m = |t: &str| Scope::parse(t).unwrap().matchers[0].clone();
        let st = |min: &str, max: &str, nulls: u64| ColumnStats {
            rows: 100,
            nulls: Some(nulls),
            min: Some((min.into(), true)),
            max: Some((max.into(), true)),
        };
        let prod = st("production", "production", 0);
        assert!(holds_for_all(&m("environment=\"production\""), Some(&prod)));
        assert!(!holds_for_all(
            &m("environment=\"production\""),
            Some(&st("production", "staging", 0))
        ));
        assert!(!holds_for_all(
            &m("environment=\"production\""),
            Some(&st("production", "production", 1))
        ));
        assert!(holds_for_all(
            &m("environment!=\"nowhere\""),
            Some(&st("production", "staging", 3))
        ));
        assert!(!holds_for_all(
            &m("environment!=\"qa\""),
            Some(&st("production", "staging", 0))
        ));
        assert!(holds_for_all(
            &m("service=~\"check.*\""),
            Some(&st("checkout", "checkout", 0))
        ));
        assert!(!holds_for_all(
            &m("service=~\"check.*\""),
            Some(&st("checkout", "search", 0))
        ));
        // No column: every row is empty there.
        assert!(!holds_for_all(&m("service=\"a\""), None));
        assert!(holds_for_all(&m("service!=\"a\""), None));
        // Unknown null count: cannot tell.
        let unknown = ColumnStats {
            nulls: None,
            ..prod
        };
        assert!(!holds_for_all(
            &m("environment=\"production\""),
            Some(&unknown)
        ));
    }

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
