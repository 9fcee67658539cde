//! The state of `approx_count_distinct(x)` for one window and key: exact
//! while it has seen at most [`EXACT_LIMIT`] distinct values (their 64-bit
//! hashes, kept sorted), then a HyperLogLog of 2^[`PRECISION`] one-byte
//! registers (4 KiB, a standard error of 1.04/√4096 ≈ 1.6 %) with the usual
//! small-range correction (linear counting). Memory per key and window is
//! bounded either way, which is what `count_distinct` (every distinct value
//! kept) cannot promise on high-cardinality fields.

/// Distinct values counted exactly before the switch to registers.
pub const EXACT_LIMIT: usize = 256;
/// log2 of the number of registers.
pub const PRECISION: u32 = 12;
const REGISTERS: usize = 1 << PRECISION;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum DistinctSketch {
    /// Sorted, distinct hashes.
    Exact(Vec<u64>),
    /// HyperLogLog registers.
    Registers(Vec<u8>),
}

impl Default for DistinctSketch {
    fn default() -> Self {
        DistinctSketch::Exact(Vec::new())
    }
}

impl DistinctSketch {
    /// Adds a value by its 64-bit hash (a well-mixed one: SipHash).
    pub fn add(&mut self, hash: u64) {
        match self {
            DistinctSketch::Exact(hashes) => {
                if let Err(at) = hashes.binary_search(&hash) {
                    hashes.insert(at, hash);
                    if hashes.len() > EXACT_LIMIT {
                        let mut registers = vec![0u8; REGISTERS];
                        for h in hashes.iter() {
                            set(&mut registers, *h);
                        }
                        *self = DistinctSketch::Registers(registers);
                    }
                }
            }
            DistinctSketch::Registers(registers) => set(registers, hash),
        }
    }

    /// Takes in another key's or pane's values.
    pub fn merge(&mut self, other: &DistinctSketch) {
        let theirs = match other {
            DistinctSketch::Exact(hashes) => {
                for h in hashes {
                    self.add(*h);
                }
                return;
            }
            DistinctSketch::Registers(registers) => registers,
        };
        match self {
            DistinctSketch::Registers(mine) => {
                for (m, t) in mine.iter_mut().zip(theirs) {
                    *m = (*m).max(*t);
                }
            }
            DistinctSketch::Exact(mine) => {
                let mut registers = theirs.clone();
                for h in mine.iter() {
                    set(&mut registers, *h);
                }
                *self = DistinctSketch::Registers(registers);
            }
        }
    }

    /// The estimated number of distinct values (exact up to the limit).
    pub fn count(&self) -> i64 {
        match self {
            DistinctSketch::Exact(hashes) => hashes.len() as i64,
            DistinctSketch::Registers(registers) => estimate(registers),
        }
    }
}

/// The register a hash picks (its top bits) takes the position of the first
/// one bit in the rest, if that is higher.
fn set(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - PRECISION)) as usize;
    let rest = hash << PRECISION;
    // Leading zeros of the remaining 52 bits, plus one (capped).
    let rank = (rest.leading_zeros().min(64 - PRECISION) + 1) as u8;
    if let Some(r) = registers.get_mut(index) {
        *r = (*r).max(rank);
    }
}

fn estimate(registers: &[u8]) -> i64 {
    let m = registers.len() as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in registers {
        sum += 1.0 / f64::from(1u32 << r.min(31));
        if r == 0 {
            zeros += 1;
        }
    }
    let raw = alpha * m * m / sum;
    let e = if raw <= 2.5 * m && zeros > 0 {
        // Few values: linear counting is the better estimate.
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    e.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{Hash, Hasher};

    fn hash(v: u64) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn exact_up_to_the_limit_then_within_a_few_percent() {
        let mut s = DistinctSketch::default();
        for round in 0..3 {
            for v in 0..EXACT_LIMIT as u64 {
                s.add(hash(v));
            }
            assert_eq!(
                s.count(),
                EXACT_LIMIT as i64,
                "round {round}: repeats count once"
            );
        }
        for n in [1_000u64, 10_000, 100_000, 1_000_000] {
            let mut s = DistinctSketch::default();
            for v in 0..n {
                s.add(hash(v));
                s.add(hash(v / 2));
            }
            let err = (s.count() as f64 - n as f64).abs() / n as f64;
            assert!(err < 0.05, "{n} distinct: estimated {}", s.count());
        }
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let mut whole = DistinctSketch::default();
        let mut a = DistinctSketch::default();
        let mut b = DistinctSketch::default();
        let mut small = DistinctSketch::default();
        for v in 0..50_000u64 {
            whole.add(hash(v));
            if v % 3 == 0 { &mut a } else { &mut b }.add(hash(v));
        }
        for v in 0..100u64 {
            small.add(hash(v));
        }
        a.merge(&b);
        a.merge(&small);
        assert_eq!(a.count(), whole.count());
        let mut s2 = small.clone();
        s2.merge(&whole);
        assert_eq!(s2.count(), whole.count(), "exact into registers");
    }
}
