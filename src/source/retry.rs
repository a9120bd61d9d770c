//! The one retry policy: what every connector retries transient failures with, and what a
//! conditional writer retries rejected items with.

use std::time::Duration;

use backon::ExponentialBuilder;

/// Retries of a transient failure before giving up (`elasticsearch.max_retries`).
pub const DEFAULT_MAX_RETRIES: usize = 8;

/// How transient failures are retried: 429, 502, 503, 504 and broken connections, with exponential
/// backoff and full jitter, bounded both in attempts and in total delay.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_total_delay: Duration,
}

impl RetryPolicy {
    /// The pauses between attempts: exponential from `min_delay` to `max_delay`, with jitter, at most
    /// `max_retries` of them and `max_total_delay` in all. Whole requests and the items a bulk answer
    /// rejected are retried on this one schedule.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_total_delay(Some(self.max_total_delay))
            .with_jitter()
    }
}

/// Says a retry at the default level: what failed (`POST /orders/_search`), why (`503 Service
/// Unavailable`, `connection refused`), which attempt of how many, and the pause before the next.
pub fn log_retry(what: &str, cause: &str, attempt: usize, attempts: usize, pause: Duration) {
    tracing::warn!(
        request = what,
        attempt,
        attempts,
        retry_in_ms = pause.as_millis() as u64,
        "{what}: {cause}; attempt {attempt} of {attempts} failed, retrying in {:.1} s",
        pause.as_secs_f64()
    );
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_total_delay: Duration::from_secs(60),
        }
    }
}
