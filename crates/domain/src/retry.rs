//! When to try a failed send again. A pure decision; the worker's loop carries it out.

use std::time::Duration;

/// Exponential backoff with full jitter, capped, honouring a provider's
/// `Retry-After` within the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryAction {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// After `attempts_made` attempts failed transiently, what next?
    /// `jitter` is a sample from [0, 1) supplied by the caller, so the
    /// decision stays deterministic under test.
    pub fn decide(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> RetryAction {
        if attempts_made >= self.max_attempts {
            return RetryAction::GiveUp;
        }
        if let Some(after) = retry_after {
            return RetryAction::RetryAfter(after.min(self.max_delay));
        }
        let exponent = attempts_made.saturating_sub(1).min(31);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        // Half fixed, half random: spreads retries out without ever retrying at once.
        let jitter = jitter.clamp(0.0, 1.0);
        RetryAction::RetryAfter(ceiling.mul_f64(0.5 + 0.5 * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn retry_table() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_delay: ms(100),
            max_delay: ms(1000),
        };
        let table = [
            (1, None, 0.0, RetryAction::RetryAfter(ms(50))),
            (1, None, 1.0, RetryAction::RetryAfter(ms(100))),
            (2, None, 1.0, RetryAction::RetryAfter(ms(200))),
            (3, None, 0.5, RetryAction::RetryAfter(ms(300))),
            (3, Some(ms(5000)), 0.5, RetryAction::RetryAfter(ms(1000))),
            (2, Some(ms(10)), 0.9, RetryAction::RetryAfter(ms(10))),
            (4, None, 0.0, RetryAction::GiveUp),
            (4, Some(ms(1)), 0.0, RetryAction::GiveUp),
        ];
        for (attempts, after, jitter, expected) in table {
            assert_eq!(
                p.decide(attempts, after, jitter),
                expected,
                "{attempts} {after:?} {jitter}"
            );
        }
    }

    #[test]
    fn backoff_is_capped_even_after_many_attempts() {
        let p = RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: ms(100),
            max_delay: ms(1000),
        };
        assert_eq!(p.decide(200, None, 1.0), RetryAction::RetryAfter(ms(1000)));
    }
}
