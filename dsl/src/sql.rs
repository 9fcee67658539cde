//! Rules-language expressions as SQL over an archived stream, for everything
//! that hands a condition to the archive: the console's search box and live
//! tail filter (`severity >= warn and message contains "timeout"` becomes
//! `CAST("severity" AS VARCHAR) IN ('WARN', 'ERROR', 'FATAL') AND
//! strpos("message", 'timeout') > 0`) and an alert's evidence query (the
//! pipeline's conditions, the window's bounds and key, its aggregates). The
//! expression must have been checked; what has no SQL form is an error
//! with its place.

use crate::ast::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use crate::plan::{Aggregate, AggregatePlan};
use crate::severity::LEVELS;
use crate::span::Span;

/// SQL text, or the place and reason it has none.
pub type Out = Result<String, (Span, String)>;

/// `name` as a SQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `s` as a SQL string literal.
pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A checked expression as SQL, or where and why it has none.
pub fn sql(e: &Expr) -> Out {
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

/// A window aggregate as a SQL select item named like its field
/// (`count(*) AS "errors"`); `None` for evidence samples, which have no SQL.
pub fn aggregate(a: &AggregatePlan) -> Option<Out> {
    let arg = || match &a.arg {
        Some(e) => sql(e),
        None => Ok("*".to_string()),
    };
    let call = match a.func {
        Aggregate::Count => Ok("count(*)".to_string()),
        Aggregate::CountDistinct => arg().map(|x| format!("count(DISTINCT {x})")),
        Aggregate::ApproxCountDistinct => arg().map(|x| format!("approx_distinct({x})")),
        Aggregate::Sum => arg().map(|x| format!("sum({x})")),
        Aggregate::Min => arg().map(|x| format!("min({x})")),
        Aggregate::Max => arg().map(|x| format!("max({x})")),
        Aggregate::Avg => arg().map(|x| format!("avg({x})")),
        Aggregate::Quantile(q) => {
            arg().map(|x| format!("approx_percentile_cont({q:?}) WITHIN GROUP (ORDER BY {x})"))
        }
        Aggregate::Samples(_) => return None,
    };
    Some(call.map(|c| format!("{c} AS {}", quote_ident(&a.name))))
}
