//! Decodes raw lines into Arrow record batches with a source's schema, for every
//! format (`json`, `logfmt`, `plain`, `regex`). Lines that cannot be decoded are
//! returned as dead letters with the reason, never dropped.

use crate::connector::{DeadLetter, LineBatch};
use crate::error::Result;
use crate::schema::{timestamp_type, to_arrow};
use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use arrow_json::reader::{Decoder, ReaderBuilder};
use regex::Regex;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weir_dsl::ast::Format;
use weir_dsl::types::{OFFSET, PARTITION, RAW, TIMESTAMP};
use weir_dsl::{severity, Schema, Type};
use weir_formats::{captures_to_map, parse_logfmt};

/// Turns lines of one source into record batches of its schema.
pub struct LineDecoder {
    source: String,
    format: Format,
    regex: Option<Regex>,
    /// The full output schema (declared fields, `_offset`, `_raw`).
    schema: SchemaRef,
    /// The fields read from the line (everything but `_offset` and `_raw`).
    content_schema: SchemaRef,
    decoder: Decoder,
    severity_col: Option<usize>,
    timestamp_col: Option<usize>,
    max_line_bytes: usize,
}

/// The result of decoding one batch.
pub struct Decoded {
    pub batch: Option<RecordBatch>,
    pub dead: Vec<DeadLetter>,
}

/// Largest line accepted (longer ones go to the dead letters).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl LineDecoder {
    pub fn new(source: &str, format: &Format, schema: &Schema) -> Result<LineDecoder> {
        let full = to_arrow(schema);
        let content: Vec<Arc<Field>> = full
            .fields()
            .iter()
            .filter(|f| ![OFFSET, PARTITION, RAW].contains(&f.name().as_str()))
            .cloned()
            .collect();
        let content_schema = Arc::new(ArrowSchema::new(content));
        let decoder = Self::build_decoder(&content_schema)?;
        let regex = match format {
            Format::Regex(p) => Some(Regex::new(p)?),
            _ => None,
        };
        Ok(LineDecoder {
            source: source.to_string(),
            format: format.clone(),
            regex,
            severity_col: content_schema
                .index_of("severity")
                .ok()
                .filter(|_| schema.get("severity") == Some(Type::Severity)),
            timestamp_col: content_schema.index_of(TIMESTAMP).ok(),
            schema: full,
            content_schema,
            decoder,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        })
    }

    fn build_decoder(schema: &SchemaRef) -> Result<Decoder> {
        Ok(ReaderBuilder::new(schema.clone())
            .with_batch_size(1 << 20)
            .with_coerce_primitive(true)
            .with_strict_mode(false)
            .build_decoder()?)
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes a batch of lines. Good lines become one record batch; bad ones come
    /// back as dead letters.
    pub fn decode(&mut self, lines: &LineBatch) -> Result<Decoded> {
        let mut dead = Vec::new();
        // Indices of the lines that made it into the batch.
        let mut kept: Option<Vec<usize>> = None;
        let oversize: Vec<usize> = (0..lines.len())
            .filter(|&i| lines.line(i).len() > self.max_line_bytes)
            .collect();
        let content = match (&self.format, oversize.is_empty()) {
            (Format::Json, true) => match self.decode_json_fast(lines) {
                Ok(b) => b,
                Err(_) => {
                    self.decoder = Self::build_decoder(&self.content_schema)?;
                    let (b, k) = self.decode_json_each(lines, &mut dead)?;
                    kept = Some(k);
                    b
                }
            },
            _ => {
                let (b, k) = self.decode_each(lines, &mut dead)?;
                kept = Some(k);
                b
            }
        };
        let Some(content) = content else {
            return Ok(Decoded { batch: None, dead });
        };
        let n = content.num_rows();
        let index = |i: usize| kept.as_ref().map(|k| k[i]).unwrap_or(i);
        let offsets: Int64Array = (0..n)
            .map(|i| Some(lines.first_offset + index(i) as i64))
            .collect();
        let mut raw = StringBuilder::with_capacity(n, lines.data.len());
        for i in 0..n {
            raw.append_value(String::from_utf8_lossy(lines.line(index(i))));
        }
        let mut columns: Vec<ArrayRef> = content.columns().to_vec();
        if let Some(c) = self.timestamp_col {
            columns[c] = fill_timestamps(&columns[c], lines.received_at_us)?;
        }
        if let Some(c) = self.severity_col {
            columns[c] = normalize_severity(&columns[c])?;
        }
        // Put `_partition`, `_offset` and `_raw` where the schema has them.
        let partitions: ArrayRef = Arc::new(Int64Array::from(vec![lines.partition; n]));
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let mut content_cols = columns.into_iter();
        let offsets: ArrayRef = Arc::new(offsets);
        let raw: ArrayRef = Arc::new(raw.finish());
        for f in self.schema.fields() {
            match f.name().as_str() {
                OFFSET => out.push(offsets.clone()),
                PARTITION => out.push(partitions.clone()),
                RAW => out.push(raw.clone()),
                _ => match content_cols.next() {
                    Some(c) => out.push(c),
                    None => {
                        return Err(crate::error::EngineError::Internal(
                            "decoder produced too few columns".into(),
                        ))
                    }
                },
            }
        }
        Ok(Decoded {
            batch: Some(RecordBatch::try_new(self.schema.clone(), out)?),
            dead,
        })
    }

    /// The whole batch in one pass of the vectorized JSON decoder.
    fn decode_json_fast(&mut self, lines: &LineBatch) -> Result<Option<RecordBatch>> {
        let mut buf: &[u8] = &lines.data;
        while !buf.is_empty() {
            let read = self.decoder.decode(buf)?;
            if read == 0 {
                break;
            }
            buf = &buf[read..];
        }
        let batch = self.decoder.flush()?;
        if let Some(b) = &batch {
            if b.num_rows() != lines.len() {
                // Blank lines or several values on one line: take the careful path.
                return Err(crate::error::EngineError::Internal(
                    "row count mismatch".into(),
                ));
            }
        }
        Ok(batch)
    }

    /// One line at a time, so one bad line does not spoil its batch.
    fn decode_json_each(
        &mut self,
        lines: &LineBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(Option<RecordBatch>, Vec<usize>)> {
        let mut kept = Vec::with_capacity(lines.len());
        for i in 0..lines.len() {
            let line = lines.line(i);
            let reason = match serde_json::from_slice::<Json>(line) {
                Ok(Json::Object(_)) => {
                    let mut probe = Self::build_decoder(&self.content_schema)?;
                    match probe.decode(line).and_then(|_| probe.flush()) {
                        Ok(_) => None,
                        Err(e) => Some(format!("field does not fit its declared type: {e}")),
                    }
                }
                Ok(_) => Some("not a JSON object".to_string()),
                Err(e) => Some(format!("invalid JSON: {e}")),
            };
            match reason {
                None => {
                    let mut rest: &[u8] = line;
                    while !rest.is_empty() {
                        let read = self.decoder.decode(rest)?;
                        if read == 0 {
                            break;
                        }
                        rest = &rest[read..];
                    }
                    // Separate values so the tape decoder sees one row per line.
                    self.decoder.decode(b"\n")?;
                    kept.push(i);
                }
                Some(reason) => dead.push(self.dead_letter(lines, i, reason)),
            }
        }
        Ok((self.decoder.flush()?, kept))
    }

    /// logfmt, plain and regex lines: parsed into JSON objects, then decoded.
    fn decode_each(
        &mut self,
        lines: &LineBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(Option<RecordBatch>, Vec<usize>)> {
        let mut rows: Vec<Map<String, Json>> = Vec::with_capacity(lines.len());
        let mut kept = Vec::with_capacity(lines.len());
        for i in 0..lines.len() {
            let bytes = lines.line(i);
            if bytes.len() > self.max_line_bytes {
                dead.push(self.dead_letter(
                    lines,
                    i,
                    format!(
                        "line of {} bytes is over the {} byte limit",
                        bytes.len(),
                        self.max_line_bytes
                    ),
                ));
                continue;
            }
            let line = match std::str::from_utf8(bytes) {
                Ok(l) => l,
                Err(e) => {
                    dead.push(self.dead_letter(lines, i, format!("not UTF-8: {e}")));
                    continue;
                }
            };
            let parsed = match &self.format {
                Format::Json => match serde_json::from_str::<Json>(line) {
                    Ok(Json::Object(m)) => Ok(m),
                    Ok(_) => Err("not a JSON object".to_string()),
                    Err(e) => Err(format!("invalid JSON: {e}")),
                },
                Format::Logfmt => Ok(parse_logfmt(line)),
                Format::Plain => {
                    let mut m = Map::new();
                    m.insert("message".into(), Json::String(line.to_string()));
                    Ok(m)
                }
                Format::Regex(_) => match self.regex.as_ref().and_then(|r| r.captures(line)) {
                    Some(caps) => Ok(captures_to_map(self.regex.as_ref(), &caps)),
                    None => Err("line does not match the source's regex".to_string()),
                },
            };
            match parsed {
                Ok(m) => {
                    let mut probe = Self::build_decoder(&self.content_schema)?;
                    match probe.serialize(std::slice::from_ref(&m)) {
                        Ok(()) => {
                            rows.push(m);
                            kept.push(i);
                        }
                        Err(e) => dead.push(self.dead_letter(
                            lines,
                            i,
                            format!("field does not fit its declared type: {e}"),
                        )),
                    }
                }
                Err(reason) => dead.push(self.dead_letter(lines, i, reason)),
            }
        }
        if rows.is_empty() {
            return Ok((None, kept));
        }
        self.decoder.serialize(&rows)?;
        Ok((self.decoder.flush()?, kept))
    }

    fn dead_letter(&self, lines: &LineBatch, i: usize, reason: String) -> DeadLetter {
        DeadLetter {
            source: self.source.clone(),
            origin: lines.origin.as_deref().map(str::to_string),
            partition: lines.partition,
            offset: lines.first_offset + i as i64,
            reason,
            line: String::from_utf8_lossy(lines.line(i)).into_owned(),
            time: chrono::Utc::now().to_rfc3339(),
        }
    }
}

/// Missing timestamps become the arrival time.
fn fill_timestamps(col: &ArrayRef, received_at_us: i64) -> Result<ArrayRef> {
    if col.null_count() == 0 {
        return Ok(col.clone());
    }
    let ts = col
        .as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()
        .ok_or_else(|| {
            crate::error::EngineError::Internal("timestamp column has the wrong type".into())
        })?;
    let filled: TimestampMicrosecondArray = ts
        .iter()
        .map(|v| Some(v.unwrap_or(received_at_us)))
        .collect();
    let out = filled.with_data_type(timestamp_type());
    Ok(Arc::new(out))
}

/// Rewrites severity spellings (`warning`, `W`, `30`) to canonical names; unknown
/// spellings are kept as written.
fn normalize_severity(col: &ArrayRef) -> Result<ArrayRef> {
    let s: &StringArray = crate::expr::text(col)?;
    let canonical = s
        .iter()
        .all(|v| v.is_none_or(|v| weir_dsl::severity::LEVELS.contains(&v)));
    if canonical {
        return Ok(col.clone());
    }
    let out: StringArray = s
        .iter()
        .map(|v| v.map(|v| severity::rank(v).map(severity::name).unwrap_or(v)))
        .collect();
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(ls: &[&str]) -> LineBatch {
        let mut b = LineBatch::default();
        for l in ls {
            b.push(l.as_bytes());
        }
        b.first_offset = 100;
        b.received_at_us = 7;
        b
    }

    #[test]
    fn common_log_format_timestamps_are_event_time() {
        let re = r"^\[(?P<timestamp>[^\]]+)\] (?P<message>.*)$";
        let mut d = LineDecoder::new("web", &Format::Regex(re.into()), &Schema::core())
            .unwrap_or_else(|e| panic!("{e}"));
        let out = d
            .decode(&lines(&["[01/Nov/2026:12:00:05 +0100] GET /"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!("no batch"));
        let ts = b.column_by_name("timestamp").unwrap_or_else(|| panic!());
        let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        // 2026-11-01T11:00:05Z
        assert_eq!(ts.value(0), 1_793_530_805_000_000);
    }

    fn schema() -> Schema {
        let mut s = Schema::core();
        s.push("status", Type::Int);
        s
    }

    #[test]
    fn json_lines_become_typed_columns() {
        let mut d =
            LineDecoder::new("app", &Format::Json, &schema()).unwrap_or_else(|e| panic!("{e}"));
        let out = d
            .decode(&lines(&[
                r#"{"timestamp":"2026-01-01T00:00:00Z","service":"api","severity":"warning","status":500,"extra":{"a":1}}"#,
                r#"{"service":"db","level":"x","status":"404"}"#,
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!("no batch"));
        assert!(out.dead.is_empty());
        assert_eq!(b.num_rows(), 2);
        let sev = b.column_by_name("severity").unwrap_or_else(|| panic!());
        assert_eq!(sev.as_string::<i32>().value(0), "WARN");
        let ts = b.column_by_name("timestamp").unwrap_or_else(|| panic!());
        let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_767_225_600_000_000);
        assert_eq!(ts.value(1), 7, "missing timestamp is the arrival time");
        let status = b.column_by_name("status").unwrap_or_else(|| panic!());
        assert_eq!(
            status
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(1),
            404
        );
        let raw = b.column_by_name("_raw").unwrap_or_else(|| panic!());
        assert!(raw
            .as_string::<i32>()
            .value(0)
            .contains(r#""extra":{"a":1}"#));
        let off = b.column_by_name("_offset").unwrap_or_else(|| panic!());
        assert_eq!(
            off.as_primitive::<arrow::datatypes::Int64Type>().value(1),
            101
        );
    }

    #[test]
    fn bad_lines_become_dead_letters_with_reasons() {
        let mut d =
            LineDecoder::new("app", &Format::Json, &schema()).unwrap_or_else(|e| panic!("{e}"));
        let out = d
            .decode(&lines(&[
                r#"{"service":"a"}"#,
                r#"{"service":"b""#,
                r#"[1,2]"#,
                r#"{"status":"not a number"}"#,
                r#"{"service":"c"}"#,
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!("no batch"));
        assert_eq!(b.num_rows(), 2);
        let off = b.column_by_name("_offset").unwrap_or_else(|| panic!());
        let off = off.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((off.value(0), off.value(1)), (100, 104));
        let offsets: Vec<i64> = out.dead.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, vec![101, 102, 103]);
        assert!(
            out.dead[0].reason.starts_with("invalid JSON"),
            "{}",
            out.dead[0].reason
        );
        assert_eq!(out.dead[1].reason, "not a JSON object");
        assert!(
            out.dead[2].reason.contains("declared type"),
            "{}",
            out.dead[2].reason
        );
    }

    #[test]
    fn regex_and_logfmt_formats() {
        let mut s = Schema::core();
        s.push("ip", Type::Ip);
        s.push("status", Type::Int);
        let mut d = LineDecoder::new(
            "nginx",
            &Format::Regex(r"^(?P<ip>\S+) (?P<status>\d+) (?P<message>.*)$".into()),
            &s,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = d
            .decode(&lines(&["10.0.0.1 200 GET /", "garbage"]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!());
        assert_eq!(b.num_rows(), 1);
        assert_eq!(out.dead.len(), 1);
        let status = b.column_by_name("status").unwrap_or_else(|| panic!());
        assert_eq!(
            status
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            200
        );
    }
}
