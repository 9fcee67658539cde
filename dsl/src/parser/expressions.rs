//! Expressions, with operator precedence from pest's Pratt parser.

use super::literals::{parse_duration, unquote};
use super::*;
use std::sync::OnceLock;

pub(super) fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::or_op, Assoc::Left))
            .op(Op::infix(Rule::and_op, Assoc::Left))
            .op(Op::prefix(Rule::not_op))
            .op(Op::infix(Rule::eq, Assoc::Left)
                | Op::infix(Rule::ne, Assoc::Left)
                | Op::infix(Rule::lt, Assoc::Left)
                | Op::infix(Rule::le, Assoc::Left)
                | Op::infix(Rule::gt, Assoc::Left)
                | Op::infix(Rule::ge, Assoc::Left)
                | Op::infix(Rule::re_match, Assoc::Left)
                | Op::infix(Rule::re_not_match, Assoc::Left)
                | Op::infix(Rule::matches_op, Assoc::Left)
                | Op::infix(Rule::in_op, Assoc::Left)
                | Op::infix(Rule::not_in_op, Assoc::Left)
                | Op::infix(Rule::contains_op, Assoc::Left))
            .op(Op::postfix(Rule::is_null) | Op::postfix(Rule::is_not_null))
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::rem, Assoc::Left))
            .op(Op::prefix(Rule::neg))
    })
}

pub(super) fn expr(pair: Pair<'_, Rule>, base: usize) -> Expr {
    pratt()
        .map_primary(|p| primary(p, base))
        .map_prefix(|op, rhs| {
            let span = span_of(&op, base).join(rhs.span);
            let u = if op.as_rule() == Rule::not_op {
                UnaryOp::Not
            } else {
                UnaryOp::Neg
            };
            Expr {
                kind: ExprKind::Unary(u, Box::new(rhs)),
                span,
            }
        })
        .map_postfix(|lhs, op| {
            let span = lhs.span.join(span_of(&op, base));
            Expr {
                kind: ExprKind::IsNull {
                    expr: Box::new(lhs),
                    negated: op.as_rule() == Rule::is_not_null,
                },
                span,
            }
        })
        .map_infix(|lhs, op, rhs| {
            let span = lhs.span.join(rhs.span);
            let b = match op.as_rule() {
                Rule::or_op => BinaryOp::Or,
                Rule::and_op => BinaryOp::And,
                Rule::eq => BinaryOp::Eq,
                Rule::ne => BinaryOp::Ne,
                Rule::lt => BinaryOp::Lt,
                Rule::le => BinaryOp::Le,
                Rule::gt => BinaryOp::Gt,
                Rule::ge => BinaryOp::Ge,
                Rule::re_match | Rule::matches_op => BinaryOp::Match,
                Rule::re_not_match => BinaryOp::NotMatch,
                Rule::in_op => BinaryOp::In,
                Rule::not_in_op => BinaryOp::NotIn,
                Rule::contains_op => BinaryOp::Contains,
                Rule::add => BinaryOp::Add,
                Rule::sub => BinaryOp::Sub,
                Rule::mul => BinaryOp::Mul,
                Rule::div => BinaryOp::Div,
                _ => BinaryOp::Rem,
            };
            Expr {
                kind: ExprKind::Binary(b, Box::new(lhs), Box::new(rhs)),
                span,
            }
        })
        .parse(pair.into_inner())
}

pub(super) fn primary(pair: Pair<'_, Rule>, base: usize) -> Expr {
    let span = span_of(&pair, base);
    let s = pair.as_str();
    let kind = match pair.as_rule() {
        Rule::expr => return expr(pair, base),
        Rule::field => ExprKind::Field(s.to_string()),
        Rule::string => ExprKind::Lit(Literal::Str(unquote(s))),
        Rule::int => s
            .parse()
            .map(|v| ExprKind::Lit(Literal::Int(v)))
            .unwrap_or(ExprKind::Lit(Literal::Null)),
        Rule::float => s
            .parse()
            .map(|v| ExprKind::Lit(Literal::Float(v)))
            .unwrap_or(ExprKind::Lit(Literal::Null)),
        Rule::boolean => ExprKind::Lit(Literal::Bool(s == "true")),
        Rule::null => ExprKind::Lit(Literal::Null),
        Rule::duration => ExprKind::Lit(Literal::Duration(parse_duration(s) as i64)),
        Rule::size => ExprKind::Lit(Literal::Int(parse_size(s) as i64)),
        Rule::list => ExprKind::List(pair.into_inner().map(|e| expr(e, base)).collect()),
        Rule::call => {
            let mut inner = pair.into_inner();
            let name = inner.next().map(|p| ident(p, base)).unwrap_or(Ident {
                name: String::new(),
                span,
            });
            ExprKind::Call {
                name,
                args: inner.map(|e| expr(e, base)).collect(),
            }
        }
        _ => ExprKind::Lit(Literal::Null),
    };
    Expr { kind, span }
}

#[cfg(test)]
mod tests {
    use crate::ast::*;
    use crate::parse;

    #[test]
    fn arithmetic_binds_tighter_than_comparison() {
        let p = parse("pipeline p { from a | where x + 1 * 2 > 3 or not y is null }")
            .unwrap_or_else(|d| panic!("{d:?}"));
        let StageKind::Where(e) = &p.pipelines[0].stages[0].kind else {
            panic!()
        };
        let ExprKind::Binary(BinaryOp::Or, l, r) = &e.kind else {
            panic!("{e:?}")
        };
        assert!(matches!(l.kind, ExprKind::Binary(BinaryOp::Gt, _, _)));
        assert!(matches!(r.kind, ExprKind::Unary(UnaryOp::Not, _)));
    }

    #[test]
    fn calls_lists_and_literals() {
        let p = parse(r#"pipeline p { from a | where status in [500, 503] and lower(service) == "api" and latency > 1.5 }"#)
            .unwrap_or_else(|d| panic!("{d:?}"));
        let StageKind::Where(e) = &p.pipelines[0].stages[0].kind else {
            panic!()
        };
        let text = format!("{e:?}");
        assert!(text.contains("In"), "{text}");
        assert!(text.contains("lower"), "{text}");
        assert!(text.contains("Float(1.5)"), "{text}");
    }
}
