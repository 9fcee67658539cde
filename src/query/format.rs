//! Query results as bytes: a JSON document, NDJSON, CSV, Arrow IPC (stream
//! format) or a text table, chosen by the HTTP `Accept` header or `--format`.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// The encodings of a query result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A text table (the CLI's default).
    Table,
    /// `{"columns": [...], "rows": [{...}], "truncated": false}`.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
    /// Arrow IPC stream.
    Arrow,
}

impl Format {
    /// The format an `Accept` header asks for (JSON by default).
    pub fn from_accept(accept: Option<&str>) -> Format {
        let accept = accept.unwrap_or("");
        if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("application/x-ndjson") || accept.contains("application/jsonl") {
            Format::Ndjson
        } else if accept.contains("text/plain") {
            Format::Table
        } else {
            Format::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Encodes batches in a format.
pub fn encode(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: bool,
) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    match format {
        Format::Table => {
            out = arrow::util::pretty::pretty_format_batches(batches)?
                .to_string()
                .into_bytes();
            out.push(b'\n');
            if truncated {
                out.extend_from_slice(b"(truncated at the row limit)\n");
            }
        }
        Format::Json => {
            let mut rows = Vec::new();
            {
                let mut w = arrow::json::ArrayWriter::new(&mut rows);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            if rows.is_empty() {
                rows.extend_from_slice(b"[]");
            }
            let columns: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            out.extend_from_slice(b"{\"columns\":");
            out.extend_from_slice(&serde_json::to_vec(&columns).unwrap_or_default());
            out.extend_from_slice(b",\"rows\":");
            out.extend_from_slice(&rows);
            out.extend_from_slice(format!(",\"truncated\":{truncated}}}").as_bytes());
        }
        Format::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Arrow => {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(out)
}
