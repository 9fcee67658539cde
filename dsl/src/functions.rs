//! The built-in functions: their names, arities and result types. The checker uses
//! this table; the engine implements each entry.

use crate::types::Type;

/// Which argument types a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Any,
    Text,
    Numeric,
    Timestamp,
    Duration,
    Ip,
    /// A string literal (a column name, a CIDR).
    StrLit,
    /// A string literal naming a file on the server (sandboxed for rules
    /// submitted over the API).
    PathLit,
    /// A float literal between 0 and 1.
    Fraction,
}

impl Param {
    pub fn describe(self) -> &'static str {
        match self {
            Param::Any => "any value",
            Param::Text => "a string",
            Param::Numeric => "a number",
            Param::Timestamp => "a timestamp",
            Param::Duration => "a duration",
            Param::Ip => "an ip or string",
            Param::StrLit => "a string literal",
            Param::PathLit => "a file path string literal",
            Param::Fraction => "a number literal between 0 and 1",
        }
    }

    pub fn accepts(self, ty: Type) -> bool {
        match self {
            Param::Any => true,
            Param::Text | Param::StrLit | Param::PathLit => ty.is_textual(),
            Param::Numeric | Param::Fraction => ty.is_numeric(),
            Param::Timestamp => matches!(ty, Type::Timestamp | Type::Null),
            Param::Duration => matches!(ty, Type::Duration | Type::Null),
            Param::Ip => matches!(ty, Type::Ip | Type::String | Type::Null),
        }
    }
}

/// How a function's result type is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    Fixed(Type),
    /// The type of the first argument.
    SameAsFirst,
    /// int for int input, float otherwise.
    NumericOfFirst,
}

#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub name: &'static str,
    pub params: &'static [Param],
    /// The last parameter may repeat.
    pub variadic: bool,
    /// How many trailing parameters may be left out.
    pub optional: usize,
    pub returns: Returns,
    pub aggregate: bool,
    pub doc: &'static str,
}

impl Signature {
    pub fn result_type(&self, args: &[Type]) -> Type {
        match self.returns {
            Returns::Fixed(t) => t,
            Returns::SameAsFirst => args.first().copied().unwrap_or(Type::Null),
            Returns::NumericOfFirst => match args.first() {
                Some(Type::Int) => Type::Int,
                _ => Type::Float,
            },
        }
    }

    pub fn arity_text(&self) -> String {
        let n = self.params.len();
        if self.variadic {
            format!("at least {n}")
        } else if self.optional > 0 {
            format!("{} to {n}", n - self.optional)
        } else {
            n.to_string()
        }
    }

    /// Whether a call with `n` arguments has the right number.
    pub fn arity_fits(&self, n: usize) -> bool {
        let all = self.params.len();
        if self.variadic {
            n >= all
        } else {
            (all - self.optional.min(all)..=all).contains(&n)
        }
    }
}

use Param::*;
use Returns::*;

const fn scalar(
    name: &'static str,
    params: &'static [Param],
    returns: Returns,
    doc: &'static str,
) -> Signature {
    Signature {
        name,
        params,
        variadic: false,
        optional: 0,
        returns,
        aggregate: false,
        doc,
    }
}

const fn agg(
    name: &'static str,
    params: &'static [Param],
    returns: Returns,
    doc: &'static str,
) -> Signature {
    Signature {
        name,
        params,
        variadic: false,
        optional: 0,
        returns,
        aggregate: true,
        doc,
    }
}

/// Every built-in function.
pub const FUNCTIONS: &[Signature] = &[
    scalar(
        "lower",
        &[Text],
        Fixed(Type::String),
        "lower-cases a string",
    ),
    scalar(
        "upper",
        &[Text],
        Fixed(Type::String),
        "upper-cases a string",
    ),
    scalar(
        "len",
        &[Text],
        Fixed(Type::Int),
        "length of a string in bytes",
    ),
    Signature {
        name: "concat",
        params: &[Any],
        variadic: true,
        optional: 0,
        returns: Fixed(Type::String),
        aggregate: false,
        doc: "joins values as text",
    },
    Signature {
        name: "coalesce",
        params: &[Any],
        variadic: true,
        optional: 0,
        returns: SameAsFirst,
        aggregate: false,
        doc: "the first non-null argument",
    },
    scalar(
        "lookup",
        &[PathLit, Any, StrLit],
        Fixed(Type::String),
        "lookup(\"table.csv\", key, \"column\"): a value from a static CSV table",
    ),
    scalar(
        "json_get",
        &[Text, StrLit],
        Fixed(Type::String),
        "json_get(_raw, \"a.b\"): a value from a JSON text by dotted path, as text",
    ),
    Signature {
        name: "parse_timestamp",
        params: &[Text, StrLit, StrLit],
        variadic: false,
        optional: 1,
        returns: Fixed(Type::Timestamp),
        aggregate: false,
        doc: "parse_timestamp(text, \"%d/%b/%Y:%H:%M:%S %z\" [, \"Europe/Berlin\"]): a time from text in a strftime format (\"auto\" detects RFC 3339, syslog, Common Log Format, ctime, epoch...), zone-less times in the zone given (UTC by default); null when it does not parse",
    },
    scalar("now", &[], Fixed(Type::Timestamp), "the current time"),
    scalar(
        "ago",
        &[Duration],
        Fixed(Type::Timestamp),
        "now minus a duration",
    ),
    scalar(
        "hour",
        &[Timestamp],
        Fixed(Type::Int),
        "hour of day (0-23, UTC)",
    ),
    scalar(
        "minute",
        &[Timestamp],
        Fixed(Type::Int),
        "minute of hour (0-59)",
    ),
    scalar(
        "weekday",
        &[Timestamp],
        Fixed(Type::Int),
        "day of week, 0 = Sunday (UTC)",
    ),
    scalar(
        "to_int",
        &[Any],
        Fixed(Type::Int),
        "converts to int (null if it cannot)",
    ),
    scalar(
        "to_float",
        &[Any],
        Fixed(Type::Float),
        "converts to float (null if it cannot)",
    ),
    scalar("to_string", &[Any], Fixed(Type::String), "converts to text"),
    scalar(
        "cidr_match",
        &[Ip, StrLit],
        Fixed(Type::Bool),
        "cidr_match(ip, \"10.0.0.0/8\"): whether an address is in a network",
    ),
    agg(
        "count",
        &[],
        Fixed(Type::Int),
        "number of events in the window",
    ),
    agg(
        "count_distinct",
        &[Any],
        Fixed(Type::Int),
        "number of distinct non-null values",
    ),
    agg(
        "approx_count_distinct",
        &[Any],
        Fixed(Type::Int),
        "approximate number of distinct non-null values: exact up to 256, then a HyperLogLog in 4 KiB per key and window (about 1.6 % error)",
    ),
    agg("sum", &[Numeric], NumericOfFirst, "sum of the values"),
    agg("min", &[Any], SameAsFirst, "smallest value"),
    agg("max", &[Any], SameAsFirst, "largest value"),
    agg("avg", &[Numeric], Fixed(Type::Float), "mean of the values"),
    agg(
        "quantile",
        &[Numeric, Fraction],
        Fixed(Type::Float),
        "quantile(x, 0.99): approximate quantile (1% relative error)",
    ),
    agg(
        "p50",
        &[Numeric],
        Fixed(Type::Float),
        "median (quantile 0.5)",
    ),
    agg("p95", &[Numeric], Fixed(Type::Float), "95th percentile"),
    agg("p99", &[Numeric], Fixed(Type::Float), "99th percentile"),
];

pub fn lookup(name: &str) -> Option<&'static Signature> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}
