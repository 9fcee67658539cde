//! The engine's implementations of the language's scalar functions, and the
//! files rules read: static lookup tables (`lookup("teams.csv", key,
//! "column")`) and GeoIP databases (`geoip FIELD using "city.mmdb"`).

use crate::error::{EngineError, Result};
use crate::expr::{text, CompileContext, Value};
use crate::ops::geoip::GeoDb;
use crate::schema::TZ;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::kernels::temporal::{date_part, DatePart};
use arrow::compute::{cast, is_not_null};
use arrow::datatypes::DataType;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_dsl::ast::{Expr, ExprKind, Ident, Literal};
use weir_dsl::checker::parse_cidr;
use weir_dsl::Type;

/// A function evaluated over whole columns.
pub trait ScalarFunction: Send + Sync + Debug {
    fn call(&self, args: &[Value], rows: usize) -> Result<Value>;
}

/// Lookup tables loaded from CSV, shared by every expression of a program.
#[derive(Debug, Default)]
pub struct TableCache {
    base_dir: PathBuf,
    tables: HashMap<PathBuf, Arc<CsvTable>>,
    geo: HashMap<PathBuf, Arc<GeoDb>>,
}

impl TableCache {
    /// Relative table paths are resolved against `base_dir` (the folder of the
    /// `.rules` file).
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        TableCache {
            base_dir: base_dir.into(),
            tables: HashMap::new(),
            geo: HashMap::new(),
        }
    }

    /// Relative paths are relative to the `.rules` file's folder.
    fn resolve(&self, path: &str) -> PathBuf {
        if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            self.base_dir.join(path)
        }
    }

    /// Opens (once per program) the GeoIP database a `geoip` stage names.
    pub fn geoip(&mut self, path: &str, at: weir_dsl::Span) -> Result<Arc<GeoDb>> {
        let full = self.resolve(path);
        if let Some(db) = self.geo.get(&full) {
            return Ok(db.clone());
        }
        let db = Arc::new(GeoDb::open(&full).map_err(|e| {
            EngineError::plan_hint(
                at,
                format!("cannot open GeoIP database {}: {e}", full.display()),
                "geoip reads MaxMind-format (.mmdb) files such as GeoLite2-City.mmdb; relative paths are relative to the .rules file",
            )
        })?);
        self.geo.insert(full, db.clone());
        Ok(db)
    }

    fn load(&mut self, path: &str, at: &Expr) -> Result<Arc<CsvTable>> {
        let full = self.resolve(path);
        if let Some(t) = self.tables.get(&full) {
            return Ok(t.clone());
        }
        let table = Arc::new(CsvTable::read(&full).map_err(|e| {
            EngineError::plan_hint(
                at.span,
                format!("cannot read lookup table {}: {e}", full.display()),
                "lookup tables are CSV files with a header row; relative paths are relative to the .rules file",
            )
        })?);
        self.tables.insert(full, table.clone());
        Ok(table)
    }
}

/// A CSV file indexed by its first column.
#[derive(Debug)]
pub struct CsvTable {
    columns: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

impl CsvTable {
    pub fn read(path: &Path) -> std::result::Result<CsvTable, String> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| e.to_string())?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if columns.is_empty() {
            return Err("the file has no header row".into());
        }
        let mut rows = HashMap::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| format!("row {}: {e}", i + 2))?;
            let values: Vec<String> = rec.iter().map(|v| v.trim().to_string()).collect();
            if let Some(key) = values.first() {
                rows.insert(key.clone(), values);
            }
        }
        Ok(CsvTable { columns, rows })
    }
}

#[derive(Debug)]
struct Lookup {
    table: Arc<CsvTable>,
    column: usize,
}

impl ScalarFunction for Lookup {
    fn call(&self, args: &[Value], rows: usize) -> Result<Value> {
        let key = as_text(arg(args, 1)?, rows)?;
        let keys = text(&key)?;
        let mut b = StringBuilder::with_capacity(rows, rows * 8);
        for k in keys.iter() {
            b.append_option(
                k.and_then(|k| self.table.rows.get(k))
                    .and_then(|r| r.get(self.column)),
            );
        }
        Ok(Value::Array(Arc::new(b.finish())))
    }
}

/// Casts its only argument to an Arrow type (nulls where it cannot).
#[derive(Debug)]
pub struct CastTo(pub DataType);

impl ScalarFunction for CastTo {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        let target = self.0.clone();
        arg(args, 0)?.clone().map(move |a| Ok(cast(a, &target)?))
    }
}

fn arg(args: &[Value], i: usize) -> Result<&Value> {
    args.get(i)
        .ok_or_else(|| EngineError::Internal(format!("missing argument {}", i + 1)))
}

fn as_text(v: &Value, rows: usize) -> Result<ArrayRef> {
    let a = v.clone().into_array(rows)?;
    Ok(if a.data_type() == &DataType::Utf8 {
        a
    } else {
        cast(&a, &DataType::Utf8)?
    })
}

/// Applies `f` to each non-null string.
#[derive(Debug)]
struct MapText(fn(&str) -> String);

impl ScalarFunction for MapText {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        let f = self.0;
        arg(args, 0)?.clone().map(|a| {
            let s = text(a)?;
            let out: StringArray = s.iter().map(|v| v.map(f)).collect();
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

#[derive(Debug)]
struct Len;

impl ScalarFunction for Len {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        arg(args, 0)?.clone().map(|a| {
            let l = arrow::compute::kernels::length::length(a)?;
            Ok(cast(&l, &DataType::Int64)?)
        })
    }
}

#[derive(Debug)]
struct Concat;

impl ScalarFunction for Concat {
    fn call(&self, args: &[Value], rows: usize) -> Result<Value> {
        let cols: Vec<ArrayRef> = args
            .iter()
            .map(|a| as_text(a, rows))
            .collect::<Result<_>>()?;
        let strs: Vec<&StringArray> = cols.iter().map(text).collect::<Result<_>>()?;
        let mut b = StringBuilder::with_capacity(rows, rows * 16);
        let mut buf = String::new();
        for i in 0..rows {
            buf.clear();
            for s in &strs {
                if s.is_valid(i) {
                    buf.push_str(s.value(i));
                }
            }
            b.append_value(&buf);
        }
        Ok(Value::Array(Arc::new(b.finish())))
    }
}

#[derive(Debug)]
struct Coalesce;

impl ScalarFunction for Coalesce {
    fn call(&self, args: &[Value], rows: usize) -> Result<Value> {
        let mut iter = args.iter();
        let first = iter
            .next()
            .ok_or_else(|| EngineError::Internal("coalesce needs arguments".into()))?;
        let mut acc = first.clone().into_array(rows)?;
        for next in iter {
            let next = next.clone().into_array(rows)?;
            let next = if next.data_type() == acc.data_type() {
                next
            } else {
                cast(&next, acc.data_type())?
            };
            let mask = is_not_null(&acc)?;
            acc = arrow::compute::kernels::zip::zip(&mask, &acc, &next)?;
        }
        Ok(Value::Array(acc))
    }
}

#[derive(Debug)]
struct Now {
    minus_arg: bool,
}

impl ScalarFunction for Now {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        let now = chrono::Utc::now().timestamp_micros();
        let minus = if self.minus_arg {
            match arg(args, 0)? {
                Value::Scalar(a) | Value::Array(a) if !a.is_empty() => a
                    .as_primitive_opt::<arrow::datatypes::DurationMicrosecondType>()
                    .map(|d| d.value(0))
                    .unwrap_or(0),
                _ => 0,
            }
        } else {
            0
        };
        let out = TimestampMicrosecondArray::from(vec![now - minus]).with_timezone(TZ);
        Ok(Value::Scalar(Arc::new(out)))
    }
}

#[derive(Debug)]
struct Part(DatePart);

impl ScalarFunction for Part {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        let part = self.0;
        arg(args, 0)?.clone().map(move |a| {
            let p = date_part(a.as_ref(), part)?;
            Ok(cast(&p, &DataType::Int64)?)
        })
    }
}

/// `parse_timestamp(text, "FORMAT" [, "ZONE"])`: null where the text does
/// not parse.
#[derive(Debug)]
struct ParseTimestamp {
    parser: weir_formats::timestamp::TimestampParser,
}

impl ScalarFunction for ParseTimestamp {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        let now = chrono::Utc::now().timestamp_micros();
        arg(args, 0)?.clone().map(|a| {
            let out: TimestampMicrosecondArray = text(a)?
                .iter()
                .map(|v| v.and_then(|s| self.parser.parse(s, now).ok()))
                .collect();
            Ok(Arc::new(out.with_data_type(crate::schema::timestamp_type())) as ArrayRef)
        })
    }
}

#[derive(Debug)]
struct JsonGet {
    path: Vec<String>,
}

impl ScalarFunction for JsonGet {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        arg(args, 0)?
            .clone()
            .map(|a| Ok(Arc::new(json_get(text(a)?, &self.path)) as ArrayRef))
    }
}

/// The value at a dotted path (`a.b.0`) of each JSON text, as text (strings
/// unquoted, other values as JSON); null where the text is not JSON or the path
/// leads nowhere. Shared by the rules' `json_get` and the SQL function.
pub fn json_get(texts: &StringArray, path: &[String]) -> StringArray {
    let mut b = StringBuilder::with_capacity(texts.len(), texts.len() * 8);
    for v in texts.iter() {
        let found = v
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
            .and_then(|doc| {
                let mut cur = &doc;
                for key in path {
                    cur = match cur {
                        serde_json::Value::Object(m) => m.get(key)?,
                        serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                match cur {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            });
        b.append_option(found);
    }
    b.finish()
}

#[derive(Debug)]
struct CidrMatch {
    net: IpAddr,
    prefix: u8,
}

impl CidrMatch {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl ScalarFunction for CidrMatch {
    fn call(&self, args: &[Value], _rows: usize) -> Result<Value> {
        arg(args, 0)?.clone().map(|a| {
            let s = text(a)?;
            let out: BooleanArray = s
                .iter()
                .map(|v| v.map(|v| v.trim().parse::<IpAddr>().is_ok_and(|ip| self.contains(ip))))
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

fn str_lit<'a>(args: &'a [Expr], i: usize, name: &Ident) -> Result<&'a str> {
    match args.get(i).map(|a| &a.kind) {
        Some(ExprKind::Lit(Literal::Str(s))) => Ok(s),
        _ => Err(EngineError::plan(
            name.span,
            format!(
                "argument {} of `{}` must be a string literal",
                i + 1,
                name.name
            ),
        )),
    }
}

/// One call of a scalar function being compiled: what its implementation is
/// built from.
pub struct Call<'a, 'c> {
    pub name: &'a Ident,
    pub args: &'a [Expr],
    pub types: &'a [Type],
    pub cx: &'a mut CompileContext<'c>,
}

/// The engine's half of a scalar function: its name (the key into
/// `weir_dsl::functions::FUNCTIONS`, which holds the signature, the result
/// type and the documentation) and how a call builds its kernel.
pub struct Implementation {
    pub name: &'static str,
    pub build: fn(&mut Call<'_, '_>) -> Result<Box<dyn ScalarFunction>>,
}

fn boxed(f: impl ScalarFunction + 'static) -> Result<Box<dyn ScalarFunction>> {
    Ok(Box::new(f))
}

/// Every scalar function's implementation. A test checks that each scalar
/// signature has one and each one a signature.
pub const IMPLEMENTATIONS: &[Implementation] = &[
    Implementation {
        name: "lower",
        build: |_| boxed(MapText(|s| s.to_lowercase())),
    },
    Implementation {
        name: "upper",
        build: |_| boxed(MapText(|s| s.to_uppercase())),
    },
    Implementation {
        name: "len",
        build: |_| boxed(Len),
    },
    Implementation {
        name: "concat",
        build: |_| boxed(Concat),
    },
    Implementation {
        name: "coalesce",
        build: |_| boxed(Coalesce),
    },
    Implementation {
        name: "now",
        build: |_| boxed(Now { minus_arg: false }),
    },
    Implementation {
        name: "ago",
        build: |_| boxed(Now { minus_arg: true }),
    },
    Implementation {
        name: "hour",
        build: |_| boxed(Part(DatePart::Hour)),
    },
    Implementation {
        name: "minute",
        build: |_| boxed(Part(DatePart::Minute)),
    },
    Implementation {
        name: "weekday",
        build: |_| boxed(Part(DatePart::DayOfWeekSunday0)),
    },
    Implementation {
        name: "to_int",
        build: |_| boxed(CastTo(DataType::Int64)),
    },
    Implementation {
        name: "to_float",
        build: |_| boxed(CastTo(DataType::Float64)),
    },
    Implementation {
        name: "to_string",
        build: |_| boxed(CastTo(DataType::Utf8)),
    },
    Implementation {
        name: "json_get",
        build: |c| {
            let path = str_lit(c.args, 1, c.name)?;
            boxed(JsonGet {
                path: path.split('.').map(String::from).collect(),
            })
        },
    },
    Implementation {
        name: "parse_timestamp",
        build: |c| {
            let format = str_lit(c.args, 1, c.name)?;
            let zone = match c.args.get(2) {
                Some(_) => Some(str_lit(c.args, 2, c.name)?),
                None => None,
            };
            let parser = weir_formats::timestamp::TimestampParser::new(Some(format), zone)
                .map_err(|e| EngineError::plan(c.name.span, e))?;
            boxed(ParseTimestamp { parser })
        },
    },
    Implementation {
        name: "cidr_match",
        build: |c| {
            let net = str_lit(c.args, 1, c.name)?;
            let (net, prefix) = parse_cidr(net).ok_or_else(|| {
                EngineError::plan(c.name.span, format!("`{net}` is not a network"))
            })?;
            boxed(CidrMatch { net, prefix })
        },
    },
    Implementation {
        name: "lookup",
        build: |c| {
            let path = str_lit(c.args, 0, c.name)?;
            let column = str_lit(c.args, 2, c.name)?;
            let (Some(at), Some(col_arg)) = (c.args.first(), c.args.get(2)) else {
                return Err(EngineError::Internal("lookup takes 3 arguments".into()));
            };
            let table = c.cx.tables.load(path, at)?;
            let idx = table
                .columns
                .iter()
                .position(|col| col == column)
                .ok_or_else(|| {
                    EngineError::plan_hint(
                        col_arg.span,
                        format!("lookup table {path} has no column `{column}`"),
                        // Never the names themselves: a rule may point
                        // at a file whose first line is a secret.
                        format!(
                            "its header line names {} columns; names are case-sensitive",
                            table.columns.len()
                        ),
                    )
                })?;
            boxed(Lookup { table, column: idx })
        },
    },
];

/// The implementation of a checked scalar call and its result type (from the
/// function's signature).
pub fn resolve(
    name: &Ident,
    args: &[Expr],
    types: &[Type],
    cx: &mut CompileContext<'_>,
) -> Result<(Box<dyn ScalarFunction>, Type)> {
    let signature = weir_dsl::functions::lookup(&name.name).filter(|s| !s.aggregate);
    let implementation = IMPLEMENTATIONS.iter().find(|i| i.name == name.name);
    let (Some(signature), Some(implementation)) = (signature, implementation) else {
        return Err(EngineError::plan(
            name.span,
            format!("function `{}` cannot be used here", name.name),
        ));
    };
    let mut call = Call {
        name,
        args,
        types,
        cx,
    };
    Ok((
        (implementation.build)(&mut call)?,
        signature.result_type(types),
    ))
}

#[cfg(test)]
mod registry_tests {
    use super::IMPLEMENTATIONS;
    use weir_dsl::functions::FUNCTIONS;

    #[test]
    fn every_scalar_signature_has_one_implementation_and_back() {
        for sig in FUNCTIONS.iter().filter(|s| !s.aggregate) {
            let n = IMPLEMENTATIONS
                .iter()
                .filter(|i| i.name == sig.name)
                .count();
            assert_eq!(n, 1, "scalar function `{}`: {n} implementations", sig.name);
        }
        for imp in IMPLEMENTATIONS {
            assert!(
                FUNCTIONS.iter().any(|s| s.name == imp.name && !s.aggregate),
                "implementation `{}` has no scalar signature",
                imp.name
            );
        }
    }
}
