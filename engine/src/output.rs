//! Record batches as JSON: for outputs (`| to stdout`), alerts and the HTTP API.

use crate::error::Result;
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

/// Writes a batch as newline-delimited JSON objects (nulls omitted).
pub fn to_ndjson(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let mut w = arrow_json::LineDelimitedWriter::new(out);
    w.write(batch)?;
    w.finish()?;
    Ok(())
}

/// Each row of a batch as a JSON object.
pub fn rows_as_json(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>> {
    let mut buf = Vec::new();
    let mut w = arrow_json::ArrayWriter::new(&mut buf);
    w.write(batch)?;
    w.finish()?;
    drop(w);
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&buf)?)
}
