//! The state of `quantile(x, q)` (and `p50`, `p95`, `p99`) for one window
//! and key.
//!
//! While it holds at most [`EXACT_LIMIT`] values the result is exact, by
//! linear interpolation between the closest ranks — the definition of
//! DuckDB's `quantile_cont`, PostgreSQL's `percentile_cont` and numpy's
//! default: sorted values `v[0..n]`, position `p = q × (n − 1)`, result
//! `v[⌊p⌋] + (v[⌈p⌉] − v[⌊p⌋]) × (p − ⌊p⌋)`. Beyond that the values go into a
//! DDSketch, whose answer is within 1% (relative) of the value at rank
//! `q × (n − 1)`. NaN values are left out.

use sketches_ddsketch::{Config, DDSketch};

/// Values kept exactly before a window's key switches to the sketch.
pub const EXACT_LIMIT: usize = 1000;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub enum Quantiles {
    Exact(Vec<f64>),
    Sketch(Box<DDSketch>),
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles::Exact(Vec::new())
    }
}

impl Quantiles {
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        match self {
            Quantiles::Exact(values) => {
                values.push(v);
                if values.len() > EXACT_LIMIT {
                    self.switch_to_sketch();
                }
            }
            Quantiles::Sketch(s) => s.add(v),
        }
    }

    fn switch_to_sketch(&mut self) {
        if let Quantiles::Exact(values) = self {
            let mut s = DDSketch::new(Config::defaults());
            for v in values.iter() {
                s.add(*v);
            }
            *self = Quantiles::Sketch(Box::new(s));
        }
    }

    /// Folds in the values of `other`, which stays as it is (session
    /// windows merging; a sliding window's panes, each read by several
    /// windows).
    pub fn merge_from(&mut self, other: &Quantiles) {
        match other {
            Quantiles::Exact(values) => {
                for v in values {
                    self.add(*v);
                }
            }
            Quantiles::Sketch(s) => {
                self.switch_to_sketch();
                if let Quantiles::Sketch(mine) = self {
                    // Sketches share one config, so merging cannot fail.
                    let _ = mine.merge(s);
                }
            }
        }
    }

    /// The `q` quantile (0 ≤ q ≤ 1); none without values.
    pub fn value(&self, q: f64) -> Option<f64> {
        match self {
            Quantiles::Exact(values) => {
                if values.is_empty() {
                    return None;
                }
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
            }
            Quantiles::Sketch(s) => s.quantile(q).ok().flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `quantile_cont` computed the plain way.
    fn reference(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let p = q * (v.len() - 1) as f64;
        let below = v[p.floor() as usize];
        let above = v[p.ceil() as usize];
        below + (above - below) * p.fract()
    }

    #[test]
    fn exact_up_to_the_limit_then_within_one_percent() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for n in [1usize, 2, 3, 10, 999, 1000] {
            let values: Vec<f64> = (0..n).map(|_| 1.0 + next() * 999.0).collect();
            let mut q = Quantiles::default();
            values.iter().for_each(|v| q.add(*v));
            for p in [0.0, 0.25, 0.5, 0.9, 0.99, 1.0] {
                assert_eq!(q.value(p), Some(reference(&values, p)), "n={n} q={p}");
            }
        }
        // [1, 2, 3, 4]: the median interpolates to 2.5, p90 to 3.7.
        let mut q = Quantiles::default();
        [4.0, 1.0, 3.0, 2.0].iter().for_each(|v| q.add(*v));
        assert_eq!(q.value(0.5), Some(2.5));
        assert!((q.value(0.9).unwrap_or(0.0) - 3.7).abs() < 1e-12);
        q.add(f64::NAN);
        assert_eq!(q.value(0.5), Some(2.5), "NaN is left out");
        assert_eq!(Quantiles::default().value(0.5), None);

        let values: Vec<f64> = (0..20_000).map(|_| 1.0 + next() * 999.0).collect();
        let mut q = Quantiles::default();
        values.iter().for_each(|v| q.add(*v));
        assert!(matches!(q, Quantiles::Sketch(_)));
        for p in [0.5, 0.9, 0.99] {
            let (got, want) = (q.value(p).unwrap_or(0.0), reference(&values, p));
            assert!((got - want).abs() <= want * 0.011, "q={p}: {got} vs {want}");
        }
    }

    #[test]
    fn merging_keeps_exactness_while_small() {
        let (mut a, mut b) = (Quantiles::default(), Quantiles::default());
        [1.0, 5.0].iter().for_each(|v| a.add(*v));
        [3.0].iter().for_each(|v| b.add(*v));
        a.merge_from(&b);
        assert_eq!(a.value(0.5), Some(3.0));
        let mut big = Quantiles::default();
        (0..2000).for_each(|v| big.add(f64::from(v)));
        a.merge_from(&big);
        assert!(matches!(a, Quantiles::Sketch(_)));
    }
}
