//! Latencies kept in an HDR histogram: every value recorded, to three
//! significant digits, in constant memory, so the tail (p99.9, max) is read
//! from all of them rather than from a sample.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency told apart from longer ones: an hour, in microseconds.
const HIGHEST_MICROS: u64 = 3_600_000_000;

/// Latencies in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

/// The figures a reader compares between runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies(
            Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                .expect("the bounds and precision are valid"),
        )
    }
}

impl Latencies {
    /// Records one latency; anything past an hour counts as an hour.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn summary(&self) -> Summary {
        let at = |q: f64| micros(self.0.value_at_quantile(q));
        Summary {
            count: self.0.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: micros(self.0.max()),
            mean: Duration::from_secs_f64(self.0.mean() / 1e6),
        }
    }

    /// How many latencies fall in `[from, to)`, for drawing the histogram.
    pub fn count_between(&self, from: Duration, to: Duration) -> u64 {
        if to <= from {
            return 0;
        }
        let low = u64::try_from(from.as_micros()).unwrap_or(u64::MAX);
        let high = u64::try_from(to.as_micros()).unwrap_or(u64::MAX);
        self.0
            .iter_recorded()
            .filter(|v| (low..high).contains(&v.value_iterated_to()))
            .map(|v| v.count_at_value())
            .sum()
    }
}

fn micros(n: u64) -> Duration {
    Duration::from_micros(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Duration, expected_ms: u64) -> bool {
        let expected = Duration::from_millis(expected_ms).as_secs_f64();
        (actual.as_secs_f64() - expected).abs() <= expected * 0.001
    }

    #[test]
    fn a_thousand_latencies_give_their_percentiles_to_three_digits() {
        let mut latencies = Latencies::default();
        for ms in 1..=1000 {
            latencies.record(Duration::from_millis(ms));
        }
        let s = latencies.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50, 500), "{s:?}");
        assert!(close(s.p90, 900), "{s:?}");
        assert!(close(s.p99, 990), "{s:?}");
        assert!(close(s.p999, 999), "{s:?}");
        assert!(close(s.max, 1000), "{s:?}");
        assert!((s.mean.as_secs_f64() - 0.5005).abs() < 0.001, "{s:?}");
    }

    #[test]
    fn one_slow_answer_in_a_thousand_shows_at_p999_and_max_only() {
        let mut latencies = Latencies::default();
        for _ in 0..999 {
            latencies.record(Duration::from_millis(10));
        }
        latencies.record(Duration::from_secs(30));
        let s = latencies.summary();
        assert!(close(s.p99, 10), "{s:?}");
        assert!(close(s.p999, 10), "{s:?}");
        assert!(close(s.max, 30_000), "{s:?}");
        assert_eq!(
            latencies.count_between(Duration::ZERO, Duration::from_secs(1)),
            999
        );
        assert_eq!(
            latencies.count_between(Duration::from_secs(1), Duration::from_secs(60)),
            1
        );
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros_and_a_latency_past_an_hour_to_an_hour() {
        assert_eq!(Latencies::default().summary().max, Duration::ZERO);
        let mut latencies = Latencies::default();
        latencies.record(Duration::from_secs(7200));
        assert!(latencies.summary().max <= Duration::from_secs(3601));
        assert!(latencies.summary().max >= Duration::from_secs(3599));
    }
}
