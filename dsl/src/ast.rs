//! The syntax tree of a `.rules` file. Every node keeps the [`Span`] it came from so
//! the checker and the engine can point at the offending text.

use crate::span::Span;
use serde::Serialize;

/// A name as written, with its place in the text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A parsed `.rules` file: declarations in the order they appear.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Program {
    pub sources: Vec<SourceDecl>,
    pub outputs: Vec<OutputDecl>,
    pub archives: Vec<ArchiveDecl>,
    pub pipelines: Vec<Pipeline>,
}

/// `source NAME = KIND(args) [format F] [fields { .. }]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceDecl {
    pub name: Ident,
    pub connector: Connector,
    pub format: Option<FormatSpec>,
    pub fields: Vec<FieldDecl>,
    /// `timestamp_format "%d/%b/%Y:%H:%M:%S %z"`: how `timestamp` is written
    /// (detected when absent).
    pub timestamp_format: Option<(String, Span)>,
    /// `timezone "Europe/Berlin"`: the zone of times written without one
    /// (UTC when absent).
    pub timezone: Option<(String, Span)>,
    pub span: Span,
}

/// `output NAME = KIND(args)`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputDecl {
    pub name: Ident,
    pub connector: Connector,
    pub span: Span,
}

impl OutputDecl {
    /// A built-in output (`stdout`) that rules use without declaring it.
    pub fn builtin(kind: &str) -> OutputDecl {
        let ident = Ident {
            name: kind.to_string(),
            span: Span::default(),
        };
        OutputDecl {
            name: ident.clone(),
            connector: Connector {
                kind: ident,
                args: Vec::new(),
                span: Span::default(),
            },
            span: Span::default(),
        }
    }
}

/// `KIND(name: value, ...)`: what a source or output connects to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connector {
    pub kind: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

impl Connector {
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arg {
    pub name: Ident,
    pub value: ArgValue,
    pub span: Span,
}

/// A connector argument value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ArgValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Milliseconds.
    Duration(u64),
    /// Bytes.
    Size(u64),
    Ident(String),
    List(Vec<ArgValue>),
    Null,
}

impl ArgValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            ArgValue::Str(_) => "string",
            ArgValue::Int(_) => "int",
            ArgValue::Float(_) => "float",
            ArgValue::Bool(_) => "bool",
            ArgValue::Duration(_) => "duration",
            ArgValue::Size(_) => "size",
            ArgValue::Ident(_) => "name",
            ArgValue::List(_) => "list",
            ArgValue::Null => "null",
        }
    }

    /// A string or a list's strings (a `StrOrList` argument); nothing for
    /// another value.
    pub fn strings(&self) -> Vec<String> {
        match self {
            ArgValue::Str(s) => vec![s.clone()],
            ArgValue::List(items) => items
                .iter()
                .filter_map(|v| match v {
                    ArgValue::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// How a source's raw lines become fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Format {
    Json,
    Logfmt,
    Plain,
    /// A regex with named captures; each capture becomes a field.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatSpec {
    /// `None` when the name was not a known format (the checker reports it).
    pub format: Option<Format>,
    pub name: String,
    pub span: Span,
}

/// `name: type` in a `fields { }` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDecl {
    pub name: Ident,
    pub ty: Ident,
}

/// `archive SOURCE [to "url"] [partition by hour|day] [roll at 128MB] [roll every 5m]
/// [raw full|rest|none] [index (COLUMN, …)|none]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveDecl {
    pub source: Ident,
    pub url: Option<(String, Span)>,
    pub partition: Option<Ident>,
    /// What of the original line `_raw` keeps in the archive: `rest` (the
    /// default: a JSON line's undeclared fields), `full` or `none`.
    pub raw: Option<Ident>,
    pub roll_size: Option<u64>,
    /// Milliseconds.
    pub roll_every: Option<u64>,
    /// The text columns that get a bloom filter per row group; `None`: the
    /// usual ones (ids, addresses, hosts).
    pub index: Option<ArchiveIndex>,
    pub span: Span,
}

/// `index (COLUMN, …)` or `index none`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveIndex {
    /// The columns named (empty for `index none`).
    pub columns: Vec<Ident>,
    /// The word after `index` when it is not a list (only `none` is valid).
    pub word: Option<Ident>,
    pub span: Span,
}

/// `pipeline NAME { from SOURCE | stage | stage ... }`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    pub name: Ident,
    pub from: Ident,
    pub stages: Vec<Stage>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub kind: StageKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StageKind {
    Where(Expr),
    Set(Vec<Assignment>),
    Rename(Vec<(Ident, Ident)>),
    Drop(Vec<Ident>),
    Parse {
        field: Ident,
        format: FormatSpec,
        fields: Vec<FieldDecl>,
    },
    Geoip {
        field: Ident,
        database: (String, Span),
        prefix: Option<Ident>,
    },
    Window(WindowSpec),
    Alert(AlertSpec),
    To(Ident),
    /// `repartition by KEYS`: every event with the same keys goes on in one
    /// process (through a Kafka topic keyed by them; see
    /// [`crate::repartition`]).
    Repartition(Vec<Ident>),
    /// A stage keyword the grammar does not know (reported by the checker).
    Unknown(Ident),
}

/// `name = expr`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub name: Ident,
    pub value: Expr,
}

/// A duration as written, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DurationLit {
    pub millis: u64,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum WindowKind {
    Tumbling {
        size: DurationLit,
    },
    Sliding {
        size: DurationLit,
        every: DurationLit,
    },
    Session {
        gap: DurationLit,
    },
}

/// `window KIND [by f, g] [lateness D] { name = agg(..), ... }`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub group_by: Vec<Ident>,
    pub lateness: Option<DurationLit>,
    /// `max_keys N`: keys open at once; events of further keys are left out
    /// and counted. `None` is the engine's default.
    pub max_keys: Option<u64>,
    pub aggregates: Vec<Assignment>,
}

/// `alert "NAME" when COND [for D] [resolve after D] [severity S]
/// [labels { k: "v" }] [annotations { summary: "{{field}} ..." }] [notify [a, b]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertSpec {
    pub name: String,
    pub name_span: Span,
    pub condition: Expr,
    pub severity: Option<Ident>,
    pub labels: Vec<(Ident, String)>,
    pub notify: Vec<Ident>,
    /// How long the condition must hold (in window time) before the alert fires.
    pub for_duration: Option<DurationLit>,
    /// How long the condition must be false before a firing alert resolves.
    pub resolve_after: Option<DurationLit>,
    /// Templates (`{{field}}` takes a window value or label) for the notification.
    pub annotations: Vec<(Ident, String)>,
    /// `evidence N`: sample events of the key and window each alert carries
    /// (the checker's default when absent; 0 for none), and where N was written.
    pub evidence: Option<(u64, Span)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    Field(String),
    Lit(Literal),
    List(Vec<Expr>),
    Call { name: Ident, args: Vec<Expr> },
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    IsNull { expr: Box<Expr>, negated: bool },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Milliseconds.
    Duration(i64),
    /// A severity level, by rank (see [`crate::severity`]). Produced by the checker
    /// from bare words such as `warn` compared with a severity.
    Severity(u8),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NotMatch,
    In,
    NotIn,
    Contains,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Match => "=~",
            BinaryOp::NotMatch => "!~",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Contains => "contains",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}
