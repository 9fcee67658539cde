//! What the archive keeps of each original line in `_raw`.
//!
//! Declared fields are columns already; keeping the whole line beside them
//! stores every value twice. By default (`raw rest`) `_raw` keeps, for a
//! line that is a JSON object, only the members that are not in a column:
//! undeclared fields, and declared ones whose value did not decode (the
//! column is null but the line had a value). Nothing is lost; what changes
//! is that declared fields read from their columns, not from `_raw`. Lines
//! that are not JSON objects (plain, regex, logfmt) keep the whole line.
//! `raw full` keeps every line whole, `raw none` keeps nothing.

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::DataType;
use std::collections::HashMap;
use std::sync::Arc;
use weir_dsl::types::{OFFSET, PARTITION, RAW};
use weir_engine::Result;
use weir_formats::json_object::{write_members, RawObject};

/// What `_raw` keeps in the archive (`archive SOURCE raw full|rest|none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RawMode {
    /// The whole line.
    Full,
    /// A JSON line's members that are not in a column; other lines whole.
    #[default]
    Rest,
    /// Nothing (`_raw` is null).
    None,
}

impl RawMode {
    pub fn parse(name: &str) -> Option<RawMode> {
        match name {
            "full" => Some(RawMode::Full),
            "rest" => Some(RawMode::Rest),
            "none" => Some(RawMode::None),
            _ => None,
        }
    }
}

/// The batch with `_raw` reduced as `mode` says.
pub fn reduce(batch: &RecordBatch, mode: RawMode) -> Result<RecordBatch> {
    let schema = batch.schema();
    let Some((raw_idx, _)) = schema.column_with_name(RAW) else {
        return Ok(batch.clone());
    };
    let reduced: ArrayRef = match mode {
        RawMode::Full => return Ok(batch.clone()),
        RawMode::None => new_null_array(&DataType::Utf8, batch.num_rows()),
        RawMode::Rest => {
            let Some(raw) = batch.column(raw_idx).as_string_opt::<i32>() else {
                return Ok(batch.clone());
            };
            let columns: HashMap<&str, &ArrayRef> = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(f, _)| ![RAW, OFFSET, PARTITION].contains(&f.name().as_str()))
                .map(|(f, c)| (f.name().as_str(), c))
                .collect();
            let mut out = StringBuilder::with_capacity(batch.num_rows(), 0);
            let mut text = String::new();
            for row in 0..batch.num_rows() {
                if raw.is_null(row) {
                    out.append_null();
                    continue;
                }
                let line = raw.value(row);
                let Some(members) = RawObject::parse(line) else {
                    out.append_value(line);
                    continue;
                };
                text.clear();
                let kept = write_members(
                    &members.0,
                    |k, v| match columns.get(k) {
                        Some(c) => c.is_null(row) && v.get() != "null",
                        None => true,
                    },
                    &mut text,
                );
                if kept {
                    out.append_value(&text);
                } else {
                    out.append_null();
                }
            }
            Arc::new(out.finish())
        }
    };
    let mut cols = batch.columns().to_vec();
    cols[raw_idx] = reduced;
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, true),
            Field::new("status", DataType::Int64, true),
            Field::new(OFFSET, DataType::Int64, true),
            Field::new(RAW, DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("api"), Some("db"), None, None])),
                Arc::new(Int64Array::from(vec![Some(200), None, None, None])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some(r#"{"service":"api","status":200}"#),
                    Some(r#"{"service":"db","status":"teapot","ctx":{"a":[1]}}"#),
                    Some("plain text line"),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    fn raw(b: &RecordBatch) -> Vec<Option<String>> {
        b.column_by_name(RAW)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn rest_keeps_what_no_column_holds() {
        let b = reduce(&batch(), RawMode::Rest).unwrap();
        assert_eq!(
            raw(&b),
            vec![
                None,
                Some(r#"{"status":"teapot","ctx":{"a":[1]}}"#.to_string()),
                Some("plain text line".to_string()),
                None
            ]
        );
        assert_eq!(b.num_columns(), 4);
    }

    #[test]
    fn full_and_none() {
        assert_eq!(
            raw(&reduce(&batch(), RawMode::Full).unwrap()),
            raw(&batch())
        );
        assert!(raw(&reduce(&batch(), RawMode::None).unwrap())
            .iter()
            .all(Option::is_none));
        assert_eq!(RawMode::parse("rest"), Some(RawMode::Rest));
        assert_eq!(RawMode::parse("some"), None);
    }
}
