//! The types of the `.rules` language and the schemas the checker tracks through a
//! pipeline.

use serde::Serialize;
use std::fmt;

/// The type of a field or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    String,
    Int,
    Float,
    Bool,
    Timestamp,
    Duration,
    Ip,
    /// A log level; stored as its canonical upper-case name, ordered by rank.
    Severity,
    /// A list literal (only on the right of `in`).
    List,
    /// The type of `null`: fits anywhere.
    Null,
}

impl Type {
    /// Parses a type name as written in a `fields { }` block.
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "string" | "str" => Type::String,
            "int" | "integer" | "long" => Type::Int,
            "float" | "double" | "number" => Type::Float,
            "bool" | "boolean" => Type::Bool,
            "timestamp" | "time" => Type::Timestamp,
            "duration" => Type::Duration,
            "ip" => Type::Ip,
            "severity" => Type::Severity,
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 8] = [
        "string",
        "int",
        "float",
        "bool",
        "timestamp",
        "duration",
        "ip",
        "severity",
    ];

    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Null)
    }

    /// Types held as text (comparable with string literals).
    pub fn is_textual(self) -> bool {
        matches!(self, Type::String | Type::Ip | Type::Severity | Type::Null)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Type::String => "string",
            Type::Int => "int",
            Type::Float => "float",
            Type::Bool => "bool",
            Type::Timestamp => "timestamp",
            Type::Duration => "duration",
            Type::Ip => "ip",
            Type::Severity => "severity",
            Type::List => "list",
            Type::Null => "null",
        };
        f.write_str(s)
    }
}

/// A named, typed field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDef {
    pub name: String,
    pub ty: Type,
}

/// The ordered fields an operator sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schema {
    pub fields: Vec<FieldDef>,
}

/// Name of the event-time field every source has.
pub const TIMESTAMP: &str = weir_formats::timestamp::FIELD;
/// Name of the source partition (Kafka partition; 0 elsewhere) every source has.
pub const PARTITION: &str = "_partition";
/// Name of the source sequence number (line number, Kafka offset) every source has.
pub const OFFSET: &str = "_offset";
/// Name of the original line, kept so no field is ever lost.
pub const RAW: &str = "_raw";
/// A repartitioned row's source partition, offset and line, as it travels
/// through the repartition topic (see [`crate::plan::RepartitionRole`]).
pub const ORIGIN_PARTITION: &str = "_origin_partition";
pub const ORIGIN_OFFSET: &str = "_origin_offset";
pub const ORIGIN_RAW: &str = "_origin_raw";
/// Window bounds in window output.
pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";
/// Window output field holding sample events (a JSON array) when an alert on
/// the window asks for evidence.
pub const EVIDENCE: &str = "_evidence";
/// Sample events an alert carries when its rule does not say (`evidence N`).
pub const DEFAULT_EVIDENCE: usize = 3;
/// The most sample events an alert may ask for.
pub const MAX_EVIDENCE: u64 = 50;

/// Fields every source has, whether or not its events carry them (missing ones are
/// null; a missing timestamp is the arrival time).
pub const CORE_FIELDS: [(&str, Type); 9] = [
    (TIMESTAMP, Type::Timestamp),
    ("service", Type::String),
    ("environment", Type::String),
    ("host", Type::String),
    ("severity", Type::Severity),
    ("message", Type::String),
    (PARTITION, Type::Int),
    (OFFSET, Type::Int),
    (RAW, Type::String),
];

impl Schema {
    pub fn core() -> Schema {
        let mut s = Schema::default();
        for (name, ty) in CORE_FIELDS {
            s.push(name, ty);
        }
        s
    }

    pub fn get(&self, name: &str) -> Option<Type> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.ty)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Adds a field or replaces the type of an existing one (keeping its position).
    pub fn push(&mut self, name: &str, ty: Type) {
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(f) => f.ty = ty,
            None => self.fields.push(FieldDef {
                name: name.to_string(),
                ty,
            }),
        }
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|f| f.name != name);
        before != self.fields.len()
    }

    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        self.remove(to);
        match self.fields.iter_mut().find(|f| f.name == from) {
            Some(f) => {
                f.name = to.to_string();
                true
            }
            None => false,
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}
