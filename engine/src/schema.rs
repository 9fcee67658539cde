//! Maps the language's types onto Arrow types and builds Arrow schemas for the
//! schemas the checker computed.

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use std::sync::Arc;
use weir_dsl::{Schema, Type};

/// Time zone of every timestamp column (UTC, written as an offset so no time-zone
/// database is needed).
pub const TZ: &str = "+00:00";

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TZ.into()))
}

/// The Arrow type a language type is stored as.
pub fn arrow_type(t: Type) -> DataType {
    match t {
        Type::String | Type::Ip | Type::Severity | Type::List | Type::Null => DataType::Utf8,
        Type::Int => DataType::Int64,
        Type::Float => DataType::Float64,
        Type::Bool => DataType::Boolean,
        Type::Timestamp => timestamp_type(),
        Type::Duration => DataType::Duration(TimeUnit::Microsecond),
    }
}

/// The Arrow schema of a checked schema; every field is nullable.
pub fn to_arrow(schema: &Schema) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        schema
            .fields
            .iter()
            .map(|f| Field::new(&f.name, arrow_type(f.ty), true))
            .collect::<Vec<_>>(),
    ))
}
