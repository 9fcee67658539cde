//! A `where` condition of the rules language as a SQL condition over an
//! archived stream, so the console's search box and the tail's filter take
//! the same syntax: `severity >= warn and message contains "timeout"`
//! becomes `"severity" IN ('WARN', 'ERROR', 'FATAL') AND strpos("message",
//! 'timeout') > 0`. The condition is parsed and type-checked by the rules
//! checker against the stream's columns first, so its mistakes come back
//! with their column in the condition's text; the translation itself is
//! [`weir_dsl::sql`], shared with alert evidence.

use arrow::datatypes::{DataType, Schema as ArrowSchema};
pub use weir_dsl::sql::quote_ident;
use weir_dsl::sql::sql;
use weir_dsl::types::{Schema, Type};
use weir_dsl::{Diagnostic, ErrorKind};

/// The rules-language view of a table: its columns with their types
/// (`severity` as a severity, text as strings, ...). Columns of types the
/// language has no name for are left out.
pub fn schema_of(table: &ArrowSchema) -> Schema {
    let mut s = Schema::default();
    for f in table.fields() {
        let base = match f.data_type() {
            DataType::Dictionary(_, v) => v.as_ref(),
            t => t,
        };
        let ty = match base {
            _ if f.name() == "severity" => Type::Severity,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::String,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Type::Int,
            DataType::Float32 | DataType::Float64 => Type::Float,
            DataType::Boolean => Type::Bool,
            DataType::Timestamp(..) => Type::Timestamp,
            _ => continue,
        };
        s.push(f.name(), ty);
    }
    s
}

/// The SQL condition for `text` over a table with `table`'s columns, or
/// the problems with their place in `text`.
pub fn translate(text: &str, table: &ArrowSchema) -> Result<String, Vec<Diagnostic>> {
    let e = weir_dsl::parse_condition(text)?;
    let e = weir_dsl::check_condition(&e, &schema_of(table))?;
    sql(&e).map_err(|(span, why)| {
        vec![Diagnostic::new(ErrorKind::NotAllowed, span, why)
            .with_hint("search runs SQL over the archive; use the SQL mode for this")]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn table() -> ArrowSchema {
        ArrowSchema::new(vec![
            Field::new("service", DataType::Utf8View, true),
            Field::new(
                "severity",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("message", DataType::Utf8, true),
            Field::new("status", DataType::Int64, true),
        ])
    }

    #[test]
    fn conditions_become_sql() {
        let t = table();
        assert_eq!(
            translate(r#"severity >= warn and message contains "time'out""#, &t).unwrap(),
            "((CAST(\"severity\" AS VARCHAR) IN ('WARN', 'ERROR', 'FATAL')) AND (strpos(\"message\", 'time''out') > 0))"
        );
        assert_eq!(
            translate(r#"service in ["a", "b"] or not status < 500"#, &t).unwrap(),
            "((\"service\" IN ('a', 'b')) OR (NOT (\"status\" < 500)))"
        );
        assert_eq!(
            translate("severity < warn", &t).unwrap(),
            "(CAST(\"severity\" AS VARCHAR) IN ('TRACE', 'DEBUG', 'INFO'))"
        );
    }

    #[test]
    fn mistakes_keep_their_place() {
        let d = translate("servce == \"a\"", &table()).unwrap_err();
        assert_eq!(d[0].span.start, 0);
        let d = translate("status == 1 and hostname == \"x\"", &table()).unwrap_err();
        assert_eq!(d[0].span.start, 16);
        let d = translate("cidr_match(service, \"10.0.0.0/8\")", &table()).unwrap_err();
        assert!(
            d[0].message.contains("cidr_match") || d[0].message.contains("ip"),
            "{d:?}"
        );
    }
}
