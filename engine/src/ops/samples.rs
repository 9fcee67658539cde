//! Sample events of one key and window, for an alert's evidence: a
//! reservoir (Vitter's algorithm R) holding at most N events, each a JSON
//! object, chosen uniformly among every event the window counted. Only an
//! accepted event is turned into JSON — about N·(1 + ln(k/N)) of k events —
//! so the cost per event is a counter and, past the first N, one
//! multiplication-and-shift draw. The draw hashes the event's number with a
//! seed taken from the reservoir's first event, so reservoirs of different
//! keys choose different places and the same events give the same samples,
//! live or replayed.

use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
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

    /// Offers row `row` of `batch`.
    #[inline]
    pub fn offer(&mut self, batch: &RecordBatch, row: usize) {
        self.seen += 1;
        let size = self.size as usize;
        if self.events.len() < size {
            if let Some(e) = event_json(batch, row) {
                if self.seed == 0 {
                    self.seed = seed_of(&e);
                }
                self.events.push(e.into());
            }
            return;
        }
        if size == 0 {
            return;
        }
        let slot = draw(self.seen, self.seed);
        if slot < size {
            if let Some(e) = event_json(batch, row) {
                self.events[slot] = e.into();
            }
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

/// Row `row` of `batch` as a JSON object, without `_raw` (the fields hold
/// it) and with long texts cut.
fn event_json(batch: &RecordBatch, row: usize) -> Option<String> {
    let one = batch.slice(row, 1);
    let mut rows = crate::output::rows_as_json(&one).ok()?;
    let mut event: Map<String, Value> = rows.pop()?;
    event.remove(RAW);
    for v in event.values_mut() {
        if let Value::String(s) = v {
            if let Some((cut, _)) = s.char_indices().nth(MAX_TEXT) {
                s.truncate(cut);
                s.push('…');
            }
        }
    }
    serde_json::to_string(&event).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
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
        let b = events(1000);
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
        let b = events(100);
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
        let b = events(500);
        let (mut a, mut c) = (Reservoir::new(3), Reservoir::new(3));
        for row in 0..500 {
            a.offer(&b, row);
            c.offer(&b, row);
        }
        assert_eq!(a, c);
    }

    #[test]
    fn merging_keeps_the_size_and_both_sides_in_proportion() {
        let b = events(100);
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
        r.offer(&batch, 0);
        let v: Vec<Value> = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(
            v[0]["message"].as_str().unwrap().chars().count(),
            MAX_TEXT + 1
        );
    }
}
