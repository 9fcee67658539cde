//! What a query must pass before it is planned: a size check that keeps deep
//! expression trees (a 10,000-term `1+1+…` or `OR` chain) away from the
//! recursive planner, and a read-only check that refuses every statement
//! that would write or change state (`COPY … TO`, `INSERT`, `CREATE …`,
//! `SET`, …) — the archive is only read through SQL.

use super::QueryError;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;

/// Operators (`+`, `AND`, `=`, `NOT`, …) one query may hold. Each can add a
/// level to an expression tree that DataFusion plans and evaluates
/// recursively.
pub const MAX_OPERATORS: usize = 1_000;
/// Parentheses nested in one query.
pub const MAX_NESTING: usize = 64;
/// The longest query text, in bytes.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// Refuses a query whose text could plan into an expression tree deeper
/// than the planner's stack can hold. Counts without recursion: operators
/// and parenthesis depth outside string literals, quoted names and comments.
pub fn check_size(sql: &str) -> Result<(), QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::TooComplex(format!(
            "the query is {} bytes long, more than the limit of {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    let b = sql.as_bytes();
    let (mut i, mut ops, mut depth) = (0, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(QueryError::TooComplex(format!(
                        "parentheses nest deeper than {MAX_NESTING} levels (at byte {i})"
                    )));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'=' | b'<' | b'>' | b'|' | b'^' | b'&' => ops += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &sql[start..i];
                if ["and", "or", "not"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    ops += 1;
                }
                continue;
            }
            _ => {}
        }
        if ops > MAX_OPERATORS {
            return Err(QueryError::TooComplex(format!(
                "the query has more than {MAX_OPERATORS} operators; \
                 use `col IN (…)` instead of long OR chains, or split it into several queries"
            )));
        }
        i += 1;
    }
    Ok(())
}

/// Plans `sql` in `ctx`, refusing DDL (`CREATE`, `DROP`), DML (`INSERT`,
/// `COPY … TO`) and statements (`SET`, transactions) before anything runs.
pub async fn read_only(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    let plan = ctx.state().create_logical_plan(sql).await?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| QueryError::NotReadOnly(e.strip_backtrace()))?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_operator_chains_and_deep_nesting_are_refused() {
        let chain = |n: usize, op: &str| {
            let terms = vec!["1"; n];
            format!("SELECT {}", terms.join(op))
        };
        assert!(check_size(&chain(500, "+")).is_ok());
        assert!(matches!(
            check_size(&chain(10_000, "+")),
            Err(QueryError::TooComplex(_))
        ));
        assert!(matches!(
            check_size(&chain(10_000, " OR ")),
            Err(QueryError::TooComplex(_))
        ));
        let nested = format!("SELECT {}1{}", "(".repeat(100), ")".repeat(100));
        assert!(matches!(
            check_size(&nested),
            Err(QueryError::TooComplex(_))
        ));
    }

    #[test]
    fn operators_in_strings_names_and_comments_do_not_count() {
        let text = "+".repeat(5_000);
        let sql = format!(
            "SELECT '{text}', \"{text}\" FROM t -- {text}\n /* {text} */ WHERE a = 1 OR b = 2"
        );
        assert!(check_size(&sql).is_ok());
        // A word containing `or` is not an operator.
        assert!(check_size(&format!("SELECT {}", vec!["orange"; 2_000].join(", "))).is_ok());
    }
}
