//! JSON lines straight into Arrow columns: one pass over each line reads the
//! declared members into their column builders and skips every other member
//! (checking its syntax, building nothing) — no tree and no tape. A line
//! that is not one JSON object, or whose declared member does not fit its
//! type, is rejected alone with its reason and the rest of the batch is
//! kept, so a dirty stream costs what its bad lines cost.
//!
//! Values are taken as Arrow's JSON reader takes them (the decoder still
//! uses it for types this one does not build): a text column takes strings,
//! and numbers and booleans as written; an integer or float column takes
//! numbers and numeric strings (an integer column drops a fraction); a
//! boolean column takes `true` and `false`; `null` or a missing member is
//! null; a member given twice keeps its last value.

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use std::sync::Arc;

/// How deep skipped objects and arrays may nest.
const MAX_DEPTH: u32 = 128;

/// How many member names of a line are remembered for the next.
const SHAPE_MAX: usize = 64;

/// Why a line was not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// Not JSON at all.
    Syntax(String),
    /// JSON, but not an object.
    NotAnObject,
    /// A declared member's value does not fit the field's type.
    Type(String),
}

impl Rejected {
    /// The dead letter's reason.
    pub fn reason(&self) -> String {
        match self {
            Rejected::Syntax(e) => format!("invalid JSON: {e}"),
            Rejected::NotAnObject => "not a JSON object".to_string(),
            Rejected::Type(e) => format!("field does not fit its declared type: {e}"),
        }
    }
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
}

/// Where a member's value is in the line, and what it is.
#[derive(Clone, Copy)]
enum Span {
    /// A string's content without its quotes; `escaped` when it has `\`.
    Str {
        start: u32,
        end: u32,
        escaped: bool,
    },
    Number {
        start: u32,
        end: u32,
    },
    Bool(bool),
    Null,
    Object,
    Array,
}

/// A value ready for its builder; text borrowed from the line or from the
/// line's unescaped text.
enum Value {
    Null,
    Line(u32, u32),
    Unescaped(u32, u32),
    Static(&'static str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Builds the columns of a schema of text, integer, float and boolean fields
/// from JSON lines.
pub struct JsonColumns {
    schema: SchemaRef,
    names: Vec<Box<[u8]>>,
    builders: Vec<Builder>,
    keys: NameIndex,
    /// The member names of the last line, in order, each with its closing
    /// quote, and their columns: logs write their members in the same order
    /// line after line, so a name is first compared with the one at its
    /// place in the line before.
    shape: Vec<(Box<[u8]>, Option<usize>)>,
    spans: Vec<Option<Span>>,
    values: Vec<Value>,
    /// The columns built; the others are checked like them (a line whose
    /// value does not fit is still rejected) but come out null.
    keep: Vec<bool>,
    unescaped: String,
    rows: usize,
}

impl JsonColumns {
    /// `None` when the schema has a type this decoder does not build.
    pub fn new(schema: &SchemaRef) -> Option<JsonColumns> {
        let mut builders = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            builders.push(match f.data_type() {
                DataType::Utf8 => Builder::Text(StringBuilder::new()),
                DataType::Int64 => Builder::Int(Int64Builder::new()),
                DataType::Float64 => Builder::Float(Float64Builder::new()),
                DataType::Boolean => Builder::Bool(BooleanBuilder::new()),
                _ => return None,
            });
        }
        let names: Vec<Box<[u8]>> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_bytes().into())
            .collect();
        Some(JsonColumns {
            schema: schema.clone(),
            keys: NameIndex::new(&names),
            shape: Vec::new(),
            spans: vec![None; names.len()],
            values: Vec::with_capacity(names.len()),
            keep: vec![true; names.len()],
            names,
            builders,
            unescaped: String::new(),
            rows: 0,
        })
    }

    /// Builds only the columns `keep` marks (in the schema's order); the
    /// others are null.
    pub fn keeping(mut self, keep: Vec<bool>) -> JsonColumns {
        if keep.len() == self.keep.len() {
            self.keep = keep;
        }
        self
    }

    /// Rows taken since the last [`JsonColumns::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Reads one line into a row, or rejects it (and adds nothing).
    pub fn push(&mut self, line: &str) -> Result<(), Rejected> {
        self.spans.fill(None);
        self.scan(line.as_bytes())?;
        self.convert(line.as_bytes())?;
        for ((b, v), keep) in self
            .builders
            .iter_mut()
            .zip(self.values.drain(..))
            .zip(&self.keep)
        {
            if *keep {
                append(b, v, line, &self.unescaped);
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The columns of the rows taken so far, in the schema's order; starts
    /// over.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        let rows = std::mem::take(&mut self.rows);
        // The next batch's builders start at this one's size: growing them
        // from nothing would copy each column several times over.
        self.builders
            .iter_mut()
            .zip(&self.keep)
            .zip(self.schema.fields())
            .map(|((b, keep), field)| -> ArrayRef {
                if !keep {
                    return arrow::array::new_null_array(field.data_type(), rows);
                }
                match b {
                    Builder::Text(b) => {
                        let a = b.finish();
                        *b = StringBuilder::with_capacity(rows, a.values().len());
                        Arc::new(a)
                    }
                    Builder::Int(b) => {
                        let a = b.finish();
                        *b = Int64Builder::with_capacity(rows);
                        Arc::new(a)
                    }
                    Builder::Float(b) => {
                        let a = b.finish();
                        *b = Float64Builder::with_capacity(rows);
                        Arc::new(a)
                    }
                    Builder::Bool(b) => {
                        let a = b.finish();
                        *b = BooleanBuilder::with_capacity(rows);
                        Arc::new(a)
                    }
                }
            })
            .collect()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Finds the declared members of one line (their spans) and checks the
    /// syntax of the whole line.
    fn scan(&mut self, line: &[u8]) -> Result<(), Rejected> {
        let mut p = Cursor { b: line, i: 0 };
        p.ws();
        match p.peek() {
            Some(b'{') => p.i += 1,
            None => return Err(Rejected::Syntax("empty line".into())),
            Some(_) => {
                p.value(0).map_err(Rejected::Syntax)?;
                p.ws();
                return Err(match p.peek() {
                    None => Rejected::NotAnObject,
                    Some(_) => Rejected::Syntax(p.unexpected("the end of the line")),
                });
            }
        }
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            let mut member = 0;
            loop {
                if p.peek() != Some(b'"') {
                    return Err(Rejected::Syntax(p.unexpected("a member name in quotes")));
                }
                let column = match self.shape.get(member) {
                    Some((name, column)) if same_at(line, p.i + 1, name) => {
                        p.i += 1 + name.len();
                        *column
                    }
                    _ => {
                        let (start, end, escaped) = p.string().map_err(Rejected::Syntax)?;
                        let key = &line[start as usize..end as usize];
                        let column = if escaped {
                            unescape(key)
                                .ok()
                                .and_then(|k| self.keys.find(k.as_bytes(), &self.names))
                        } else {
                            self.keys.find(key, &self.names)
                        };
                        if !escaped && member < SHAPE_MAX && member <= self.shape.len() {
                            // The name and its closing quote.
                            let name: Box<[u8]> = line[start as usize..=end as usize].into();
                            if member == self.shape.len() {
                                self.shape.push((name, column));
                            } else {
                                self.shape[member] = (name, column);
                            }
                        }
                        column
                    }
                };
                member += 1;
                p.ws();
                if p.peek() != Some(b':') {
                    return Err(Rejected::Syntax(p.unexpected("`:` after a member name")));
                }
                p.i += 1;
                p.ws();
                let span = p.value(1).map_err(Rejected::Syntax)?;
                if let Some(c) = column {
                    self.spans[c] = Some(span);
                }
                p.ws();
                match p.peek() {
                    Some(b',') => {
                        p.i += 1;
                        p.ws();
                    }
                    Some(b'}') => {
                        p.i += 1;
                        break;
                    }
                    _ => return Err(Rejected::Syntax(p.unexpected("`,` or `}`"))),
                }
            }
        }
        p.ws();
        match p.peek() {
            None => Ok(()),
            Some(_) => Err(Rejected::Syntax(
                p.unexpected("the end of the line (one JSON object per line)"),
            )),
        }
    }

    /// Turns the spans into values of the columns' types.
    fn convert(&mut self, line: &[u8]) -> Result<(), Rejected> {
        self.values.clear();
        self.unescaped.clear();
        for (c, span) in self.spans.iter().enumerate() {
            let v = match (span, &self.builders[c]) {
                (None | Some(Span::Null), _) => Value::Null,
                (Some(span), Builder::Text(_)) => match *span {
                    Span::Str {
                        start,
                        end,
                        escaped,
                    } => {
                        let raw = &line[start as usize..end as usize];
                        if escaped {
                            let text = unescape(raw).map_err(Rejected::Syntax)?;
                            let from = self.unescaped.len() as u32;
                            self.unescaped.push_str(&text);
                            Value::Unescaped(from, self.unescaped.len() as u32)
                        } else {
                            Value::Line(start, end)
                        }
                    }
                    Span::Number { start, end } => Value::Line(start, end),
                    Span::Bool(true) => Value::Static("true"),
                    Span::Bool(false) => Value::Static("false"),
                    other => return Err(self.mismatch(c, "text", other)),
                },
                (Some(span), Builder::Int(_)) => match *span {
                    Span::Number { start, end } => {
                        let raw = &line[start as usize..end as usize];
                        Value::Int(parse_int(raw).ok_or_else(|| self.out_of_range(c, raw))?)
                    }
                    Span::Str { start, end, .. } => {
                        let raw = &line[start as usize..end as usize];
                        Value::Int(
                            parse_int(raw.trim_ascii())
                                .ok_or_else(|| self.not_a_number(c, "an integer", raw))?,
                        )
                    }
                    other => return Err(self.mismatch(c, "an integer", other)),
                },
                (Some(span), Builder::Float(_)) => match *span {
                    Span::Number { start, end } | Span::Str { start, end, .. } => {
                        let raw = &line[start as usize..end as usize];
                        Value::Float(
                            lexical_core::parse::<f64>(raw.trim_ascii())
                                .map_err(|_| self.not_a_number(c, "a number", raw))?,
                        )
                    }
                    other => return Err(self.mismatch(c, "a number", other)),
                },
                (Some(span), Builder::Bool(_)) => match *span {
                    Span::Bool(b) => Value::Bool(b),
                    other => return Err(self.mismatch(c, "true or false", other)),
                },
            };
            self.values.push(v);
        }
        Ok(())
    }

    fn name(&self, c: usize) -> String {
        String::from_utf8_lossy(&self.names[c]).into_owned()
    }

    fn mismatch(&self, c: usize, wanted: &str, found: Span) -> Rejected {
        let found = match found {
            Span::Str { .. } => "text",
            Span::Number { .. } => "a number",
            Span::Bool(_) => "a boolean",
            Span::Null => "null",
            Span::Object => "an object",
            Span::Array => "an array",
        };
        Rejected::Type(format!(
            "`{}` should be {wanted}, found {found}",
            self.name(c)
        ))
    }

    fn not_a_number(&self, c: usize, wanted: &str, raw: &[u8]) -> Rejected {
        Rejected::Type(format!(
            "`{}` should be {wanted}, found \"{}\"",
            self.name(c),
            String::from_utf8_lossy(&raw[..raw.len().min(64)])
        ))
    }

    fn out_of_range(&self, c: usize, raw: &[u8]) -> Rejected {
        Rejected::Type(format!(
            "`{}` should be an integer, {} is out of range",
            self.name(c),
            String::from_utf8_lossy(&raw[..raw.len().min(64)])
        ))
    }
}

fn append(b: &mut Builder, v: Value, line: &str, unescaped: &str) {
    match (b, v) {
        (Builder::Text(b), Value::Line(s, e)) => {
            // Spans start and end next to ASCII bytes (quotes, digits).
            b.append_value(line.get(s as usize..e as usize).unwrap_or_default())
        }
        (Builder::Text(b), Value::Unescaped(s, e)) => {
            b.append_value(unescaped.get(s as usize..e as usize).unwrap_or_default())
        }
        (Builder::Text(b), Value::Static(s)) => b.append_value(s),
        (Builder::Int(b), Value::Int(v)) => b.append_value(v),
        (Builder::Float(b), Value::Float(v)) => b.append_value(v),
        (Builder::Bool(b), Value::Bool(v)) => b.append_value(v),
        (Builder::Text(b), _) => b.append_null(),
        (Builder::Int(b), _) => b.append_null(),
        (Builder::Float(b), _) => b.append_null(),
        (Builder::Bool(b), _) => b.append_null(),
    }
}

/// An integer as Arrow's JSON reader reads one: exact, or a number's
/// integer part when it is in range.
fn parse_int(raw: &[u8]) -> Option<i64> {
    match lexical_core::parse::<i64>(raw) {
        Ok(v) => Some(v),
        Err(_) => {
            let f = lexical_core::parse::<f64>(raw).ok()?;
            (f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
        }
    }
}

/// A JSON string's content (without quotes) with its escapes undone.
fn unescape(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let esc = raw.get(i + 1).copied().ok_or("a string ends in `\\`")?;
        i += 2;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw, i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: the low half must follow.
                    let lo = if raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
                        hex4(raw, i + 2)?
                    } else {
                        0
                    };
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(format!("unpaired surrogate \\u{hi:04x} in a string"));
                    }
                    i += 6;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        .ok_or("invalid \\u escape")?
                } else {
                    char::from_u32(hi).ok_or_else(|| format!("unpaired surrogate \\u{hi:04x}"))?
                }
            }
            other => return Err(format!("invalid escape `\\{}`", other as char)),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|e| format!("a string is not UTF-8: {e}"))
}

fn hex4(raw: &[u8], at: usize) -> Result<u32, String> {
    let digits = raw
        .get(at..at + 4)
        .ok_or("a \\u escape needs four hex digits")?;
    let mut v = 0u32;
    for &d in digits {
        let n = (d as char)
            .to_digit(16)
            .ok_or("a \\u escape needs four hex digits")?;
        v = v * 16 + n;
    }
    Ok(v)
}

/// A position in a line, and the JSON grammar read from there.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.peek() {
            None => format!("the line ends where {wanted} should be (cut short?)"),
            Some(c) if c.is_ascii_graphic() => format!(
                "expected {wanted} at column {}, found `{}`",
                self.i + 1,
                c as char
            ),
            Some(c) => format!(
                "expected {wanted} at column {}, found byte 0x{c:02x}",
                self.i + 1
            ),
        }
    }

    /// At a `"`: the string's content span, and whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(u32, u32, bool), String> {
        let start = self.i + 1;
        let mut at = start;
        let mut escaped = false;
        while let Some(k) = quote_or_backslash(self.b, at) {
            if self.b[k] == b'"' {
                self.i = k + 1;
                return Ok((start as u32, k as u32, escaped));
            }
            escaped = true;
            let esc = k + 1;
            match self.b.get(esc) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at = esc + 1,
                Some(b'u') => {
                    let hex = self.b.get(esc + 1..esc + 5);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        self.i = esc;
                        return Err(format!(
                            "a \\u escape at column {esc} needs four hex digits"
                        ));
                    }
                    at = esc + 5;
                }
                Some(&c) => {
                    self.i = esc;
                    return Err(format!(
                        "invalid escape `\\{}` at column {esc}",
                        c.escape_ascii()
                    ));
                }
                None => break,
            }
        }
        self.i = self.b.len();
        Err(format!(
            "the line ends inside the string opened at column {start} (cut short?)"
        ))
    }

    /// At a number's first character: its span.
    #[inline]
    fn number(&mut self) -> Result<(u32, u32), String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let first = self.i;
        if !self.digits() {
            return Err(self.unexpected("a digit"));
        }
        if self.b[first] == b'0' && self.i > first + 1 {
            return Err(format!("a number at column {} starts with 0", first + 1));
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.digits() {
                return Err(self.unexpected("a digit after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.digits() {
                return Err(self.unexpected("an exponent"));
            }
        }
        Ok((start as u32, self.i as u32))
    }

    fn digits(&mut self) -> bool {
        let from = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i > from
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.unexpected("a JSON value"))
        }
    }

    /// Reads one value, checking its syntax: its span (objects and arrays,
    /// which no column takes, are stepped over; `depth` is how deep they
    /// sit). Inlined into the scan: a span returned through memory stalls
    /// the load that reads it back (a third of the decoder's time).
    #[inline(always)]
    fn value(&mut self, depth: u32) -> Result<Span, String> {
        Ok(match self.peek() {
            Some(b'"') => {
                let (start, end, escaped) = self.string()?;
                Span::Str {
                    start,
                    end,
                    escaped,
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let (start, end) = self.number()?;
                Span::Number { start, end }
            }
            Some(b't') => self.literal(b"true").map(|_| Span::Bool(true))?,
            Some(b'f') => self.literal(b"false").map(|_| Span::Bool(false))?,
            Some(b'n') => self.literal(b"null").map(|_| Span::Null)?,
            Some(b'{') => self.container(b'{', depth).map(|_| Span::Object)?,
            Some(b'[') => self.container(b'[', depth).map(|_| Span::Array)?,
            _ => return Err(self.unexpected("a JSON value")),
        })
    }

    /// At `{` or `[`: steps over the object or array, checking its syntax.
    #[inline(never)]
    fn container(&mut self, open: u8, depth: u32) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let close = if open == b'{' { b'}' } else { b']' };
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            if open == b'{' {
                if self.peek() != Some(b'"') {
                    return Err(self.unexpected("a member name in quotes"));
                }
                self.string()?;
                self.ws();
                if self.peek() != Some(b':') {
                    return Err(self.unexpected("`:` after a member name"));
                }
                self.i += 1;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => {
                    return Err(self.unexpected(if open == b'{' {
                        "`,` or `}`"
                    } else {
                        "`,` or `]`"
                    }))
                }
            }
        }
    }
}

/// Member names to columns: open addressing over a small power-of-two
/// table, hashed on length and three bytes (names are short and few).
struct NameIndex {
    slots: Vec<u16>,
    mask: usize,
}

const EMPTY: u16 = u16::MAX;

impl NameIndex {
    fn new(names: &[Box<[u8]>]) -> NameIndex {
        let size = (names.len() * 4).next_power_of_two().max(16);
        let mut slots = vec![EMPTY; size];
        for (c, name) in names.iter().enumerate().take(EMPTY as usize - 1) {
            let mut at = hash(name) & (size - 1);
            while slots[at] != EMPTY {
                at = (at + 1) & (size - 1);
            }
            slots[at] = c as u16;
        }
        NameIndex {
            slots,
            mask: size - 1,
        }
    }

    #[inline]
    fn find(&self, key: &[u8], names: &[Box<[u8]>]) -> Option<usize> {
        let mut at = hash(key) & self.mask;
        loop {
            let c = self.slots[at];
            if c == EMPTY {
                return None;
            }
            if key.len() == names[c as usize].len() && same_at(key, 0, &names[c as usize]) {
                return Some(c as usize);
            }
            at = (at + 1) & self.mask;
        }
    }
}

/// The eight bytes of `s` from `i` as one word (0 past the end).
#[inline]
fn word(s: &[u8], i: usize) -> u64 {
    s.get(i..)
        .and_then(|s| s.first_chunk::<8>())
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// Whether `b` holds `want` at `at`; compared eight bytes at a time in line
/// (names are short: a call to `memcmp` costs more than the comparison).
#[inline]
fn same_at(b: &[u8], at: usize, want: &[u8]) -> bool {
    let Some(got) = b.get(at..at + want.len()) else {
        return false;
    };
    let n = want.len();
    if n < 8 {
        let half = |s: &[u8], i: usize| {
            s.get(i..)
                .and_then(|s| s.first_chunk::<4>())
                .map_or(0, |w| u32::from_le_bytes(*w))
        };
        return match n {
            // Two four-byte halves, overlapping when shorter than eight.
            4.. => half(got, 0) == half(want, 0) && half(got, n - 4) == half(want, n - 4),
            _ => got.iter().zip(want).all(|(a, b)| a == b),
        };
    }
    let mut i = 0;
    while i + 8 < n {
        if word(got, i) != word(want, i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping the ones before.
    word(got, n - 8) == word(want, n - 8)
}

/// The first `"` or `\` in `b` from `at`: eight bytes at a time (strings in
/// logs are short, where a vectorised search costs more to set up than it
/// saves), then `memchr` past the first 32 bytes.
#[inline]
fn quote_or_backslash(b: &[u8], at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = at;
    let stop = b.len().min(at + 32);
    while i + 8 <= stop {
        let w = word(b, i);
        let q = w ^ (ONES * b'"' as u64);
        let s = w ^ (ONES * b'\\' as u64);
        // A byte is zero in q or s where w has a quote or a backslash; the
        // lowest flagged byte is the first one (borrows only flag bytes
        // above a true zero).
        let found = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGH;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if stop == b.len() {
        // A short string: the last bytes one by one.
        return (i..stop).find(|&k| matches!(b[k], b'"' | b'\\'));
    }
    memchr::memchr2(b'"', b'\\', &b[i..]).map(|k| i + k)
}

#[inline]
fn hash(key: &[u8]) -> usize {
    let n = key.len();
    let (a, b, c) = match n {
        0 => (0, 0, 0),
        _ => (key[0], key[n / 2], key[n - 1]),
    };
    let h = (n as u32)
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add((a as u32) << 16 | (b as u32) << 8 | c as u32)
        .wrapping_mul(0x85EB_CA6B);
    (h >> 16) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Float64Type, Int64Type, Schema};

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap_or_else(|e| panic!("{e}"))
    }

    fn columns() -> JsonColumns {
        let schema = Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, true),
            Field::new("status", DataType::Int64, true),
            Field::new("ms", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
        ]));
        JsonColumns::new(&schema).unwrap_or_else(|| panic!("supported"))
    }

    #[test]
    fn declared_members_are_read_and_the_rest_skipped() {
        let mut c = columns();
        let lines: [&[u8]; 4] = [
            br#"{"service":"api","status":200,"ms":1.5,"ok":true,"extra":{"a":[1,{"b":null}],"c":"}"}}"#,
            br#" { "status" : "404" , "ms" : "2e3", "service": 7, "x": [] } "#,
            br#"{"service":"caf\u00e9 \ud83d\ude00 \"q\"","status":3.9,"status":5}"#,
            br#"{}"#,
        ];
        for l in lines {
            c.push(text(l))
                .unwrap_or_else(|e| panic!("{}: {e:?}", String::from_utf8_lossy(l)));
        }
        let cols = c.finish();
        let service = cols[0].as_string::<i32>();
        assert_eq!(service.value(0), "api");
        assert_eq!(service.value(1), "7");
        assert_eq!(service.value(2), "café 😀 \"q\"");
        assert!(service.is_null(3));
        let status = cols[1].as_primitive::<Int64Type>();
        assert_eq!(
            (status.value(0), status.value(1), status.value(2)),
            (200, 404, 5),
            "numeric strings count, a repeated member keeps its last value"
        );
        let ms = cols[2].as_primitive::<Float64Type>();
        assert_eq!((ms.value(0), ms.value(1)), (1.5, 2000.0));
        assert!(ms.is_null(2));
        assert!(cols[3].as_boolean().value(0));
        assert_eq!(c.rows(), 0);
    }

    #[test]
    fn bad_lines_are_rejected_alone_with_a_reason() {
        let mut c = columns();
        let cases: [(&[u8], &str); 12] = [
            (br#"{"service":"a"#, "invalid JSON: the line ends inside the string"),
            (br#"{"service":"a","#, "invalid JSON: the line ends where"),
            (br#"{"service":"a"}{"service":"b"}"#, "invalid JSON: expected the end of the line"),
            (b"", "invalid JSON: empty line"),
            (br#"[1,2]"#, "not a JSON object"),
            (br#""text""#, "not a JSON object"),
            (br#"{"status":"many"}"#, "field does not fit its declared type: `status` should be an integer, found \"many\""),
            (br#"{"ok":"yes"}"#, "field does not fit its declared type: `ok` should be true or false"),
            (br#"{"service":{"a":1}}"#, "field does not fit its declared type: `service` should be text, found an object"),
            (br#"{"x":[1,2}"#, "invalid JSON: expected `,` or `]`"),
            (br#"{"x":tru}"#, "invalid JSON: expected a JSON value"),
            (br#"{"x":"\q"}"#, "invalid JSON: invalid escape `\\q`"),
        ];
        for (line, want) in cases {
            let got = c.push(text(line));
            let reason = got.err().map(|e| e.reason()).unwrap_or_default();
            assert!(
                reason.starts_with(want),
                "{}: {reason}",
                String::from_utf8_lossy(line)
            );
        }
        c.push(r#"{"service":"good","status":1}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let cols = c.finish();
        assert_eq!(cols[0].len(), 1, "only the good line became a row");
        assert_eq!(cols[0].as_string::<i32>().value(0), "good");
    }

    #[test]
    fn members_in_any_order_reach_their_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("ab", DataType::Utf8, true),
            Field::new("a_rather_long_name", DataType::Int64, true),
        ]));
        let mut c = JsonColumns::new(&schema).unwrap_or_else(|| panic!("supported"));
        // Each line is read after the one before it: the names remembered
        // from that line must not be taken for a different name here.
        let lines = [
            r#"{"a":"1","ab":"2","a_rather_long_name":3}"#,
            r#"{"ab":"4","a":"5","a_rather_long_name":6}"#,
            r#"{"abc":"x","a":"7","a_rather_long_nam":0,"a_rather_long_name":8}"#,
            r#"{"a\u0062":"9","a":"10","a_rather_long_name_":1}"#,
            r#"{"a":"11"}"#,
            r#"{"a":"12","ab":"13","a_rather_long_name":14}"#,
        ];
        for l in lines {
            c.push(l).unwrap_or_else(|e| panic!("{l}: {e:?}"));
        }
        let cols = c.finish();
        let (a, ab) = (cols[0].as_string::<i32>(), cols[1].as_string::<i32>());
        let n = cols[2].as_primitive::<Int64Type>();
        let got: Vec<(Option<&str>, Option<&str>, Option<i64>)> = (0..lines.len())
            .map(|i| {
                (
                    a.is_valid(i).then(|| a.value(i)),
                    ab.is_valid(i).then(|| ab.value(i)),
                    n.is_valid(i).then(|| n.value(i)),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("1"), Some("2"), Some(3)),
                (Some("5"), Some("4"), Some(6)),
                (Some("7"), None, Some(8)),
                (Some("10"), Some("9"), None),
                (Some("11"), None, None),
                (Some("12"), Some("13"), Some(14)),
            ]
        );
    }

    #[test]
    fn strings_of_every_length_end_at_their_quote() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let mut c = JsonColumns::new(&schema).unwrap_or_else(|| panic!("supported"));
        let mut want = Vec::new();
        for len in 0..80 {
            let body: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let escaped = format!("{}\\\"{}", &body[..len / 2], &body[len / 2..]);
            for (text, value) in [
                (body.clone(), body.clone()),
                (
                    escaped,
                    format!("{}\"{}", &body[..len / 2], &body[len / 2..]),
                ),
            ] {
                let line = format!(r#"{{"s":"{text}","t":"{body}"}}"#);
                c.push(&line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
                want.push(value);
            }
            let cut = format!(r#"{{"s":"{body}"#);
            assert!(c.push(&cut).is_err(), "{cut}");
        }
        let cols = c.finish();
        let s = cols[0].as_string::<i32>();
        let got: Vec<&str> = (0..s.len()).map(|i| s.value(i)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut c = columns();
        let mut line = b"{\"x\":".to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        let reason = c
            .push(text(&line))
            .err()
            .map(|e| e.reason())
            .unwrap_or_default();
        assert!(reason.contains("nested deeper"), "{reason}");
    }

    /// Whatever the bytes, a line is a row or a reason, never a panic, and
    /// agrees with serde_json on whether it is JSON.
    #[test]
    fn agrees_with_serde_json_on_mutated_lines() {
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d_u64);
        let template = br#"{"service":"api","status":200,"ms":1.5,"ok":false,"tags":["a",{"b":-1e5}],"s":"x\"y"}"#;
        let mut c = columns();
        for _ in 0..20_000 {
            let mut line = template.to_vec();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() as usize) % (line.len() + 1);
                match next() % 3 {
                    0 => line.truncate(at),
                    1 => line.insert(at, b"{}[]\",:0-.e\\ ta"[(next() % 15) as usize]),
                    _ => {
                        if at < line.len() {
                            line.remove(at);
                        }
                    }
                }
            }
            let serde = serde_json::from_slice::<serde_json::Value>(&line);
            match c.push(text(&line)) {
                Ok(()) => assert!(
                    matches!(serde, Ok(serde_json::Value::Object(_))),
                    "took what serde_json refuses: {}",
                    String::from_utf8_lossy(&line)
                ),
                Err(Rejected::Syntax(e)) => assert!(
                    serde.is_err(),
                    "refused ({e}) what serde_json takes: {}",
                    String::from_utf8_lossy(&line)
                ),
                Err(Rejected::NotAnObject) => assert!(
                    matches!(serde, Ok(ref v) if !v.is_object()),
                    "{}",
                    String::from_utf8_lossy(&line)
                ),
                Err(Rejected::Type(_)) => {}
            }
        }
    }
}
