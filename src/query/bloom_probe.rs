//! Value lookups (`trace_id = '…'`, `client_ip IN (…)`, an `OR` of such
//! equalities) skip row groups by probing the columns' Parquet bloom
//! filters, reading only the 32-byte block of each filter a value hashes
//! to instead of the whole filter.
//!
//! A split-block bloom filter (the Parquet spec's) sends a value to one
//! block, chosen from the value's xxHash64, and answers "maybe" or "no"
//! from that block alone; DataFusion's own bloom pass reads every filter
//! whole — 256 KiB per row group and id column in Weir's archive (512 KiB
//! in files written before its row groups were halved), so a
//! lookup over 80 row groups read 45 MB to look at 2.5 KiB of it. Here a
//! filter's header is read once (and remembered: archive files are never
//! rewritten) and a lookup then reads one block per row group and value.
//! The exact predicate still runs on what is read; the answer is only ever
//! "this row group cannot hold the value". EXPLAIN ANALYZE shows
//! `row_groups_bloom_probed` and `row_groups_pruned_bloom_probe` on the
//! scan.

use super::footer::footer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore};
use parquet::basic::Type as PhysicalType;
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::ParquetMetaData;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Bytes of a split block: eight 32-bit words.
const BLOCK: u64 = 32;

/// Bytes read for a filter's header (a Thrift struct of about 15 bytes).
const HEADER_READ: u64 = 20;

/// Remembered filter locations past which the memory starts over.
const MAX_REMEMBERED: usize = 1 << 20;

/// A conjunct a bloom filter can answer: `column` holds one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub column: String,
    pub values: Vec<String>,
}

/// The lookups every row that passes `filters` satisfies.
pub fn lookups(filters: &[Expr]) -> Vec<Lookup> {
    filters
        .iter()
        .flat_map(split_conjunction)
        .filter_map(lookup)
        .collect()
}

/// `col = 'v'`, `col IN ('v', …)`, and `OR`s of those on one column.
fn lookup(e: &Expr) -> Option<Lookup> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => [(left, right), (right, left)].iter().find_map(|(a, b)| {
            Some(Lookup {
                column: column(a)?,
                values: vec![text(b)?],
            })
        }),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (mut a, b) = (lookup(left)?, lookup(right)?);
            if a.column != b.column {
                return None;
            }
            a.values.extend(b.values);
            Some(a)
        }
        Expr::InList(l) if !l.negated => Some(Lookup {
            column: column(&l.expr)?,
            values: l.list.iter().map(text).collect::<Option<_>>()?,
        }),
        _ => None,
    }
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// A column, or a column cast to text (casting text to text keeps its
/// bytes; a cast to anything else could make unequal bytes equal).
fn column(e: &Expr) -> Option<String> {
    match e {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) if is_text(c.field.data_type()) => column(&c.expr),
        _ => None,
    }
}

/// A text literal, possibly cast to text.
fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(v, _) => scalar_text(v),
        Expr::Cast(c) if is_text(c.field.data_type()) => text(&c.expr),
        _ => None,
    }
}

fn scalar_text(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, v) => scalar_text(v),
        _ => None,
    }
}

/// A span of time every row that passes the filters lies in: `column` at
/// or after `from` and before `to` (µs since the epoch; `None`: open).
/// Row groups whose statistics lie outside it are not probed.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSpan {
    pub column: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl TimeSpan {
    /// Whether values between `min` and `max` (µs) can be in the span.
    fn overlaps(&self, min: i64, max: i64) -> bool {
        self.from.is_none_or(|f| max >= f) && self.to.is_none_or(|t| min < t)
    }
}

/// The span of `column` the filters' conjuncts bound it to (`col >= t`,
/// `col < t`, either way round, `BETWEEN`); `None` when they do not.
pub fn time_span(filters: &[Expr], column: &str) -> Option<TimeSpan> {
    let mut span = TimeSpan {
        column: column.to_string(),
        from: None,
        to: None,
    };
    let from = |t: i64, s: &mut TimeSpan| s.from = Some(s.from.map_or(t, |f| f.max(t)));
    let to = |t: i64, s: &mut TimeSpan| s.to = Some(s.to.map_or(t, |x| x.min(t)));
    for c in filters.iter().flat_map(split_conjunction) {
        match c {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, t) = match (is_time(left, column), is_time(right, column)) {
                    (true, false) => (*op, micros(right)),
                    (false, true) => match op.swap() {
                        Some(op) => (op, micros(left)),
                        None => continue,
                    },
                    _ => continue,
                };
                // Bounds rounded outwards: a span a little wide only
                // probes a row group more.
                match (op, t) {
                    (Operator::Gt | Operator::GtEq, Some(t)) => from(t.0, &mut span),
                    (Operator::Lt | Operator::LtEq, Some(t)) => to(t.1 + 1, &mut span),
                    (Operator::Eq, Some(t)) => {
                        from(t.0, &mut span);
                        to(t.1 + 1, &mut span);
                    }
                    _ => {}
                }
            }
            Expr::Between(b) if !b.negated && is_time(&b.expr, column) => {
                if let Some(t) = micros(&b.low) {
                    from(t.0, &mut span);
                }
                if let Some(t) = micros(&b.high) {
                    to(t.1 + 1, &mut span);
                }
            }
            _ => {}
        }
    }
    (span.from.is_some() || span.to.is_some()).then_some(span)
}

/// Whether `e` is `column` (possibly cast: a cast between time types keeps
/// the order).
fn is_time(e: &Expr, column: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == column,
        Expr::Cast(c) => is_time(&c.expr, column),
        Expr::TryCast(c) => is_time(&c.expr, column),
        _ => false,
    }
}

/// A timestamp literal in µs, rounded down and up (nanoseconds).
fn micros(e: &Expr) -> Option<(i64, i64)> {
    let v = match e {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => return micros(&c.expr),
        _ => return None,
    };
    Some(match v {
        ScalarValue::TimestampSecond(Some(t), _) => {
            let t = t.checked_mul(1_000_000)?;
            (t, t)
        }
        ScalarValue::TimestampMillisecond(Some(t), _) => {
            let t = t.checked_mul(1_000)?;
            (t, t)
        }
        ScalarValue::TimestampMicrosecond(Some(t), _) => (*t, *t),
        ScalarValue::TimestampNanosecond(Some(t), _) => {
            (t.div_euclid(1_000), (t + 999).div_euclid(1_000))
        }
        _ => return None,
    })
}

/// Where a column chunk's filter bits lie.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bits {
    start: u64,
    blocks: u64,
}

/// Per file (path and size), its filters by row group and column: where
/// their bits lie (`None`: the header could not be read).
type Located = HashMap<(String, u64), HashMap<(usize, usize), Option<Bits>>>;

/// Where the bloom filters of archive files keep their bits, read once per
/// file, row group and column.
#[derive(Default)]
pub struct BloomFilters {
    located: Mutex<Located>,
}

impl std::fmt::Debug for BloomFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BloomFilters")
    }
}

/// A file's answer: per row group, whether it may hold a row the lookups
/// allow, and how many row groups had a filter to probe.
#[derive(Debug, PartialEq)]
pub struct Probed {
    pub may_match: Vec<bool>,
    pub probed: usize,
    /// Per row group, whether it was not probed: its statistics lie
    /// outside the time span (it cannot match either).
    pub outside: Vec<bool>,
}

/// Each file's probe, by path and size (`None`: not probed).
pub type ProbedFiles = HashMap<(String, u64), Option<Probed>>;

impl BloomFilters {
    /// Probes each file (16 at a time), its footer read through the
    /// runtime's metadata cache — where the scan finds it again.
    pub async fn probe_files(
        &self,
        runtime: &RuntimeEnv,
        store: Arc<dyn ObjectStore>,
        files: Vec<ObjectMeta>,
        lookups: &[Lookup],
        span: Option<&TimeSpan>,
    ) -> ProbedFiles {
        futures::stream::iter(files)
            .map(|file| {
                let store = store.clone();
                async move {
                    let metadata = footer(runtime, store.as_ref(), &file).await;
                    let probed = match metadata {
                        Ok(m) => self.probe(store.as_ref(), &file, &m, lookups, span).await,
                        Err(_) => None,
                    };
                    ((file.location.to_string(), file.size), probed)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    /// Probes `file`'s filters for the lookups, in the row groups that may
    /// hold rows of `span`. `None` when the file's
    /// filters could not be probed (a filter without a recorded length, as
    /// very old writers leave; a read that failed): the scan then reads it
    /// with DataFusion's own bloom pass.
    pub async fn probe(
        &self,
        store: &dyn ObjectStore,
        file: &ObjectMeta,
        metadata: &ParquetMetaData,
        lookups: &[Lookup],
        span: Option<&TimeSpan>,
    ) -> Option<Probed> {
        let schema = metadata.file_metadata().schema_descr();
        // Per lookup: the leaf column it names, if it is a top-level text one.
        let columns: Vec<Option<usize>> = lookups
            .iter()
            .map(|l| {
                schema.columns().iter().position(|c| {
                    c.path().parts().len() == 1
                        && c.path().parts()[0] == l.column
                        && c.physical_type() == PhysicalType::BYTE_ARRAY
                })
            })
            .collect();
        let groups = metadata.row_groups();
        let outside: Vec<bool> = match span {
            Some(span) => outside_span(metadata, span),
            None => vec![false; groups.len()],
        };
        // The filters to probe: (row group, column, offset, length).
        let mut filters = Vec::new();
        for (g, rg) in groups.iter().enumerate() {
            if outside.get(g).copied().unwrap_or(false) {
                continue;
            }
            for c in columns.iter().flatten() {
                let chunk = rg.column(*c);
                if let Some(offset) = chunk.bloom_filter_offset() {
                    let offset = u64::try_from(offset).ok()?;
                    let length = u64::try_from(chunk.bloom_filter_length()?).ok()?;
                    filters.push((g, *c, offset, length));
                }
            }
        }
        let bits = self.locate(store, file, &filters).await?;
        // One block per filter and value.
        let mut reads: Vec<(usize, usize, usize, Range<u64>)> = Vec::new();
        for (l, (lookup, c)) in lookups.iter().zip(&columns).enumerate() {
            let Some(c) = c else { continue };
            for g in 0..groups.len() {
                let Some(b) = bits.get(&(g, *c)) else {
                    continue;
                };
                for (v, value) in lookup.values.iter().enumerate() {
                    let start = b.start + block_of(value.as_bytes(), b.blocks) * BLOCK;
                    reads.push((l, g, v, start..start + BLOCK));
                }
            }
        }
        let ranges: Vec<Range<u64>> = reads.iter().map(|r| r.3.clone()).collect();
        // No filter on the looked-up columns (`service = 'api'`): no read.
        let blocks = if ranges.is_empty() {
            Vec::new()
        } else {
            store.get_ranges(&file.location, &ranges).await.ok()?
        };
        // Per (lookup, row group): whether some value may be there.
        let mut maybe: HashMap<(usize, usize), bool> = HashMap::new();
        for ((l, g, v, _), block) in reads.iter().zip(&blocks) {
            if block.len() != BLOCK as usize {
                return None;
            }
            let hit = Sbbf::new(block).check(lookups[*l].values[*v].as_bytes());
            *maybe.entry((*l, *g)).or_default() |= hit;
        }
        let may_match = (0..groups.len())
            .map(|g| {
                !outside.get(g).copied().unwrap_or(false)
                    && (0..lookups.len()).all(|l| maybe.get(&(l, g)).copied().unwrap_or(true))
            })
            .collect();
        let probed = (0..groups.len())
            .filter(|g| {
                columns
                    .iter()
                    .flatten()
                    .any(|c| bits.contains_key(&(*g, *c)))
            })
            .count();
        Some(Probed {
            may_match,
            probed,
            outside,
        })
    }

    /// Where the bits of each filter lie, from the cache or by reading the
    /// headers (one request for the file's missing ones).
    async fn locate(
        &self,
        store: &dyn ObjectStore,
        file: &ObjectMeta,
        filters: &[(usize, usize, u64, u64)],
    ) -> Option<HashMap<(usize, usize), Bits>> {
        let key = (file.location.to_string(), file.size);
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let located = self.located.lock().unwrap_or_else(|p| p.into_inner());
            let known = located.get(&key);
            for &(g, c, offset, length) in filters {
                match known.and_then(|k| k.get(&(g, c))) {
                    Some(Some(b)) => {
                        found.insert((g, c), *b);
                    }
                    Some(None) => return None,
                    None => missing.push((g, c, offset, length)),
                }
            }
        }
        if missing.is_empty() {
            return Some(found);
        }
        let ranges: Vec<Range<u64>> = missing
            .iter()
            .map(|&(_, _, offset, length)| offset..offset + length.min(HEADER_READ))
            .collect();
        let headers = store.get_ranges(&file.location, &ranges).await.ok()?;
        let mut located = self.located.lock().unwrap_or_else(|p| p.into_inner());
        if located.values().map(HashMap::len).sum::<usize>() + missing.len() > MAX_REMEMBERED {
            located.clear();
        }
        let known = located.entry(key).or_default();
        let mut all = true;
        for (&(g, c, offset, length), header) in missing.iter().zip(&headers) {
            let bits = bits_of(header, offset, length);
            known.insert((g, c), bits);
            match bits {
                Some(b) => {
                    found.insert((g, c), b);
                }
                None => all = false,
            }
        }
        all.then_some(found)
    }
}

/// Per row group, whether its statistics put `span.column` wholly outside
/// the span (a top-level INT64 timestamp column; anything else: inside).
fn outside_span(metadata: &ParquetMetaData, span: &TimeSpan) -> Vec<bool> {
    use parquet::basic::{LogicalType, TimeUnit};
    use parquet::file::statistics::Statistics;
    let groups = metadata.row_groups();
    let schema = metadata.file_metadata().schema_descr();
    let found = schema.columns().iter().enumerate().find(|(_, c)| {
        c.path().parts().len() == 1
            && c.path().parts()[0] == span.column
            && c.physical_type() == PhysicalType::INT64
    });
    // µs per unit of the column, as a multiplier or a divisor.
    let scale = found.and_then(|(i, c)| match c.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => Some((
            i,
            match t.unit {
                TimeUnit::MILLIS => (1_000, 1),
                TimeUnit::MICROS => (1, 1),
                TimeUnit::NANOS => (1, 1_000),
            },
        )),
        _ => None,
    });
    let Some((column, (mul, div))) = scale else {
        return vec![false; groups.len()];
    };
    groups
        .iter()
        .map(|rg| match rg.column(column).statistics() {
            Some(Statistics::Int64(st)) => match (st.min_opt(), st.max_opt()) {
                (Some(&min), Some(&max)) => {
                    let (min, max) = (
                        min.saturating_mul(mul).div_euclid(div),
                        max.saturating_mul(mul).div_euclid(div),
                    );
                    // A max rounded down still lies before the span's start
                    // only when the true max does (`from` is whole µs).
                    !span.overlaps(min, max)
                }
                _ => false,
            },
            _ => false,
        })
        .collect()
}

/// Where a filter's bits lie, from the first bytes of its header: its
/// `num_bytes` (Thrift compact protocol: field 1, an i32 as a zigzag
/// varint) and the filter's recorded length, of which the bits are the end.
fn bits_of(header: &[u8], offset: u64, length: u64) -> Option<Bits> {
    // A field header: id delta 1, type i32 (5).
    if *header.first()? != 0x15 {
        return None;
    }
    let mut v: u64 = 0;
    let mut num_bytes = None;
    for (i, byte) in header.iter().skip(1).take(5).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // zigzag: a negative size is no filter.
            num_bytes = (v & 1 == 0).then_some(v >> 1);
            break;
        }
    }
    let num_bytes = num_bytes?;
    let header_len = length.checked_sub(num_bytes)?;
    if num_bytes < BLOCK || num_bytes % BLOCK != 0 || !(2..=64).contains(&header_len) {
        return None;
    }
    Some(Bits {
        start: offset + header_len,
        blocks: num_bytes / BLOCK,
    })
}

/// The block a value's hash selects (the spec's: the hash's upper half
/// scaled to the number of blocks).
fn block_of(value: &[u8], blocks: u64) -> u64 {
    let hash = twox_hash::XxHash64::oneshot(0, value);
    ((hash >> 32) * blocks) >> 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    fn of(sql_filter: &str) -> Vec<Lookup> {
        let ctx = SessionContext::new();
        let schema = datafusion::common::DFSchema::try_from(Schema::new(vec![
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("user", DataType::Utf8, true),
            Field::new("code", DataType::Int64, true),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        let e = ctx
            .parse_sql_expr(sql_filter, &schema)
            .unwrap_or_else(|e| panic!("{sql_filter}: {e}"));
        lookups(&[e])
    }

    fn l(column: &str, values: &[&str]) -> Lookup {
        Lookup {
            column: column.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn the_lookups_a_filter_implies_are_found() {
        assert_eq!(of("trace_id = 'a'"), vec![l("trace_id", &["a"])]);
        assert_eq!(of("'a' = trace_id"), vec![l("trace_id", &["a"])]);
        assert_eq!(
            of("trace_id IN ('a', 'b') AND user = 'u'"),
            vec![l("trace_id", &["a", "b"]), l("user", &["u"])]
        );
        assert_eq!(
            of("trace_id = 'a' OR trace_id = 'b'"),
            vec![l("trace_id", &["a", "b"])]
        );
        // Nothing a filter can answer: other columns in an OR, negations,
        // other functions of the column, numbers.
        for none in [
            "trace_id = 'a' OR user = 'u'",
            "trace_id NOT IN ('a')",
            "trace_id <> 'a'",
            "lower(trace_id) = 'a'",
            "code = 5",
        ] {
            assert_eq!(of(none), vec![], "{none}");
        }
        // A number cast to text is looked up as text; the file's column
        // (not a text one) then has no filter to probe (see below).
        assert_eq!(of("CAST(code AS VARCHAR) = '5'"), vec![l("code", &["5"])]);
    }

    #[test]
    fn a_header_says_where_the_bits_are() {
        // num_bytes 1024 (zigzag 2048 = 0x80 0x10), then the rest of the
        // header (algorithm, hash, compression: 12 bytes, and a stop).
        let mut h = vec![0x15, 0x80, 0x10];
        h.extend([0x1c, 0x1c, 0, 0, 0x1c, 0x1c, 0, 0, 0x1c, 0x1c, 0, 0, 0]);
        let length = h.len() as u64 + 1024;
        assert_eq!(
            bits_of(&h, 100, length),
            Some(Bits {
                start: 100 + h.len() as u64,
                blocks: 32
            })
        );
        assert_eq!(bits_of(&h, 100, 1024), None, "no room for a header");
        assert_eq!(bits_of(&[0x16, 0x80, 0x10], 100, length), None);
        assert_eq!(bits_of(&[0x15, 0x81, 0x10], 100, length), None, "negative");
    }

    /// A file of ten row groups, each with its own ids: a probe keeps the
    /// row groups that hold a looked-up id (and false positives only where
    /// the whole filter says so too), and reads blocks, not filters.
    #[tokio::test]
    async fn probes_answer_as_the_whole_filters_do() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("trace_id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_bloom_filter_enabled(true)
            .set_bloom_filter_fpp(0.01)
            .set_bloom_filter_max_ndv(1000)
            .build();
        let ids: Vec<String> = (0..10_000).map(|i| format!("trace-{i:08}")).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids.clone())) as ArrayRef,
                Arc::new(Int64Array::from_iter_values(0..10_000)),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (store, meta, local) = stored(&batch, props).await;
        let reader = parquet::file::serialized_reader::SerializedFileReader::new_with_options(
            local,
            parquet::file::serialized_reader::ReadOptionsBuilder::new()
                .with_reader_properties(
                    parquet::file::properties::ReaderProperties::builder()
                        .set_read_bloom_filter(true)
                        .build(),
                )
                .build(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        use parquet::file::reader::FileReader;
        let metadata = reader.metadata().clone();
        assert_eq!(metadata.num_row_groups(), 10);
        let filters = BloomFilters::default();
        for values in [
            vec!["trace-00000005".to_string()],
            vec!["trace-00004321".into(), "trace-00009999".into()],
            vec!["not-there".into()],
            (0..5).map(|i| format!("absent-{i}")).collect(),
        ] {
            let lookup = Lookup {
                column: "trace_id".into(),
                values: values.clone(),
            };
            let got = filters
                .probe(
                    &store,
                    &meta,
                    &metadata,
                    std::slice::from_ref(&lookup),
                    None,
                )
                .await
                .unwrap_or_else(|| panic!("probed"));
            assert_eq!(got.probed, 10);
            for g in 0..10 {
                let rg = reader.get_row_group(g).unwrap_or_else(|e| panic!("{e}"));
                let whole = rg
                    .get_column_bloom_filter(0)
                    .unwrap_or_else(|| panic!("a filter"));
                let expect = values.iter().any(|v| whole.check(&v.as_str()));
                assert_eq!(got.may_match[g], expect, "{values:?} in row group {g}");
                let holds = values
                    .iter()
                    .any(|v| ids[g * 1000..(g + 1) * 1000].contains(v));
                assert!(!holds || got.may_match[g], "no false negative");
            }
            let kept = got.may_match.iter().filter(|m| **m).count();
            match values.len() {
                1 if values[0].starts_with("trace") => assert_eq!(kept, 1),
                2 => assert_eq!(kept, 2),
                _ => assert!(kept <= 2, "{kept} false positives of {values:?}"),
            }
        }
        // A lookup on a column without filters, or not in the file, keeps all.
        let none = filters
            .probe(
                &store,
                &meta,
                &metadata,
                &[l("n", &["5"]), l("gone", &["x"])],
                None,
            )
            .await
            .unwrap_or_else(|| panic!("probed"));
        assert_eq!(none.may_match, vec![true; 10]);
        assert_eq!(none.probed, 0);
    }

    /// `batch` written as Parquet with `props` to an in-memory store (its
    /// object) and to a local file (for a reader of whole filters).
    async fn stored(
        batch: &RecordBatch,
        props: WriterProperties,
    ) -> (InMemory, object_store::ObjectMeta, std::fs::File) {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
            .unwrap_or_else(|e| panic!("{e}"));
        w.write(batch).unwrap_or_else(|e| panic!("{e}"));
        w.close().unwrap_or_else(|e| panic!("{e}"));
        let store = InMemory::new();
        let path = Path::from("f.parquet");
        store
            .put(&path, PutPayload::from(buf.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let meta = store.head(&path).await.unwrap_or_else(|e| panic!("{e}"));
        let local = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut &local, &buf).unwrap_or_else(|e| panic!("{e}"));
        (store, meta, local)
    }

    fn at(us: i64) -> Expr {
        Expr::Literal(
            ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())),
            None,
        )
    }

    #[test]
    fn the_time_span_a_filter_implies_is_found() {
        use datafusion::prelude::col;
        let t = || col("timestamp");
        let span = |e: Expr| time_span(&[e], "timestamp").map(|s| (s.from, s.to));
        assert_eq!(
            span(t().gt_eq(at(10)).and(t().lt(at(20)))),
            Some((Some(10), Some(21)))
        );
        // Either way round, the tighter bound of two, BETWEEN, nanoseconds.
        assert_eq!(
            span(at(10).lt_eq(t()).and(t().gt(at(15))).and(at(30).gt(t()))),
            Some((Some(15), Some(31)))
        );
        assert_eq!(span(t().between(at(5), at(9))), Some((Some(5), Some(10))));
        let ns = Expr::Literal(ScalarValue::TimestampNanosecond(Some(10_500), None), None);
        assert_eq!(span(t().gt_eq(ns)), Some((Some(10), None)));
        // Not a bound: another column, an OR, a negation.
        assert_eq!(span(col("other").gt(at(1))), None);
        assert_eq!(span(t().gt(at(1)).or(col("x").eq(at(2)))), None);
        assert_eq!(span(t().not_between(at(5), at(9))), None);
    }

    /// Row groups whose time statistics lie outside the span are not
    /// probed and cannot match; the others are probed as before.
    #[tokio::test]
    async fn row_groups_outside_the_time_span_are_not_probed() {
        use datafusion::arrow::array::TimestampMicrosecondArray;
        use datafusion::arrow::datatypes::TimeUnit as ArrowUnit;
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(ArrowUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("trace_id", DataType::Utf8, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .set_bloom_filter_enabled(true)
            .build();
        // Ten row groups: group g holds times g*100..g*100+99 and the
        // trace id "same" in every group.
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from_iter_values(0..1000).with_timezone("UTC"))
                    as ArrayRef,
                Arc::new(StringArray::from_iter_values((0..1000).map(|_| "same"))),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (store, meta, local) = stored(&batch, props).await;
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(local)
            .unwrap_or_else(|e| panic!("{e}"));
        let metadata = parquet::file::reader::FileReader::metadata(&reader).clone();
        assert_eq!(metadata.num_row_groups(), 10);
        let filters = BloomFilters::default();
        let span = time_span(
            &[datafusion::prelude::col("timestamp")
                .gt_eq(at(250))
                .and(datafusion::prelude::col("timestamp").lt(at(420)))],
            "timestamp",
        );
        let got = filters
            .probe(
                &store,
                &meta,
                &metadata,
                &[l("trace_id", &["same"])],
                span.as_ref(),
            )
            .await
            .unwrap_or_else(|| panic!("probed"));
        let inside: Vec<bool> = (0..10).map(|g| (2..=4).contains(&g)).collect();
        assert_eq!(got.may_match, inside);
        assert_eq!(got.outside, inside.iter().map(|i| !i).collect::<Vec<_>>());
        assert_eq!(got.probed, 3, "only the row groups inside were probed");
    }
}
