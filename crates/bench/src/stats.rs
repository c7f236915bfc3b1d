//! Order statistics over a bench's samples.
//!
//! Percentiles are nearest-rank: the value at rank `ceil(q * n)` of the
//! sorted samples. No interpolation, so every figure in the doc is a time
//! that was actually measured, and p99 of 30 samples is plainly their
//! maximum rather than an invented value between the two largest.

use serde::{Deserialize, Serialize};

/// Median and spread of one figure's samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

/// Below this many samples the doc shows min–max instead of p10–p90: with
/// fewer, p10 and p90 would be the extremes anyway and claim a precision
/// the run does not have.
pub const FEW_SAMPLES: usize = 10;

impl Summary {
    /// `None` for no samples, or when a sample is not a number (a bench bug
    /// that must not turn into a plausible figure).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| nearest_rank(&sorted, q);
        Some(Summary {
            n: sorted.len(),
            median: at(0.5),
            p10: at(0.1),
            p90: at(0.9),
            p99: at(0.99),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }

    /// One measurement: no spread to speak of.
    pub fn single(value: f64) -> Summary {
        Summary {
            n: 1,
            median: value,
            p10: value,
            p90: value,
            p99: value,
            min: value,
            max: value,
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Durations as the bench measured them, in the unit it reports.
pub fn micros(samples: &[std::time::Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1e6).collect()
}

/// See [`micros`].
pub fn millis(samples: &[std::time::Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

/// See [`micros`].
pub fn seconds(samples: &[std::time::Duration]) -> Vec<f64> {
    samples
        .iter()
        .map(std::time::Duration::as_secs_f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_measured_values() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.n, 100);
        assert_eq!(s.median, 50.0);
        assert_eq!(s.p10, 10.0);
        assert_eq!(s.p90, 90.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!((s.min, s.max), (1.0, 100.0));
    }

    #[test]
    fn small_sets_are_not_interpolated() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.0);
        assert_eq!(s.p99, 3.0);
        assert_eq!(s.p10, 1.0);
        let thirty: Vec<f64> = (0..30).map(f64::from).collect();
        assert_eq!(
            Summary::of(&thirty).unwrap().p99,
            29.0,
            "p99 of 30 is the max"
        );
    }

    #[test]
    fn empty_or_nan_samples_give_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
        assert_eq!(Summary::of(&[f64::INFINITY]), None);
    }

    #[test]
    fn single_value_has_no_spread() {
        let s = Summary::single(7.5);
        assert_eq!((s.n, s.min, s.max, s.p99), (1, 7.5, 7.5, 7.5));
    }

    #[test]
    fn durations_convert_to_the_reported_unit() {
        let d = [std::time::Duration::from_micros(1500)];
        assert_eq!(micros(&d), vec![1500.0]);
        assert_eq!(millis(&d), vec![1.5]);
        assert_eq!(seconds(&d), vec![0.0015]);
    }
}
