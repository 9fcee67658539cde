//! A `where` condition of the rules language as a SQL condition over an
//! archived stream, so the console's search box and the tail's filter take
//! the same syntax: `severity >= warn and message contains "timeout"`
//! becomes `"severity" IN ('WARN', 'ERROR', 'FATAL') AND strpos("message",
//! 'timeout') > 0`. The condition is parsed and type-checked by the rules
//! checker against the stream's columns first, so its mistakes come back
//! with their column in the condition's text.

use arrow::datatypes::{DataType, Schema as ArrowSchema};
use weir_dsl::ast::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use weir_dsl::severity::LEVELS;
use weir_dsl::types::{Schema, Type};
use weir_dsl::{Diagnostic, ErrorKind, Span};

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

type Out = Result<String, (Span, String)>;

/// `name` as a SQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sql(e: &Expr) -> Out {
    Ok(match &e.kind {
        ExprKind::Field(name) => quote_ident(name),
        ExprKind::Lit(l) => literal(l, e.span)?,
        ExprKind::List(items) => {
            let parts: Result<Vec<String>, _> = items.iter().map(sql).collect();
            format!("({})", parts?.join(", "))
        }
        ExprKind::Unary(UnaryOp::Not, a) => format!("(NOT {})", sql(a)?),
        ExprKind::Unary(UnaryOp::Neg, a) => format!("(-{})", sql(a)?),
        ExprKind::IsNull { expr, negated } => format!(
            "({} IS {}NULL)",
            sql(expr)?,
            if *negated { "NOT " } else { "" }
        ),
        ExprKind::Binary(op, a, b) => binary(*op, a, b)?,
        ExprKind::Call { name, args } => call(&name.name, args, e.span)?,
    })
}

fn literal(l: &Literal, span: Span) -> Out {
    Ok(match l {
        Literal::Str(s) => quote_str(s),
        Literal::Int(i) => i.to_string(),
        Literal::Float(f) => format!("{f:?}"),
        Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Literal::Null => "NULL".to_string(),
        Literal::Duration(ms) => format!("INTERVAL '{ms} milliseconds'"),
        Literal::Severity(rank) => quote_str(
            LEVELS
                .get(usize::from(*rank))
                .ok_or((span, "no such severity".to_string()))?,
        ),
    })
}

/// The levels `op rank` selects (`>= WARN`: WARN, ERROR, FATAL).
fn levels(op: BinaryOp, rank: u8) -> Option<Vec<&'static str>> {
    let keep = |r: u8| match op {
        BinaryOp::Eq => r == rank,
        BinaryOp::Ne => r != rank,
        BinaryOp::Lt => r < rank,
        BinaryOp::Le => r <= rank,
        BinaryOp::Gt => r > rank,
        BinaryOp::Ge => r >= rank,
        _ => false,
    };
    matches!(
        op,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
    )
    .then(|| {
        LEVELS
            .iter()
            .enumerate()
            .filter(|(r, _)| u8::try_from(*r).is_ok_and(keep))
            .map(|(_, l)| *l)
            .collect()
    })
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        o => o,
    }
}

fn binary(op: BinaryOp, a: &Expr, b: &Expr) -> Out {
    // Severities compare by rank: as the set of level names.
    let sev = |e: &Expr| match e.kind {
        ExprKind::Lit(Literal::Severity(r)) => Some(r),
        _ => None,
    };
    let ranked = match (sev(a), sev(b)) {
        (None, Some(r)) => Some((a, op, r)),
        (Some(r), None) => Some((b, flip(op), r)),
        _ => None,
    };
    if let Some((side, op, rank)) = ranked {
        if let Some(names) = levels(op, rank) {
            let list: Vec<String> = names.iter().map(|n| quote_str(n)).collect();
            return Ok(if list.is_empty() {
                "FALSE".to_string()
            } else {
                format!("(CAST({} AS VARCHAR) IN ({}))", sql(side)?, list.join(", "))
            });
        }
    }
    let (l, r) = (sql(a)?, sql(b)?);
    let infix = |s: &str| Ok(format!("({l} {s} {r})"));
    match op {
        BinaryOp::Or => infix("OR"),
        BinaryOp::And => infix("AND"),
        BinaryOp::Eq => infix("="),
        BinaryOp::Ne => infix("<>"),
        BinaryOp::Lt => infix("<"),
        BinaryOp::Le => infix("<="),
        BinaryOp::Gt => infix(">"),
        BinaryOp::Ge => infix(">="),
        BinaryOp::Match => infix("~"),
        BinaryOp::NotMatch => infix("!~"),
        BinaryOp::In => infix("IN"),
        BinaryOp::NotIn => infix("NOT IN"),
        BinaryOp::Contains => Ok(format!("(strpos({l}, {r}) > 0)")),
        BinaryOp::Add => infix("+"),
        BinaryOp::Sub => infix("-"),
        BinaryOp::Mul => infix("*"),
        BinaryOp::Div => infix("/"),
        BinaryOp::Rem => infix("%"),
    }
}

fn call(name: &str, args: &[Expr], span: Span) -> Out {
    let a: Vec<String> = args.iter().map(sql).collect::<Result<_, _>>()?;
    let arg = |i: usize| a.get(i).cloned().unwrap_or_else(|| "NULL".into());
    Ok(match name {
        "lower" | "upper" | "concat" | "coalesce" | "now" => format!("{name}({})", a.join(", ")),
        "len" => format!("character_length({})", arg(0)),
        "json_get" => format!("json_get({}, {})", arg(0), arg(1)),
        "ago" => format!("(now() - {})", arg(0)),
        "hour" | "minute" => format!("date_part('{name}', {})", arg(0)),
        "weekday" => format!("date_part('dow', {})", arg(0)),
        "to_int" => format!("TRY_CAST({} AS BIGINT)", arg(0)),
        "to_float" => format!("TRY_CAST({} AS DOUBLE)", arg(0)),
        "to_string" => format!("CAST({} AS VARCHAR)", arg(0)),
        other => return Err((span, format!("`{other}` is not available in search"))),
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
