//! Sample events of one key and window, for an alert's evidence: a
//! reservoir (Vitter's algorithm R) holding at most N events, each a JSON
//! object, chosen uniformly among every event the window counted. Only an
//! accepted event is turned into JSON — about N·(1 + ln(k/N)) of k events —
//! so the cost per event is a counter and, past the first N, one
//! multiplication-and-shift draw. The draw hashes the event's number with a
//! seed taken from the reservoir's first event, so reservoirs of different
//! keys choose different places and the same events give the same samples,
//! live or replayed.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::fmt::Write;
use weir_dsl::types::RAW;

/// The longest text value kept in a sample, in characters (longer values
/// are cut and end with `…`).
pub const MAX_TEXT: usize = 1024;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reservoir {
    /// How many events it keeps.
    pub size: u32,
    /// How many events were offered.
    pub seen: u64,
    /// The kept events, as JSON objects.
    pub events: Vec<Box<str>>,
    /// Mixed into the draws (a hash of the first event).
    pub seed: u64,
}

impl Reservoir {
    pub fn new(size: usize) -> Reservoir {
        Reservoir {
            size: u32::try_from(size).unwrap_or(u32::MAX),
            seen: 0,
            events: Vec::new(),
            seed: 0,
        }
    }

    /// Offers row `row` of a batch.
    #[inline]
    pub fn offer(&mut self, rows: &Rows, row: usize) {
        self.seen += 1;
        let size = self.size as usize;
        if self.events.len() < size {
            let e = rows.json(row);
            if self.seed == 0 {
                self.seed = seed_of(&e);
            }
            self.events.push(e.into());
            return;
        }
        if size == 0 {
            return;
        }
        let slot = draw(self.seen, self.seed);
        if slot < size {
            self.events[slot] = rows.json(row).into();
        }
    }

    /// Folds in another reservoir of the same key (merged session windows):
    /// each side keeps a share of the places in proportion to the events it saw.
    pub fn merge(&mut self, other: Reservoir) {
        let total = self.seen + other.seen;
        let size = self.size as usize;
        if self.events.len() + other.events.len() <= size {
            self.events.extend(other.events);
        } else if total > 0 {
            let mine =
                ((size as u128 * self.seen as u128 + total as u128 / 2) / total as u128) as usize;
            let mine = mine.clamp(size.saturating_sub(other.events.len()), self.events.len());
            self.events.truncate(mine);
            self.events
                .extend(other.events.into_iter().take(size - mine));
        }
        self.seen = total;
    }

    /// The kept events as one JSON array.
    pub fn json(&self) -> String {
        let mut out =
            String::with_capacity(2 + self.events.iter().map(|e| e.len() + 1).sum::<usize>());
        out.push('[');
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
        }
        out.push(']');
        out
    }
}

/// Which of the first `seen` places the `seen`-th event takes: uniform in
/// `0..seen`, from a hash of `seen` (SplitMix64, then a multiply-shift
/// reduction).
fn draw(seen: u64, seed: u64) -> usize {
    let z = mix(seen ^ mix(seed));
    ((z as u128 * seen as u128) >> 64) as usize
}

/// SplitMix64's output function.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed from an event's text (FNV-1a; never 0).
fn seed_of(event: &str) -> u64 {
    let h = event.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    });
    h.max(1)
}

/// A batch's rows as JSON objects, one at a time: the columns are read
/// once per batch, so a sample costs one pass over its own values. Nulls
/// are left out, as in every JSON Weir writes; `_raw` too (the fields hold
/// it); texts are cut at [`MAX_TEXT`] characters.
pub struct Rows {
    columns: Vec<(String, Column)>,
}

enum Column {
    Text(StringArray),
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    Time(TimestampMicrosecondArray),
    /// Any other type, as its display text.
    Other(ArrayRef),
}

impl Rows {
    pub fn new(batch: &RecordBatch) -> Rows {
        let schema = batch.schema();
        let columns = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| f.name() != RAW)
            .map(|(f, c)| {
                let key = serde_json::to_string(f.name()).unwrap_or_default();
                let col = match c.data_type() {
                    DataType::Utf8 => Column::Text(c.as_string::<i32>().clone()),
                    DataType::Int64 => Column::Int(c.as_primitive().clone()),
                    DataType::Float64 => Column::Float(c.as_primitive().clone()),
                    DataType::Boolean => Column::Bool(c.as_boolean().clone()),
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        Column::Time(c.as_primitive().clone())
                    }
                    _ => Column::Other(c.clone()),
                };
                (key, col)
            })
            .collect();
        Rows { columns }
    }

    /// Row `row` as a JSON object.
    pub fn json(&self, row: usize) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        for (key, col) in &self.columns {
            let before = out.len();
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(key);
            out.push(':');
            let written = match col {
                Column::Text(a) => a.is_valid(row).then(|| text(&mut out, a.value(row))),
                Column::Int(a) => a
                    .is_valid(row)
                    .then(|| write!(out, "{}", a.value(row)).unwrap_or(())),
                Column::Float(a) => a.is_valid(row).then(|| {
                    let v = serde_json::Value::from(a.value(row));
                    out.push_str(&v.to_string())
                }),
                Column::Bool(a) => a
                    .is_valid(row)
                    .then(|| out.push_str(if a.value(row) { "true" } else { "false" })),
                Column::Time(a) => a.is_valid(row).then(|| {
                    let t = super::super::alerting::rfc3339(a.value(row));
                    text(&mut out, &t)
                }),
                Column::Other(a) => a.is_valid(row).then(|| {
                    let shown = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())
                        .map(|f| f.value(row).to_string())
                        .unwrap_or_default();
                    text(&mut out, &shown)
                }),
            };
            if written.is_none() {
                out.truncate(before);
            }
        }
        out.push('}');
        out
    }
}

/// `s` as a JSON string, cut at [`MAX_TEXT`] characters.
fn text(out: &mut String, s: &str) {
    let s = match s.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    };
    out.push_str(&serde_json::to_string(&s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use serde_json::Value;
    use std::sync::Arc;

    fn events(n: i64) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new(RAW, DataType::Utf8, false),
        ]);
        let ns: Vec<i64> = (0..n).collect();
        let raws: Vec<String> = ns.iter().map(|i| format!("line {i}")).collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(ns)),
                Arc::new(StringArray::from(raws)),
            ],
        )
        .unwrap()
    }

    fn kept(r: &Reservoir) -> Vec<i64> {
        let v: Vec<Value> = serde_json::from_str(&r.json()).unwrap();
        v.iter().map(|e| e["n"].as_i64().unwrap()).collect()
    }

    #[test]
    fn keeps_at_most_its_size_of_the_events_offered_without_raw() {
        let b = Rows::new(&events(1000));
        let mut r = Reservoir::new(5);
        for row in 0..3 {
            r.offer(&b, row);
        }
        assert_eq!(kept(&r), [0, 1, 2]);
        assert!(!r.json().contains("line"), "{}", r.json());
        for row in 3..1000 {
            r.offer(&b, row);
        }
        let k = kept(&r);
        assert_eq!((k.len(), r.seen), (5, 1000));
        assert!(k.iter().all(|n| (0..1000).contains(n)));
        // Later events get in: the reservoir is not just the first five.
        assert!(k.iter().any(|&n| n >= 5), "{k:?}");
    }

    #[test]
    fn every_event_is_about_equally_likely_to_be_kept() {
        // 2,000 reservoirs of 10 over 100 events (with other seeds, as other
        // keys have): each event is kept about 10 % of the time (200 times).
        let b = Rows::new(&events(100));
        let mut hits = [0u32; 100];
        for seed in 1..=2000u64 {
            let mut r = Reservoir::new(10);
            r.seed = seed;
            for row in 0..100 {
                r.offer(&b, row);
            }
            for n in kept(&r) {
                hits[n as usize] += 1;
            }
        }
        let (lo, hi) = (hits.iter().min().unwrap(), hits.iter().max().unwrap());
        assert!(*lo > 130 && *hi < 270, "{hits:?}");
    }

    #[test]
    fn the_same_events_give_the_same_samples() {
        let b = Rows::new(&events(500));
        let (mut a, mut c) = (Reservoir::new(3), Reservoir::new(3));
        for row in 0..500 {
            a.offer(&b, row);
            c.offer(&b, row);
        }
        assert_eq!(a, c);
    }

    #[test]
    fn merging_keeps_the_size_and_both_sides_in_proportion() {
        let b = Rows::new(&events(100));
        let (mut a, mut c) = (Reservoir::new(4), Reservoir::new(4));
        for row in 0..75 {
            a.offer(&b, row);
        }
        for row in 75..100 {
            c.offer(&b, row);
        }
        a.merge(c);
        let k = kept(&a);
        assert_eq!((k.len(), a.seen), (4, 100));
        assert_eq!(k.iter().filter(|&&n| n >= 75).count(), 1, "{k:?}");
        let long = "x".repeat(MAX_TEXT + 10);
        let schema = Schema::new(vec![Field::new("message", DataType::Utf8, false)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(StringArray::from(vec![long]))],
        )
        .unwrap();
        let mut r = Reservoir::new(1);
        r.offer(&Rows::new(&batch), 0);
        let v: Vec<Value> = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(
            v[0]["message"].as_str().unwrap().chars().count(),
            MAX_TEXT + 1
        );
    }

    #[test]
    fn rows_are_json_objects_without_nulls_or_raw() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new(RAW, DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![Some("a \"q\"\n"), None])),
                Arc::new(Int64Array::from(vec![None, Some(-7)])),
                Arc::new(Float64Array::from(vec![Some(84.0), Some(0.25)])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_500_000), None])
                        .with_timezone("+00:00"),
                ),
                Arc::new(StringArray::from(vec![Some("raw"), Some("raw")])),
            ],
        )
        .unwrap();
        let rows = Rows::new(&batch);
        assert_eq!(
            rows.json(0),
            r#"{"s":"a \"q\"\n","f":84.0,"b":true,"timestamp":"1970-01-01T00:00:01.500Z"}"#
        );
        assert_eq!(rows.json(1), r#"{"i":-7,"f":0.25}"#);
    }
}
