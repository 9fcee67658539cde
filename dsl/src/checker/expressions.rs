//! Checking expressions: names, types, operators, function calls (against
//! [`crate::functions`]), severities and where aggregates may appear.

use super::*;

impl Checker {
    pub(super) fn expect_bool(&mut self, e: &Expr, t: Type, what: &str) {
        if !matches!(t, Type::Bool | Type::Null) {
            self.push(
                Diagnostic::new(
                    ErrorKind::NotBoolean,
                    e.span,
                    format!("{what} must be true or false, this is {t}"),
                )
                .with_hint("compare it with something, e.g. `status >= 500`"),
            );
        }
    }

    /// Types an expression and returns it resolved. On error, reports and returns
    /// `Null` so that checking continues without cascades.
    pub(super) fn expr(&mut self, e: &Expr, schema: &Schema, ctx: Ctx) -> (Expr, Type) {
        let span = e.span;
        let same = |kind: ExprKind, t: Type| (Expr { kind, span }, t);
        match &e.kind {
            ExprKind::Field(name) => match schema.get(name) {
                Some(t) => (e.clone(), t),
                None => {
                    if severity::rank(name).is_some() && severity::WORDS.contains(&name.as_str()) {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::UnknownField,
                                span,
                                format!("`{name}` is a severity level, not a field"),
                            )
                            .with_hint(format!("compare it with severity: `severity >= {name}`")),
                        );
                    } else {
                        self.unknown_field(name, span, schema);
                    }
                    (e.clone(), Type::Null)
                }
            },
            ExprKind::Lit(l) => {
                let t = match l {
                    Literal::Str(_) => Type::String,
                    Literal::Int(_) => Type::Int,
                    Literal::Float(_) => Type::Float,
                    Literal::Bool(_) => Type::Bool,
                    Literal::Duration(_) => Type::Duration,
                    Literal::Severity(_) => Type::Severity,
                    Literal::Null => Type::Null,
                };
                (e.clone(), t)
            }
            ExprKind::List(items) => {
                let items = items.iter().map(|i| self.expr(i, schema, ctx).0).collect();
                same(ExprKind::List(items), Type::List)
            }
            ExprKind::Unary(op, inner) => {
                let (inner, t) = self.expr(inner, schema, ctx);
                let out = match op {
                    UnaryOp::Not => {
                        self.expect_bool(&inner, t, "the operand of `not`");
                        Type::Bool
                    }
                    UnaryOp::Neg => {
                        if !(t.is_numeric() || t == Type::Duration) {
                            self.push(Diagnostic::new(
                                ErrorKind::TypeMismatch,
                                inner.span,
                                format!("cannot negate a {t}"),
                            ));
                        }
                        t
                    }
                };
                same(ExprKind::Unary(*op, Box::new(inner)), out)
            }
            ExprKind::IsNull { expr, negated } => {
                let (inner, _) = self.expr(expr, schema, ctx);
                same(
                    ExprKind::IsNull {
                        expr: Box::new(inner),
                        negated: *negated,
                    },
                    Type::Bool,
                )
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, span, schema, ctx),
            ExprKind::Call { name, args } => self.call(name, args, span, schema, ctx),
        }
    }

    /// Resolves the right side of a comparison with a severity: bare words and
    /// strings become severity literals.
    pub(super) fn severity_operand(&mut self, e: &Expr, schema: &Schema) -> Option<Expr> {
        let word = match &e.kind {
            ExprKind::Field(n) if schema.get(n).is_none() => n,
            ExprKind::Lit(Literal::Str(s)) => s,
            _ => return None,
        };
        match severity::rank(word) {
            Some(r) => Some(Expr {
                kind: ExprKind::Lit(Literal::Severity(r)),
                span: e.span,
            }),
            None => {
                self.push(unknown_severity(word, e.span));
                Some(Expr {
                    kind: ExprKind::Lit(Literal::Null),
                    span: e.span,
                })
            }
        }
    }

    pub(super) fn binary(
        &mut self,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        span: Span,
        schema: &Schema,
        ctx: Ctx,
    ) -> (Expr, Type) {
        let (le, lt) = self.expr(l, schema, ctx);
        // Severity comparisons accept bare level words on the right.
        // An unknown field on the left was already reported: a severity word on
        // the right then only repeats the mistake.
        let left_unknown = lt == Type::Null && matches!(l.kind, ExprKind::Field(_));
        let (re, rt) = if (lt == Type::Severity || left_unknown)
            && (op.is_comparison() || matches!(op, BinaryOp::In | BinaryOp::NotIn))
        {
            match &r.kind {
                ExprKind::List(items) => {
                    let items: Vec<Expr> = items
                        .iter()
                        .map(|i| {
                            self.severity_operand(i, schema)
                                .unwrap_or_else(|| self.expr(i, schema, ctx).0)
                        })
                        .collect();
                    (
                        Expr {
                            kind: ExprKind::List(items),
                            span: r.span,
                        },
                        Type::List,
                    )
                }
                _ => match self.severity_operand(r, schema) {
                    Some(e) => (e, Type::Severity),
                    None => self.expr(r, schema, ctx),
                },
            }
        } else {
            self.expr(r, schema, ctx)
        };
        let mismatch = |cx: &mut Checker, hint: &str| {
            cx.push(
                Diagnostic::new(
                    ErrorKind::TypeMismatch,
                    span,
                    format!("cannot apply `{}` to {lt} and {rt}", op.symbol()),
                )
                .with_hint(hint),
            );
        };
        let out = match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_bool(&le, lt, &format!("the left side of `{}`", op.symbol()));
                self.expect_bool(&re, rt, &format!("the right side of `{}`", op.symbol()));
                Type::Bool
            }
            _ if op.is_comparison() => {
                if !comparable(lt, rt, &re) {
                    mismatch(
                        self,
                        "compare values of the same type; convert with to_int(), to_float() or to_string()",
                    );
                }
                Type::Bool
            }
            BinaryOp::Match | BinaryOp::NotMatch => {
                if !lt.is_textual() {
                    mismatch(self, "regex matching works on text fields");
                }
                match &re.kind {
                    ExprKind::Lit(Literal::Str(p)) => {
                        if let Err(err) = regex::Regex::new(p) {
                            self.push(
                                Diagnostic::new(ErrorKind::InvalidRegex, re.span, "invalid regex")
                                    .with_label(first_line(&err.to_string()))
                                    .with_hint(
                                        "the syntax is Rust's regex crate: https://docs.rs/regex",
                                    ),
                            );
                        }
                    }
                    _ => self.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            re.span,
                            "the right side of a regex match must be a string literal",
                        )
                        .with_hint("e.g. `message =~ \"timeout after \\\\d+ms\"`"),
                    ),
                }
                Type::Bool
            }
            BinaryOp::In | BinaryOp::NotIn => {
                match &re.kind {
                    ExprKind::List(items) => {
                        for i in items {
                            let it = self.literal_type(i);
                            if !comparable(lt, it, i) {
                                self.push(
                                    Diagnostic::new(
                                        ErrorKind::TypeMismatch,
                                        i.span,
                                        format!("list item is {it}, but the value is {lt}"),
                                    )
                                    .with_hint("every item of the list must have the type of the value left of `in`"),
                                );
                            }
                            if !matches!(i.kind, ExprKind::Lit(_)) {
                                self.push(Diagnostic::new(
                                    ErrorKind::TypeMismatch,
                                    i.span,
                                    "list items must be literal values",
                                ));
                            }
                        }
                    }
                    _ => self.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            re.span,
                            "`in` needs a list on its right",
                        )
                        .with_hint("e.g. `status in [500, 502, 503]`"),
                    ),
                }
                Type::Bool
            }
            BinaryOp::Contains => {
                if !(lt.is_textual() && rt.is_textual()) {
                    mismatch(self, "`contains` looks for text in text");
                }
                Type::Bool
            }
            _ => {
                // Arithmetic.
                use Type::*;
                match (op, lt, rt) {
                    (_, Int, Int) => Int,
                    (_, Int | Float | Null, Int | Float | Null) => Float,
                    (BinaryOp::Add | BinaryOp::Sub, Timestamp, Duration) => Timestamp,
                    (BinaryOp::Sub, Timestamp, Timestamp) => Duration,
                    (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
                    _ => {
                        mismatch(
                            self,
                            "arithmetic works on numbers, and on timestamps with durations",
                        );
                        Null
                    }
                }
            }
        };
        (
            Expr {
                kind: ExprKind::Binary(op, Box::new(le), Box::new(re)),
                span,
            },
            out,
        )
    }

    pub(super) fn literal_type(&self, e: &Expr) -> Type {
        match &e.kind {
            ExprKind::Lit(Literal::Str(_)) => Type::String,
            ExprKind::Lit(Literal::Int(_)) => Type::Int,
            ExprKind::Lit(Literal::Float(_)) => Type::Float,
            ExprKind::Lit(Literal::Bool(_)) => Type::Bool,
            ExprKind::Lit(Literal::Duration(_)) => Type::Duration,
            ExprKind::Lit(Literal::Severity(_)) => Type::Severity,
            _ => Type::Null,
        }
    }

    pub(super) fn call(
        &mut self,
        name: &Ident,
        args: &[Expr],
        span: Span,
        schema: &Schema,
        ctx: Ctx,
    ) -> (Expr, Type) {
        let Some(sig) = functions::lookup(&name.name) else {
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownFunction,
                    name.span,
                    format!("unknown function `{}`", name.name),
                )
                .with_suggestion(&name.name, functions::names())
                .or_hint("see docs/language.md for the functions"),
            );
            return (
                Expr {
                    kind: ExprKind::Call {
                        name: name.clone(),
                        args: args.to_vec(),
                    },
                    span,
                },
                Type::Null,
            );
        };
        if sig.aggregate && ctx != Ctx::Aggregate {
            self.push(
                Diagnostic::new(
                    ErrorKind::AggregateOutsideWindow,
                    span,
                    format!("aggregate `{}` can only be used inside a window", sig.name),
                )
                .with_hint(
                    "aggregate in a window: `| window tumbling 1m { n = count() }`, then use `n`",
                ),
            );
        }
        if !sig.arity_fits(args.len()) {
            self.push(
                Diagnostic::new(
                    ErrorKind::WrongArity,
                    span,
                    format!(
                        "`{}` takes {} argument{}, found {}",
                        sig.name,
                        sig.arity_text(),
                        if sig.params.len() == 1 && !sig.variadic {
                            ""
                        } else {
                            "s"
                        },
                        args.len()
                    ),
                )
                .with_hint(sig.doc),
            );
        }
        // Arguments of an aggregate are row expressions.
        let arg_ctx = if sig.aggregate { Ctx::Row } else { ctx };
        let mut typed = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            let (a2, t) = self.expr(a, schema, arg_ctx);
            let param = sig
                .params
                .get(i)
                .or(if sig.variadic {
                    sig.params.last()
                } else {
                    None
                })
                .copied();
            if let Some(p) = param {
                if !p.accepts(t) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            a.span,
                            format!(
                                "argument {} of `{}` must be {}, found {t}",
                                i + 1,
                                sig.name,
                                p.describe()
                            ),
                        )
                        .with_hint(sig.doc),
                    );
                } else if matches!(p, Param::StrLit | Param::PathLit)
                    && !matches!(a2.kind, ExprKind::Lit(Literal::Str(_)))
                {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidArgument,
                            a.span,
                            format!(
                                "argument {} of `{}` must be a string literal",
                                i + 1,
                                sig.name
                            ),
                        )
                        .with_hint(sig.doc),
                    );
                } else if p == Param::Fraction {
                    let q = match a2.kind {
                        ExprKind::Lit(Literal::Float(f)) => Some(f),
                        ExprKind::Lit(Literal::Int(i)) => Some(i as f64),
                        _ => None,
                    };
                    if !q.is_some_and(|q| (0.0..=1.0).contains(&q)) {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::InvalidQuantile,
                                a.span,
                                "a quantile must be a number literal between 0 and 1",
                            )
                            .with_hint("e.g. quantile(latency_ms, 0.99) for the 99th percentile"),
                        );
                    }
                }
            }
            typed.push(a2);
            types.push(t);
        }
        if sig.name == "cidr_match" {
            if let Some(ExprKind::Lit(Literal::Str(net))) = typed.get(1).map(|e| &e.kind) {
                if parse_cidr(net).is_none() {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidArgument,
                            typed[1].span,
                            format!("`{net}` is not a network"),
                        )
                        .with_hint("write a network as address/prefix, e.g. \"10.0.0.0/8\" or \"2001:db8::/32\""),
                    );
                }
            }
        }
        if sig.name == "parse_timestamp" {
            let lit = |i: usize| match typed.get(i).map(|e| &e.kind) {
                Some(ExprKind::Lit(Literal::Str(s))) => Some((s.clone(), typed[i].span)),
                _ => None,
            };
            if let Some((format, at)) = lit(1) {
                if let Err(e) = weir_formats::timestamp::TimestampParser::new(Some(&format), None) {
                    self.push(
                        Diagnostic::new(ErrorKind::InvalidArgument, at, e).with_hint(
                            "e.g. \"%Y-%m-%d %H:%M:%S%.f\", or \"auto\" to detect the common forms",
                        ),
                    );
                }
            }
            if let Some((zone, at)) = lit(2) {
                if let Err(e) = weir_formats::timestamp::Zone::parse(&zone) {
                    self.push(Diagnostic::new(ErrorKind::InvalidArgument, at, e));
                }
            }
        }
        let out = sig.result_type(&types);
        (
            Expr {
                kind: ExprKind::Call {
                    name: name.clone(),
                    args: typed,
                },
                span,
            },
            out,
        )
    }
}

fn comparable(l: Type, r: Type, r_expr: &Expr) -> bool {
    use Type::*;
    match (l, r) {
        (Null, _) | (_, Null) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Severity, Severity) => true,
        (Severity, _) | (_, Severity) => false,
        (a, b) if a.is_textual() && b.is_textual() => true,
        // `timestamp > "2026-01-01T00:00:00Z"`
        (Timestamp, String) => matches!(r_expr.kind, ExprKind::Lit(Literal::Str(_))),
        (a, b) => a == b && a != List,
    }
}

#[cfg(test)]
mod tests {
    use crate::ast::{ExprKind, Literal, StageKind};
    use crate::ErrorKind;

    fn check_where(cond: &str) -> Result<crate::CheckedProgram, Vec<crate::Diagnostic>> {
        crate::compile(&format!(
            "source s = stdin() format json fields {{ code: int }}\npipeline p {{\n  from s\n  | where {cond}\n}}\n"
        ))
    }

    fn kinds(cond: &str) -> Vec<ErrorKind> {
        check_where(cond)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|d| d.kind)
            .collect()
    }

    #[test]
    fn types_names_and_calls_are_checked() {
        assert!(check_where("code >= 500 and service == \"api\"").is_ok());
        assert_eq!(kinds("code == \"x\""), [ErrorKind::TypeMismatch]);
        assert_eq!(kinds("code + 1"), [ErrorKind::NotBoolean]);
        assert_eq!(
            kinds("lowr(service) == \"a\""),
            [ErrorKind::UnknownFunction]
        );
        assert_eq!(kinds("len(service, 2) > 1"), [ErrorKind::WrongArity]);
        assert_eq!(kinds("count() > 1"), [ErrorKind::AggregateOutsideWindow]);
        assert_eq!(kinds("severity >= loud"), [ErrorKind::UnknownSeverity]);
    }

    #[test]
    fn severity_words_become_literals() {
        let p = check_where("severity >= warn").unwrap_or_else(|d| panic!("{d:#?}"));
        let StageKind::Where(e) = &p.pipelines[0].pipeline.stages[0].kind else {
            panic!()
        };
        let ExprKind::Binary(_, _, right) = &e.kind else {
            panic!("{e:?}")
        };
        assert!(
            matches!(&right.kind, ExprKind::Lit(Literal::Severity(_))),
            "{right:?}"
        );
    }
}
