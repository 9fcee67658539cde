//! Decodes raw lines into Arrow record batches with a source's schema, for every
//! format (`json`, `logfmt`, `plain`, `regex`). Lines that cannot be decoded are
//! returned as dead letters with the reason, never dropped.
//!
//! `timestamp` is read as text (JSON numbers too) and parsed by the source's
//! [`TimestampParser`] (every common form, the source's `timestamp_format`
//! and `timezone`); a missing one is the arrival time, one that does not
//! parse sends its line to the dead letters.

use crate::connector::{DeadLetter, LineBatch};
use crate::error::Result;
use crate::schema::{timestamp_type, to_arrow};
use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use arrow_json::reader::{Decoder, ReaderBuilder};
use regex::Regex;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weir_dsl::ast::Format;
use weir_dsl::types::{OFFSET, PARTITION, RAW, TIMESTAMP};
use weir_dsl::{severity, Schema, Type};
use weir_formats::timestamp::TimestampParser;
use weir_formats::{captures_to_map, parse_logfmt};

mod json;
mod pool;
pub use json::{JsonColumns, Rejected};
pub use pool::DecodePool;

/// Turns lines of one source into record batches of its schema.
pub struct LineDecoder {
    source: Arc<str>,
    format: Format,
    regex: Option<Regex>,
    /// The full output schema (declared fields, `_offset`, `_raw`).
    schema: SchemaRef,
    /// The fields read from the line (everything but `_offset` and `_raw`,
    /// `timestamp` as text), and once the stream uses them, the other names
    /// of core fields.
    content_schema: SchemaRef,
    /// The same with the other names; read once a batch lacks a core field
    /// and names one of them (reading them costs a fifth of the decoding).
    alias_schema: SchemaRef,
    /// The source's own fields alone (what a batch is cut back to).
    base_schema: SchemaRef,
    aliases_on: bool,
    /// How many of those are the source's own fields.
    content_width: usize,
    /// Core field column, and the columns of its other names in order.
    aliases: Vec<(usize, Vec<usize>)>,
    decoder: Decoder,
    /// JSON lines straight into columns, when every read field is text, a
    /// number or a boolean (otherwise Arrow's JSON reader, `decoder`).
    columns: Option<JsonColumns>,
    severity_col: Option<usize>,
    /// `message`, when it is text.
    message_col: Option<usize>,
    timestamp_col: Option<usize>,
    timestamps: TimestampParser,
    max_line_bytes: usize,
    /// Batches still to check line by line since one had a bad line.
    dirty_batches: u32,
    /// The fields the source's readers use ([`LineDecoder::reading`]); the
    /// others are checked but not built. `None`: every field.
    reads: Option<std::collections::BTreeSet<String>>,
    /// Whether `_raw` is built (else each row's is empty).
    raw: bool,
    /// What this batch's dead letters share: where its lines came from,
    /// and when they were set aside (read from the clock once a batch: a
    /// dirty stream has thousands of letters in each).
    letter_common: std::cell::OnceCell<(Option<Arc<str>>, Arc<str>)>,
}

/// After a batch with a bad line, this many batches skip the one-pass
/// attempt (each clean one counts down).
const DIRTY_STREAK: u32 = 4;

/// The result of decoding one batch.
#[derive(Default)]
pub struct Decoded {
    pub batch: Option<RecordBatch>,
    pub dead: Vec<DeadLetter>,
    /// The dead letters as JSON lines, and how many (then `dead` is empty):
    /// see [`Decoded::encode_letters`].
    pub encoded: Option<(usize, Vec<u8>)>,
}

impl Decoded {
    /// Adds `delta` to the number (`_offset`) of every event and dead
    /// letter: for lines decoded before their numbers were known
    /// ([`crate::connector::LoadLines::first_offset`]).
    pub fn renumber(&mut self, delta: i64) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        for d in &mut self.dead {
            d.offset += delta;
        }
        let Some(batch) = &self.batch else {
            return Ok(());
        };
        let Ok(i) = batch.schema().index_of(OFFSET) else {
            return Ok(());
        };
        let Some(offsets) = batch.column(i).as_any().downcast_ref::<Int64Array>() else {
            return Err(crate::error::EngineError::Internal(
                "an _offset column that is not Int64".into(),
            ));
        };
        let shifted: Int64Array = offsets.unary(|o| o + delta);
        let mut columns = batch.columns().to_vec();
        columns[i] = Arc::new(shifted);
        self.batch = Some(RecordBatch::try_new(batch.schema(), columns)?);
        Ok(())
    }

    /// Turns the dead letters into JSON lines
    /// ([`DeadLetter::write_json_line`]), for a dead-letter store that takes
    /// them so ([`crate::connector::DeadLetterSink::takes_json_lines`]):
    /// done by the decode pool on the decoder's own thread, so that a dirty
    /// stream's letters are encoded on every core rather than in the one
    /// task that hands batches on in order.
    pub fn encode_letters(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        let lines = DeadLetter::json_lines(&self.dead);
        self.encoded = Some((self.dead.len(), lines));
        self.dead = Vec::new();
    }
}

/// Largest line accepted (longer ones go to the dead letters).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl LineDecoder {
    pub fn new(source: &str, format: &Format, schema: &Schema) -> Result<LineDecoder> {
        let full = to_arrow(schema);
        // What is read from the line; `timestamp` as text, parsed after.
        let mut content: Vec<Arc<Field>> = full
            .fields()
            .iter()
            .filter(|f| ![OFFSET, PARTITION, RAW].contains(&f.name().as_str()))
            .map(|f| {
                if f.name() == TIMESTAMP {
                    Arc::new(Field::new(
                        TIMESTAMP,
                        arrow::datatypes::DataType::Utf8,
                        true,
                    ))
                } else {
                    f.clone()
                }
            })
            .collect();
        // The other names of the core fields (`@timestamp`, `level`, `msg`...)
        // are read too, as text, and fill the core field where it is missing.
        let content_width = content.len();
        let mut aliases = Vec::new();
        for keys in weir_formats::fields::ALIASED {
            let Some(core) = content.iter().position(|f| f.name() == keys[0]) else {
                continue;
            };
            let mut from = Vec::new();
            for alias in &keys[1..] {
                let at = match content.iter().position(|f| f.name() == alias) {
                    Some(i) => i,
                    None => {
                        content.push(Arc::new(Field::new(
                            *alias,
                            arrow::datatypes::DataType::Utf8,
                            true,
                        )));
                        content.len() - 1
                    }
                };
                from.push(at);
            }
            aliases.push((core, from));
        }
        let alias_schema = Arc::new(ArrowSchema::new(content.clone()));
        let content_schema = Arc::new(ArrowSchema::new(content[..content_width].to_vec()));
        let decoder = Self::build_decoder(&content_schema)?;
        let columns = JsonColumns::new(&content_schema).filter(|_| *format == Format::Json);
        let regex = match format {
            // `.` also matches the line breaks of an event of several lines
            // (`first_line`): `(?P<message>.*)$` takes a stack trace whole.
            Format::Regex(p) => Some(
                regex::RegexBuilder::new(p)
                    .dot_matches_new_line(true)
                    .build()?,
            ),
            _ => None,
        };
        Ok(LineDecoder {
            source: source.into(),
            format: format.clone(),
            regex,
            severity_col: content_schema
                .index_of("severity")
                .ok()
                .filter(|_| schema.get("severity") == Some(Type::Severity)),
            timestamp_col: content_schema.index_of(TIMESTAMP).ok(),
            message_col: content_schema.index_of("message").ok().filter(|&i| {
                content_schema.field(i).data_type() == &arrow::datatypes::DataType::Utf8
            }),
            timestamps: TimestampParser::default(),
            schema: full,
            base_schema: content_schema.clone(),
            content_schema,
            alias_schema,
            aliases_on: false,
            content_width,
            aliases,
            decoder,
            columns,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            dirty_batches: 0,
            reads: None,
            raw: true,
            letter_common: std::cell::OnceCell::new(),
        })
    }

    /// Builds only what the source's readers use (see
    /// [`weir_dsl::reads::decoded_needs`]): the JSON decoder leaves the other
    /// fields null (still checking their values: a line whose value does not
    /// fit its type is a dead letter all the same), and `_raw` is empty
    /// unless it is needed. A tenth of a core's time goes to copying `_raw`
    /// alone.
    pub fn reading(mut self, needs: &weir_dsl::reads::Needs) -> LineDecoder {
        self.reads = needs.fields.clone();
        self.raw = needs.raw;
        let keep = self.keep_mask();
        self.columns = self.columns.take().map(|c| c.keeping(keep));
        self
    }

    /// Whether column `c` of the content schema is built: a field read, the
    /// event time, or another name of a core field that is.
    fn keeps(&self, c: usize) -> bool {
        let Some(reads) = &self.reads else {
            return true;
        };
        let read = |c: usize| {
            let name = self.content_schema.field(c).name();
            name == TIMESTAMP || reads.contains(name)
        };
        read(c)
            || self
                .aliases
                .iter()
                .any(|(core, from)| from.contains(&c) && read(*core))
    }

    fn keep_mask(&self) -> Vec<bool> {
        (0..self.content_schema.fields().len())
            .map(|c| self.keeps(c))
            .collect()
    }

    /// The decoder of a checked source: its format, schema, and how it
    /// writes timestamps (`timestamp_format`, `timezone`; checked already).
    pub fn for_source(source: &weir_dsl::CheckedSource) -> Result<LineDecoder> {
        let d = &source.decl;
        let parser = TimestampParser::new(
            d.timestamp_format.as_ref().map(|(f, _)| f.as_str()),
            d.timezone.as_ref().map(|(z, _)| z.as_str()),
        )
        .map_err(|e| {
            let span = d
                .timestamp_format
                .as_ref()
                .or(d.timezone.as_ref())
                .map_or(d.span, |(_, s)| *s);
            crate::error::EngineError::plan(span, e)
        })?;
        Ok(LineDecoder::new(&d.name.name, &source.format, &source.schema)?.with_timestamps(parser))
    }

    /// How this source writes its timestamps (`timestamp_format`,
    /// `timezone`); detected, zone-less times in UTC, by default.
    pub fn with_timestamps(mut self, parser: TimestampParser) -> LineDecoder {
        self.timestamps = parser;
        self
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
    /// back as dead letters. A line of nothing but whitespace is no event in
    /// any format (NDJSON files often end in, or are spaced by, blank
    /// lines): it is skipped, neither a row nor a dead letter.
    ///
    /// Bytes that are not UTF-8 (a Latin-1 name, a cut multi-byte
    /// character) are replaced with U+FFFD, as Vector's codecs do by
    /// default, instead of costing the line: the rest of it is still read.
    pub fn decode(&mut self, lines: &LineBatch) -> Result<Decoded> {
        self.letter_common.take();
        // The batch as text, checked once (lines are cut from it).
        let mut decoded = match simdutf8::basic::from_utf8(&lines.data) {
            Ok(text) => self.decode_lines(lines, Some(text))?,
            Err(_) => {
                let repaired = lossy(lines);
                let text = std::str::from_utf8(&repaired.data).ok();
                self.decode_lines(&repaired, text)?
            }
        };
        decoded.dead.retain(|d| !is_blank(d.line.as_bytes()));
        Ok(decoded)
    }

    fn decode_lines(&mut self, lines: &LineBatch, text: Option<&str>) -> Result<Decoded> {
        let mut dead = Vec::new();
        // Indices of the lines that made it into the batch.
        let mut kept: Option<Vec<usize>> = None;
        // Arrow's JSON reader takes a batch without long lines; the other
        // paths look at each line's length themselves.
        let max = self.max_line_bytes;
        let oversize = || lines.lines().any(|l| too_long(max, l).is_some());
        let content = match &self.format {
            Format::Json if self.columns.is_some() => {
                let (b, k) = self.decode_json_columns(lines, text, &mut dead)?;
                kept = k;
                b
            }
            Format::Json if oversize() => {
                let (b, k) = self.decode_each(lines, text, &mut dead)?;
                kept = Some(k);
                b
            }
            Format::Json if self.dirty_batches == 0 => match self.decode_json_fast(lines) {
                Ok(b) => b,
                Err(_) => {
                    self.decoder = Self::build_decoder(&self.content_schema)?;
                    let (b, k) = self.decode_json_each(lines, &mut dead)?;
                    kept = Some(k);
                    // Dirty streams stay dirty: check the next batches line
                    // by line at once instead of failing a whole pass first.
                    self.dirty_batches = DIRTY_STREAK;
                    b
                }
            },
            Format::Json => {
                let (b, k) = self.decode_json_each(lines, &mut dead)?;
                self.dirty_batches = if dead.is_empty() {
                    self.dirty_batches.saturating_sub(1)
                } else {
                    DIRTY_STREAK
                };
                kept = Some(k);
                b
            }
            _ => {
                let (b, k) = self.decode_each(lines, text, &mut dead)?;
                kept = Some(k);
                b
            }
        };
        let Some(content) = content else {
            return Ok(Decoded {
                batch: None,
                dead,
                encoded: None,
            });
        };
        if !self.aliases_on && self.uses_aliases(&content, lines) {
            // From now on this stream's other names are read: decode again.
            self.aliases_on = true;
            self.content_schema = self.alias_schema.clone();
            self.decoder = Self::build_decoder(&self.content_schema)?;
            if self.columns.is_some() {
                let keep = self.keep_mask();
                self.columns = JsonColumns::new(&self.content_schema).map(|c| c.keeping(keep));
            }
            return self.decode_lines(lines, text);
        }
        let mut content = self.fill_from_aliases(content)?;
        let mut times: Option<ArrayRef> = None;
        if let Some(c) = self.timestamp_col {
            let (col, bad) = self.parse_timestamps(content.column(c), lines.received_at_us)?;
            if !bad.is_empty() {
                let index = |i: usize| kept.as_ref().map(|k| k[i]).unwrap_or(i);
                let mut keep = vec![true; content.num_rows()];
                for (row, reason) in &bad {
                    keep[*row] = false;
                    dead.push(self.dead_letter(lines, index(*row), reason.clone()));
                }
                let mask = arrow::array::BooleanArray::from(keep.clone());
                content = crate::rows::filter_batch(&content, &mask)?;
                times = Some(arrow::compute::filter(&col, &mask)?);
                let rows: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).map(index).collect();
                kept = Some(rows);
                if content.num_rows() == 0 {
                    return Ok(Decoded {
                        batch: None,
                        dead,
                        encoded: None,
                    });
                }
            } else {
                times = Some(col);
            }
        }
        let n = content.num_rows();
        let index = |i: usize| kept.as_ref().map(|k| k[i]).unwrap_or(i);
        let offsets =
            Int64Array::from_iter_values((0..n).map(|i| lines.first_offset + index(i) as i64));
        let raw: ArrayRef = if self.raw {
            let mut raw = StringBuilder::with_capacity(n, lines.data.len());
            for i in 0..n {
                raw.append_value(lines.line_lossy(text, index(i)));
            }
            Arc::new(raw.finish())
        } else {
            Arc::new(StringArray::new(
                arrow::buffer::OffsetBuffer::new_zeroed(n),
                arrow::buffer::Buffer::from_vec(Vec::<u8>::new()),
                None,
            ))
        };
        let mut columns: Vec<ArrayRef> = content.columns().to_vec();
        if let (Some(c), Some(t)) = (self.timestamp_col, times) {
            columns[c] = t;
        }
        if let Some(c) = self.severity_col {
            columns[c] = normalize_severity(&columns[c])?;
        }
        if let Some(c) = self.message_col {
            if let Some(trimmed) = without_trailing_line_breaks(&columns[c]) {
                columns[c] = trimmed;
            }
        }
        // Put `_partition`, `_offset` and `_raw` where the schema has them.
        let partitions: ArrayRef = Arc::new(Int64Array::from(vec![lines.partition; n]));
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let mut content_cols = columns.into_iter();
        let offsets: ArrayRef = Arc::new(offsets);
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
            encoded: None,
        })
    }

    /// Each line read straight into the columns; a bad line goes to the
    /// dead letters alone. The kept lines' indices when some were not.
    fn decode_json_columns(
        &mut self,
        lines: &LineBatch,
        text: Option<&str>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(Option<RecordBatch>, Option<Vec<usize>>)> {
        let Some(columns) = self.columns.as_mut() else {
            return Ok((None, None));
        };
        let mut kept: Option<Vec<usize>> = None;
        let mut rejects = Vec::new();
        for i in 0..lines.len() {
            let taken = match too_long(self.max_line_bytes, lines.line(i)) {
                Some(reason) => Err(reason),
                None => match lines.line_str(text, i) {
                    Ok(line) => columns.push(line).map_err(|r| r.reason()),
                    Err(e) => Err(format!("not UTF-8: {e}")),
                },
            };
            match (taken, &mut kept) {
                (Ok(()), Some(k)) => k.push(i),
                (Ok(()), None) => {}
                (Err(reason), k) => {
                    k.get_or_insert_with(|| (0..i).collect());
                    rejects.push((i, reason));
                }
            }
        }
        let rows = columns.rows();
        let batch = RecordBatch::try_new(columns.schema().clone(), columns.finish())?;
        for (i, reason) in rejects {
            dead.push(self.dead_letter(lines, i, reason));
        }
        Ok(((rows > 0).then_some(batch), kept))
    }

    /// The whole batch in one pass of the vectorized JSON decoder.
    fn decode_json_fast(&mut self, lines: &LineBatch) -> Result<Option<RecordBatch>> {
        self.feed_bytes(&lines.data)?;
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

    /// A batch with bad lines. First the cheap way: lines that do not even
    /// look like an object (`{` … `}` — a cut or empty line) are set aside
    /// and the rest decoded in one pass; if that still fails, each line's
    /// syntax is checked (no tree is built) and the objects decoded
    /// together; only when a value does not fit its declared type are they
    /// decoded one by one to find it.
    fn decode_json_each(
        &mut self,
        lines: &LineBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(Option<RecordBatch>, Vec<usize>)> {
        let looks_like_object = |l: &[u8]| {
            let t = l.trim_ascii();
            t.first() == Some(&b'{') && t.last() == Some(&b'}')
        };
        let mut kept = Vec::with_capacity(lines.len());
        let mut set_aside = Vec::new();
        let mut fed = true;
        for i in 0..lines.len() {
            let line = lines.line(i);
            if !looks_like_object(line) {
                set_aside.push(i);
            } else if self.feed(line).is_ok() {
                kept.push(i);
            } else {
                fed = false;
                break;
            }
        }
        if fed {
            // Each kept line must have made exactly one row (not two
            // objects on one line).
            let whole = match self.decoder.flush() {
                Ok(Some(b)) if b.num_rows() == kept.len() => Some(Some(b)),
                Ok(None) if kept.is_empty() => Some(None),
                _ => None,
            };
            if let Some(batch) = whole {
                for i in set_aside {
                    let reason = not_an_object(lines.line(i))
                        .unwrap_or_else(|| "not a JSON object".to_string());
                    dead.push(self.dead_letter(lines, i, reason));
                }
                return Ok((batch, kept));
            }
        }
        self.decoder = Self::build_decoder(&self.content_schema)?;
        kept.clear();
        for i in 0..lines.len() {
            let line = lines.line(i);
            match not_an_object(line) {
                None => {
                    self.feed(line)?;
                    kept.push(i);
                }
                Some(reason) => dead.push(self.dead_letter(lines, i, reason)),
            }
        }
        match self.decoder.flush() {
            Ok(batch) => return Ok((batch, kept)),
            Err(_) => self.decoder = Self::build_decoder(&self.content_schema)?,
        }
        // A value that does not fit: find the lines, one by one.
        let mut good = Vec::with_capacity(kept.len());
        let mut probe = Self::build_decoder(&self.content_schema)?;
        for i in kept {
            let line = lines.line(i);
            match probe.decode(line).and_then(|_| probe.flush()) {
                Ok(_) => {
                    self.feed(line)?;
                    good.push(i);
                }
                Err(e) => {
                    probe = Self::build_decoder(&self.content_schema)?;
                    dead.push(self.dead_letter(
                        lines,
                        i,
                        format!("field does not fit its declared type: {e}"),
                    ));
                }
            }
        }
        Ok((self.decoder.flush()?, good))
    }

    /// Hands one whole line to the batch decoder, as one row.
    fn feed(&mut self, line: &[u8]) -> Result<()> {
        self.feed_bytes(line)?;
        // Separate values so the tape decoder sees one row per line.
        self.decoder.decode(b"\n")?;
        Ok(())
    }

    /// Hands bytes to the batch decoder until it has taken them all.
    fn feed_bytes(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let read = self.decoder.decode(bytes)?;
            if read == 0 {
                break;
            }
            bytes = &bytes[read..];
        }
        Ok(())
    }

    /// logfmt, plain and regex lines: parsed into JSON objects, then decoded.
    fn decode_each(
        &mut self,
        lines: &LineBatch,
        text: Option<&str>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(Option<RecordBatch>, Vec<usize>)> {
        let mut rows: Vec<Map<String, Json>> = Vec::with_capacity(lines.len());
        let mut kept = Vec::with_capacity(lines.len());
        for i in 0..lines.len() {
            if is_blank(lines.line(i)) {
                continue;
            }
            if let Some(reason) = too_long(self.max_line_bytes, lines.line(i)) {
                dead.push(self.dead_letter(lines, i, reason));
                continue;
            }
            let line = match lines.line_str(text, i) {
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
                Format::Logfmt => Ok(self.dashes_to_nulls(parse_logfmt(line))),
                Format::Plain => {
                    let mut m = Map::new();
                    m.insert("message".into(), Json::String(line.to_string()));
                    Ok(m)
                }
                Format::Regex(_) => match self.regex.as_ref().and_then(|r| r.captures(line)) {
                    Some(caps) => {
                        Ok(self.dashes_to_nulls(captures_to_map(self.regex.as_ref(), &caps)))
                    }
                    None => Err("line does not match the source's regex".to_string()),
                },
            };
            match parsed {
                Ok(m) => {
                    rows.push(m);
                    kept.push(i);
                }
                Err(reason) => dead.push(self.dead_letter(lines, i, reason)),
            }
        }
        if rows.is_empty() {
            return Ok((None, kept));
        }
        // All rows at once; when a value does not fit its declared type
        // (found only when the columns are built), row by row to find it.
        match self
            .decoder
            .serialize(&rows)
            .and_then(|_| self.decoder.flush())
        {
            Ok(batch) => return Ok((batch, kept)),
            Err(_) => self.decoder = Self::build_decoder(&self.content_schema)?,
        }
        let mut good = Vec::with_capacity(rows.len());
        let mut good_lines = Vec::with_capacity(rows.len());
        let mut probe = Self::build_decoder(&self.content_schema)?;
        for (m, i) in rows.into_iter().zip(kept) {
            match probe
                .serialize(std::slice::from_ref(&m))
                .and_then(|_| probe.flush())
            {
                Ok(_) => {
                    good.push(m);
                    good_lines.push(i);
                }
                Err(e) => {
                    probe = Self::build_decoder(&self.content_schema)?;
                    dead.push(self.dead_letter(
                        lines,
                        i,
                        format!("field does not fit its declared type: {e}"),
                    ));
                }
            }
        }
        if good.is_empty() {
            return Ok((None, good_lines));
        }
        self.decoder.serialize(&good)?;
        Ok((self.decoder.flush()?, good_lines))
    }

    /// A lone `-` is how text logs write "no value" (the bytes of a 304 in
    /// an access log, nginx's `$upstream_response_time`): in a field
    /// declared as anything but text it is null, not a bad line.
    fn dashes_to_nulls(&self, mut m: Map<String, Json>) -> Map<String, Json> {
        use arrow::datatypes::DataType;
        m.retain(|k, v| {
            v.as_str() != Some("-")
                || self.content_schema.field_with_name(k).map_or(true, |f| {
                    matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) || k == TIMESTAMP
                })
        });
        m
    }

    /// Core fields missing from a line take the first of their other names
    /// that it has; the columns of other names are then dropped.
    /// Whether a batch lacks a core field somewhere and its text names one
    /// of that field's other names.
    fn uses_aliases(&self, content: &RecordBatch, lines: &LineBatch) -> bool {
        self.aliases.iter().any(|(core, from)| {
            self.keeps(*core)
                && content.column(*core).null_count() > 0
                && from.iter().any(|&i| {
                    let name = self.alias_schema.field(i).name().as_bytes();
                    memchr::memmem::find(&lines.data, name).is_some()
                })
        })
    }

    fn fill_from_aliases(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if !self.aliases_on {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        for (core, from) in &self.aliases {
            for &alias in from {
                if columns[*core].null_count() == 0 {
                    break;
                }
                let other = &columns[alias];
                if other.null_count() == other.len() {
                    continue;
                }
                let target = columns[*core].data_type().clone();
                let other = arrow::compute::cast(other, &target)?;
                let present = arrow::compute::is_not_null(&columns[*core])?;
                columns[*core] =
                    arrow::compute::kernels::zip::zip(&present, &columns[*core], &other)?;
            }
        }
        columns.truncate(self.content_width);
        Ok(RecordBatch::try_new(self.base_schema.clone(), columns)?)
    }

    /// The `timestamp` text column as times: missing ones — null, empty,
    /// or a lone `-` (syslog's and access logs' "no value") — are the
    /// arrival time; the rows whose text is no time, with the reason.
    fn parse_timestamps(
        &self,
        col: &ArrayRef,
        received_at_us: i64,
    ) -> Result<(ArrayRef, Vec<(usize, String)>)> {
        let text: &StringArray = crate::expr::text(col)?;
        let mut out = Vec::with_capacity(text.len());
        let mut bad = Vec::new();
        for (row, v) in text.iter().enumerate() {
            out.push(match v.map(str::trim) {
                None | Some("" | "-") => received_at_us,
                Some(t) => match self.timestamps.parse(t, received_at_us) {
                    Ok(us) => us,
                    Err(e) => {
                        bad.push((row, format!("timestamp: {e}")));
                        received_at_us
                    }
                },
            });
        }
        let times = TimestampMicrosecondArray::from(out).with_data_type(timestamp_type());
        Ok((Arc::new(times), bad))
    }

    fn dead_letter(&self, lines: &LineBatch, i: usize, reason: String) -> DeadLetter {
        let (origin, time) = self
            .letter_common
            .get_or_init(|| (lines.origin.as_deref().map(Arc::from), DeadLetter::now()));
        DeadLetter {
            source: self.source.clone(),
            origin: origin.clone(),
            partition: lines.partition,
            offset: lines.first_offset + i as i64,
            reason,
            line: lines.line_lossy(None, i).into_owned(),
            time: time.clone(),
        }
    }
}

/// The column without the line breaks that end some values (Docker's
/// json-file logs end every `log` with one, CRI's partial lines too);
/// `None` when no value ends in one.
fn without_trailing_line_breaks(col: &ArrayRef) -> Option<ArrayRef> {
    let s = col.as_any().downcast_ref::<StringArray>()?;
    let (offsets, bytes) = (s.value_offsets(), s.value_data());
    let ends_in_break = |w: &[i32]| w[1] > w[0] && bytes.get(w[1] as usize - 1) == Some(&b'\n');
    if !offsets.windows(2).any(ends_in_break) {
        return None;
    }
    let trimmed: StringArray = s
        .iter()
        .map(|v| v.map(|v| v.trim_end_matches(['\n', '\r'])))
        .collect();
    Some(Arc::new(trimmed))
}

/// Whether a line is no event: nothing but ASCII whitespace (what JSON,
/// logfmt and the line formats all treat as space between values). One
/// definition for every format.
fn is_blank(line: &[u8]) -> bool {
    line.trim_ascii().is_empty()
}

/// `lines` with the bytes that are not UTF-8 replaced with U+FFFD (the
/// same lines, offsets and origin).
fn lossy(lines: &LineBatch) -> LineBatch {
    let mut out = LineBatch {
        data: Vec::with_capacity(lines.data.len() + 64),
        ends: Vec::with_capacity(lines.len()),
        first_offset: lines.first_offset,
        received_at_us: lines.received_at_us,
        partition: lines.partition,
        origin: lines.origin.clone(),
    };
    for line in lines.lines() {
        out.data
            .extend_from_slice(String::from_utf8_lossy(line).as_bytes());
        out.ends.push(out.data.len() as u32);
        out.data.push(b'\n');
    }
    out
}

/// Why a line is over `max` bytes, if it is.
fn too_long(max: usize, line: &[u8]) -> Option<String> {
    (line.len() > max).then(|| format!("line of {} bytes is over the {max} byte limit", line.len()))
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
    // A stream writes a handful of spellings: each is ranked once.
    let mut seen: Vec<(&str, Option<&'static str>)> = Vec::with_capacity(8);
    let mut out = StringBuilder::with_capacity(s.len(), s.len() * 5);
    for v in s.iter() {
        let Some(v) = v else {
            out.append_null();
            continue;
        };
        let name = match seen.iter().find(|(w, _)| *w == v) {
            Some((_, name)) => *name,
            None => {
                let name = severity::rank(v).map(severity::name);
                if seen.len() < 32 {
                    seen.push((v, name));
                }
                name
            }
        };
        out.append_value(name.unwrap_or(v));
    }
    Ok(Arc::new(out.finish()))
}

/// Why a line is not one JSON object (checking its syntax, building no
/// tree); none when it is one.
fn not_an_object(line: &[u8]) -> Option<String> {
    match serde_json::from_slice::<&serde_json::value::RawValue>(line) {
        Ok(raw) if raw.get().starts_with('{') => None,
        Ok(_) => Some("not a JSON object".to_string()),
        Err(e) => Some(format!("invalid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

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
    fn only_the_fields_read_are_built_and_bad_values_still_dead_letter() {
        let needs = weir_dsl::reads::Needs {
            fields: Some(["service".to_string()].into_iter().collect()),
            raw: false,
        };
        let mut d = LineDecoder::new("app", &Format::Json, &schema())
            .unwrap_or_else(|e| panic!("{e}"))
            .reading(&needs);
        let out = d
            .decode(&lines(&[
                r#"{"timestamp":"2026-01-01T00:00:00Z","service":"api","message":"hi","status":500}"#,
                r#"{"service":"db","status":"many"}"#,
                // `msg` names the message, which is not read: no second pass.
                r#"{"timestamp":"2026-01-01T00:00:01Z","service":"web","msg":"x"}"#,
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!("no batch"));
        assert_eq!(b.schema(), d.schema(), "the schema is the source's whole");
        let col = |name: &str| b.column_by_name(name).unwrap_or_else(|| panic!("{name}"));
        let service = col("service");
        let service = service.as_string::<i32>();
        assert_eq!((service.value(0), service.value(1)), ("api", "web"));
        assert_eq!(col("message").null_count(), 2, "not read, not built");
        assert_eq!(col("status").null_count(), 2);
        let ts = col("timestamp");
        let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(
            ts.value(0),
            1_767_225_600_000_000,
            "the event time is always read"
        );
        let raw = col("_raw");
        assert_eq!(
            raw.as_string::<i32>().value(0),
            "",
            "`_raw` is not built unless read"
        );
        assert_eq!(
            out.dead.len(),
            1,
            "a value that does not fit is checked all the same"
        );
        assert_eq!(out.dead[0].offset, 101);
        assert!(
            out.dead[0].reason.contains("`status`"),
            "{}",
            out.dead[0].reason
        );
        assert!(
            !d.aliases_on,
            "a field not read does not turn on its other names"
        );
    }

    /// A pool of `width` JSON decoders of source `app`.
    fn json_pool(width: usize, encode: bool) -> DecodePool {
        let decoders = (0..width)
            .map(|_| {
                LineDecoder::new("app", &Format::Json, &schema()).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        DecodePool::new(decoders, encode)
    }

    #[tokio::test]
    async fn the_pool_encodes_dead_letters_where_it_decodes_them_when_asked() {
        for (width, encode) in [(1, true), (2, true), (2, false)] {
            let mut pool = json_pool(width, encode);
            let batch = lines(&[
                r#"{"service":"a"}"#,
                r#"{"service":"b""#,
                r#"{"service":"c"}"#,
            ]);
            let mut done = pool.submit(batch).await.unwrap_or_else(|e| panic!("{e}"));
            done.extend(pool.drain().await.unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(done.len(), 1, "width {width}");
            let d = &done[0];
            assert_eq!(d.batch.as_ref().map(|b| b.num_rows()), Some(2));
            match (&d.encoded, encode) {
                (Some((count, json)), true) => {
                    assert!(d.dead.is_empty());
                    assert_eq!(*count, 1);
                    assert_eq!(json.last(), Some(&b'\n'));
                    let v: serde_json::Value = serde_json::from_slice(json.trim_ascii_end())
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(v["source"], "app");
                    assert_eq!(v["offset"], 101);
                    assert_eq!(v["line"], r#"{"service":"b""#);
                    assert!(v["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("invalid JSON")));
                }
                (None, false) => assert_eq!(d.dead.len(), 1),
                (got, _) => panic!("width {width}, encode {encode}: {got:?}"),
            }
        }
    }

    /// Lines loaded by a decoder, numbered from 0 until asked, then from
    /// `first`.
    #[derive(Debug)]
    struct Loaded {
        lines: &'static [&'static str],
        first: i64,
    }

    impl crate::connector::LoadLines for Loaded {
        fn bytes(&self) -> u64 {
            self.lines.iter().map(|l| l.len() as u64 + 1).sum()
        }
        fn load(&mut self) -> Result<LineBatch> {
            let mut b = lines(self.lines);
            b.first_offset = 0;
            Ok(b)
        }
        fn first_offset(&mut self) -> Result<i64> {
            Ok(self.first)
        }
    }

    #[tokio::test]
    async fn loaded_lines_are_renumbered_once_their_first_number_is_known() {
        for (width, encode) in [(1, false), (2, false), (2, true)] {
            let mut pool = json_pool(width, encode);
            let mut done = Vec::new();
            for (lines, first) in [
                (&[r#"{"service":"a"}"#, r#"{"service":"b""#][..], 7),
                (&[][..], 9),
                (&["", r#"{"service":"c"}"#, "nope"][..], 9),
            ] {
                let load: Box<dyn crate::connector::LoadLines> = Box::new(Loaded { lines, first });
                done.extend(pool.submit(load).await.unwrap_or_else(|e| panic!("{e}")));
            }
            done.extend(pool.drain().await.unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(done.len(), 3, "width {width}");
            let offsets = |d: &Decoded| -> Vec<i64> {
                d.batch.as_ref().map_or(Vec::new(), |b| {
                    let col = b.column_by_name("_offset").unwrap_or_else(|| panic!());
                    col.as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec()
                })
            };
            assert_eq!(offsets(&done[0]), [7]);
            assert!(done[1].batch.is_none(), "no lines, no batch");
            assert_eq!(offsets(&done[2]), [10]);
            let letters: Vec<i64> = done
                .iter()
                .flat_map(|d| match &d.encoded {
                    Some((_, json)) => json
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            let v: serde_json::Value =
                                serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}"));
                            v["offset"].as_i64().unwrap_or(-1)
                        })
                        .collect::<Vec<_>>(),
                    None => d.dead.iter().map(|l| l.offset).collect(),
                })
                .collect();
            assert_eq!(letters, [8, 11], "width {width}, encode {encode}");
        }
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

    #[test]
    fn timestamps_in_every_form_and_bad_ones_go_to_the_dead_letters() {
        let mut d = LineDecoder::new("app", &Format::Json, &schema())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timestamps(
                TimestampParser::new(None, Some("+01:00")).unwrap_or_else(|e| panic!("{e}")),
            );
        let out = d
            .decode(&lines(&[
                r#"{"timestamp":1700000000,"status":1}"#,
                r#"{"timestamp":"2015-07-29 17:41:44,747","status":2}"#,
                r#"{"timestamp":"yesterday","status":3}"#,
                r#"{"timestamp":"10/Oct/2026:13:55:36 +0000","status":4}"#,
                r#"{"status":5}"#,
                r#"{"timestamp":"","status":6}"#,
                r#"{"timestamp":" - ","status":7}"#,
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!("no batch"));
        assert_eq!(b.num_rows(), 6);
        assert_eq!(out.dead.len(), 1);
        assert_eq!(out.dead[0].offset, 102);
        assert!(
            out.dead[0].reason.contains("yesterday"),
            "{}",
            out.dead[0].reason
        );
        let ts = b.column_by_name("timestamp").unwrap_or_else(|| panic!());
        let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_700_000_000_000_000);
        // 2015-07-29T16:41:44.747Z: zone-less, so +01:00.
        assert_eq!(ts.value(1), 1_438_188_104_747_000);
        assert_eq!(ts.value(2), 1_791_640_536_000_000);
        assert_eq!(ts.value(3), 7, "missing: the arrival time");
        assert_eq!(
            (ts.value(4), ts.value(5)),
            (7, 7),
            "empty or -: the arrival time"
        );
        let off = b.column_by_name("_offset").unwrap_or_else(|| panic!());
        let off: Vec<i64> = off
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(
            off,
            [100, 101, 103, 104, 105, 106],
            "offsets skip the dead line"
        );

        // The same through the line-by-line path (regex), with an explicit format.
        let re = r"^(?P<timestamp>\S+ \S+) (?P<message>.*)$";
        let mut d = LineDecoder::new("web", &Format::Regex(re.into()), &Schema::core())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timestamps(
                TimestampParser::new(Some("%Y%m%d %H%M%S"), None).unwrap_or_else(|e| panic!("{e}")),
            );
        let out = d
            .decode(&lines(&[
                "20151109 203615 ok",
                "2015-11-09 20:36:15 wrong form",
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(1));
        assert_eq!(out.dead.len(), 1);
        assert!(
            out.dead[0].reason.contains("%Y%m%d %H%M%S"),
            "{}",
            out.dead[0].reason
        );
    }

    /// Blank lines (NDJSON files end in them, some loggers space records
    /// with them) are no events and no dead letters in any format, in the
    /// fast and the careful JSON paths alike; the other lines keep their
    /// offsets. A byte-order mark before a line is not part of it.
    #[test]
    fn blank_lines_are_skipped_and_byte_order_marks_stripped() {
        let formats = [
            (Format::Json, r#"{"service":"api","status":1}"#),
            (Format::Logfmt, "service=api status=1"),
            (Format::Plain, "api 1"),
            (
                Format::Regex(r"^(?P<service>\w+) (?P<status>\d+)$".into()),
                "api 1",
            ),
        ];
        for (format, line) in formats {
            for dirty in [false, true] {
                let mut d =
                    LineDecoder::new("b", &format, &schema()).unwrap_or_else(|e| panic!("{e}"));
                let mut chunk = format!("\u{feff}{line}\r\n\n  \t\r\n{line}\n\n").into_bytes();
                if dirty {
                    chunk.extend_from_slice(b"{\"cut\n");
                }
                let mut batch = LineBatch {
                    first_offset: 10,
                    ..LineBatch::default()
                };
                let taken = batch.extend_lines(&chunk, 100, 1 << 20);
                assert_eq!(taken, chunk.len());
                assert_eq!(batch.line(0), line.as_bytes(), "the mark is stripped");
                let out = d.decode(&batch).unwrap_or_else(|e| panic!("{e}"));
                let b = out.batch.unwrap_or_else(|| panic!("{format:?}: no batch"));
                let off = b.column_by_name("_offset").unwrap_or_else(|| panic!());
                let off: Vec<i64> = off
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec();
                let dead: Vec<i64> = out.dead.iter().map(|d| d.offset).collect();
                match (&format, dirty) {
                    // A cut line is text like any other in these formats.
                    (Format::Logfmt | Format::Plain, true) => {
                        assert_eq!(off, vec![10, 13, 15], "{format:?}")
                    }
                    (_, true) => {
                        assert_eq!(off, vec![10, 13], "{format:?}");
                        assert_eq!(dead, vec![15], "{format:?}");
                    }
                    (_, false) => {
                        assert_eq!(off, vec![10, 13], "{format:?}");
                        assert!(dead.is_empty(), "{format:?}: {:?}", out.dead);
                    }
                }
            }
        }
    }

    /// `-` is "none" in text logs: null in a typed field, text in a
    /// string field; any other value that is not a number is still a bad
    /// line.
    #[test]
    fn a_lone_dash_is_null_in_a_typed_field_of_a_text_format() {
        let mut s = Schema::core();
        s.push("status", Type::Int);
        s.push("upstream", Type::Float);
        s.push("user", Type::String);
        for format in [
            Format::Regex(r"^(?P<status>\S+) (?P<upstream>\S+) (?P<user>\S+)$".into()),
            Format::Logfmt,
        ] {
            let mut d = LineDecoder::new("web", &format, &s).unwrap_or_else(|e| panic!("{e}"));
            let batch = if format == Format::Logfmt {
                lines(&["status=200 upstream=- user=-", "status=x upstream=1 user=a"])
            } else {
                lines(&["200 - -", "x 1 a"])
            };
            let out = d.decode(&batch).unwrap_or_else(|e| panic!("{e}"));
            let b = out.batch.unwrap_or_else(|| panic!("no batch"));
            assert_eq!(b.num_rows(), 1, "{format:?}");
            let up = b.column_by_name("upstream").unwrap_or_else(|| panic!());
            assert!(up.is_null(0), "{format:?}");
            let user = b.column_by_name("user").unwrap_or_else(|| panic!());
            assert_eq!(user.as_string::<i32>().value(0), "-", "{format:?}");
            assert_eq!(out.dead.len(), 1, "{format:?}: `x` is no int");
        }
    }

    /// Docker's json-file lines carry the container's line, line break
    /// included, in `log` (a name of `message`): the break is not kept.
    #[test]
    fn docker_json_file_lines_lose_their_line_break() {
        let mut d =
            LineDecoder::new("k8s", &Format::Json, &schema()).unwrap_or_else(|e| panic!("{e}"));
        let out = d
            .decode(&lines(&[
                r#"{"log":"db down
","stream":"stderr","time":"2026-03-01T00:00:00.5Z"}"#,
                r#"{"message":"two
"}"#,
                r#"{"message":"kept
in the middle"}"#,
            ]))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = out.batch.unwrap_or_else(|| panic!("no batch"));
        let m = b.column_by_name("message").unwrap_or_else(|| panic!());
        let m: Vec<&str> = m.as_string::<i32>().iter().flatten().collect();
        assert_eq!(m, ["db down", "two", "kept\nin the middle"]);
    }

    /// A byte that is not UTF-8 (Latin-1 text in a JSON log) costs the
    /// character, not the line: the event is read with U+FFFD in its place,
    /// and its other lines and offsets are untouched.
    #[test]
    fn bytes_that_are_not_utf8_are_replaced_not_dead_lettered() {
        for format in [Format::Json, Format::Logfmt, Format::Plain] {
            let mut d = LineDecoder::new("u", &format, &schema()).unwrap_or_else(|e| panic!("{e}"));
            let mut batch = LineBatch {
                first_offset: 7,
                ..LineBatch::default()
            };
            let bad: &[u8] = match format {
                Format::Json => b"{\"service\":\"caf\xe9\",\"status\":2}",
                Format::Logfmt => b"service=caf\xe9 status=2",
                _ => b"caf\xe9 2",
            };
            batch.push(b"{\"service\":\"a\"}");
            batch.push(bad);
            let out = d.decode(&batch).unwrap_or_else(|e| panic!("{e}"));
            assert!(out.dead.is_empty(), "{format:?}: {:?}", out.dead);
            let b = out.batch.unwrap_or_else(|| panic!("no batch"));
            assert_eq!(b.num_rows(), 2, "{format:?}");
            let column = if matches!(format, Format::Plain) {
                "message"
            } else {
                "service"
            };
            let text = b.column_by_name(column).unwrap_or_else(|| panic!());
            assert!(
                text.as_string::<i32>().value(1).starts_with("caf\u{fffd}"),
                "{format:?}"
            );
            let off = b.column_by_name("_offset").unwrap_or_else(|| panic!());
            assert_eq!(
                off.as_primitive::<arrow::datatypes::Int64Type>().value(1),
                8
            );
        }
    }

    /// Random and mutated lines in every format never fail a batch, and
    /// every line comes out as an event or as a dead letter.
    #[test]
    fn every_line_is_an_event_or_a_dead_letter_in_every_format() {
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let formats = [
            (
                Format::Json,
                r#"{"timestamp":"2026-01-01T00:00:0SZ","service":"api","status":N,"severity":"warn"}"#,
            ),
            (
                Format::Logfmt,
                "timestamp=2026-01-01T00:00:0SZ service=api status=N level=warn",
            ),
            (Format::Plain, "2026-01-01 00:00:0S api status N"),
            (
                Format::Regex(r"^(?P<timestamp>\S+) (?P<service>\w+) (?P<status>\S+)$".into()),
                "2026-01-01T00:00:0SZ api N",
            ),
        ];
        for (format, template) in formats {
            let mut d =
                LineDecoder::new("fuzz", &format, &schema()).unwrap_or_else(|e| panic!("{e}"));
            let mut total = 0usize;
            let mut out = 0usize;
            for round in 0..40 {
                let n = (next() % 300 + 1) as usize;
                let mut batch = LineBatch {
                    first_offset: round * 1000,
                    ..LineBatch::default()
                };
                let mut blank = 0;
                for _ in 0..n {
                    let mut line = template
                        .replace('S', &(next() % 10).to_string())
                        .replace('N', &(next() % 600).to_string())
                        .into_bytes();
                    match next() % 10 {
                        0 => line.truncate((next() as usize) % (line.len() + 1)),
                        1 => {
                            let at = (next() as usize) % (line.len() + 1);
                            line.insert(at, (next() % 256) as u8);
                        }
                        2 => line = b"status=oops \xff\xfe {".to_vec(),
                        3 => {
                            let text =
                                String::from_utf8_lossy(&line).replace("2026-01-01", "2026-13-45");
                            line = text.into_bytes();
                        }
                        4 => line = b" \t"[..(next() % 3) as usize].to_vec(),
                        _ => {}
                    }
                    blank += usize::from(is_blank(&line));
                    batch.push(&line);
                }
                let got = d
                    .decode(&batch)
                    .unwrap_or_else(|e| panic!("{format:?}: a batch failed: {e}"));
                let rows = got.batch.map_or(0, |b| b.num_rows());
                assert_eq!(
                    rows + got.dead.len() + blank,
                    n,
                    "{format:?}: lines lost or doubled"
                );
                assert!(got.dead.iter().all(|d| !is_blank(d.line.as_bytes())));
                total += n - blank;
                out += rows + got.dead.len();
            }
            assert_eq!(out, total);
        }
    }

    /// JSON from other shippers and loggers names the core fields its own
    /// way; a line's own `timestamp`/`severity`/`message` still wins.
    #[test]
    fn other_shippers_names_fill_the_core_fields() {
        for format in [Format::Json, Format::Logfmt] {
            let mut d =
                LineDecoder::new("app", &format, &schema()).unwrap_or_else(|e| panic!("{e}"));
            let text = match format {
                Format::Json => [
                    r#"{"time":1700000000123,"level":30,"msg":"pino","status":1}"#,
                    r#"{"@timestamp":"2026-01-01T00:00:00Z","lvl":"E","log":"fluent bit"}"#,
                    r#"{"timestamp":"2026-01-01T00:00:01Z","ts":"garbage","severity":"debug","level":"error","message":"own","msg":"alias"}"#,
                ],
                _ => [
                    "time=1700000000123 level=30 msg=pino status=1",
                    "@timestamp=2026-01-01T00:00:00Z lvl=E log=\"fluent bit\"",
                    "timestamp=2026-01-01T00:00:01Z ts=garbage severity=debug level=error message=own msg=alias",
                ],
            };
            let out = d.decode(&lines(&text)).unwrap_or_else(|e| panic!("{e}"));
            assert!(out.dead.is_empty(), "{format:?}: {:?}", out.dead);
            let b = out.batch.unwrap_or_else(|| panic!("no batch"));
            let col = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("{n}")).clone();
            let ts = col("timestamp");
            let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            assert_eq!(ts.value(0), 1_700_000_000_123_000, "{format:?}");
            assert_eq!(ts.value(1), 1_767_225_600_000_000);
            assert_eq!(ts.value(2), 1_767_225_601_000_000);
            let sev = col("severity");
            let sev: Vec<_> = sev
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or(""))
                .collect();
            assert_eq!(sev, ["INFO", "ERROR", "DEBUG"], "{format:?}");
            let msg = col("message");
            let msg: Vec<_> = msg
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or(""))
                .collect();
            assert_eq!(msg, ["pino", "fluent bit", "own"], "{format:?}");
            assert_eq!(b.num_columns(), d.schema().fields().len());
        }
    }

    /// The dirty path: cut lines, two objects on one line, a value of the
    /// wrong type, blank lines (skipped); the good lines keep their offsets.
    #[test]
    fn dirty_batches_keep_every_good_line() {
        let mut d =
            LineDecoder::new("app", &Format::Json, &schema()).unwrap_or_else(|e| panic!("{e}"));
        for round in 0..3 {
            let out = d
                .decode(&lines(&[
                    r#"{"service":"a","status":1}"#,
                    r#"{"service":"b"}{"service":"c"}"#,
                    r#"{"service":"d","sta"#,
                    r#"{"service":"e","status":"many"}"#,
                    "",
                    r#"{"service":"f","status":6}"#,
                ]))
                .unwrap_or_else(|e| panic!("{e}"));
            let b = out.batch.unwrap_or_else(|| panic!("no batch"));
            let services = b
                .column_by_name("service")
                .unwrap_or_else(|| panic!())
                .clone();
            let services: Vec<_> = services.as_string::<i32>().iter().flatten().collect();
            assert_eq!(services, ["a", "f"], "round {round}");
            let off = b
                .column_by_name("_offset")
                .unwrap_or_else(|| panic!())
                .clone();
            let off = off
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec();
            assert_eq!(off, [100, 105]);
            let mut dead: Vec<(i64, &str)> = out
                .dead
                .iter()
                .map(|l| (l.offset, l.reason.split(':').next().unwrap_or("")))
                .collect();
            dead.sort();
            assert_eq!(
                dead,
                [
                    (101, "invalid JSON"),
                    (102, "invalid JSON"),
                    (103, "field does not fit its declared type"),
                ],
                "round {round}"
            );
        }
    }
}
