//! Medians and tails of timed samples.

use std::time::Duration;

/// Sorted samples of one measurement.
#[derive(Debug)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    /// Sorts the samples.
    pub(crate) fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self(samples)
    }

    /// The value below which `q` of the samples fall (nearest rank).
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    /// The median.
    pub(crate) fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    pub(crate) fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// How many samples.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Milliseconds with three decimals, for tables.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// How many times `base` `d` is.
pub(crate) fn ratio_of(d: Duration, base: Duration) -> f64 {
    d.as_secs_f64() / base.as_secs_f64()
}

/// Microseconds with one decimal.
pub(crate) fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}
