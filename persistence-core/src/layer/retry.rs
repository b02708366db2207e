//! Retry retryable failures of idempotent operations.

use std::time::Duration;

use super::{Around, BoxFuture, Call, Op};
use crate::error::Result;

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// Retries a call whose error [`is_retryable`](crate::Error::is_retryable),
/// with exponential backoff and full jitter (a uniformly random sleep between
/// zero and the capped exponential delay), and only when the operation is
/// [idempotent](Op::is_idempotent): an `insert`, `insert_many` or `update`
/// is never repeated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retry {
    config: RetryConfig,
}

impl Retry {
    /// With explicit settings.
    pub fn new(config: RetryConfig) -> Self {
        Retry { config }
    }

    /// The full-jitter backoff before attempt `attempt + 1` (`attempt` ≥ 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.config.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.config.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

impl Around for Retry {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                super::trace::attempt(attempt);
                match call().await {
                    Err(e)
                        if e.is_retryable()
                            && op.is_idempotent()
                            && attempt < self.config.max_attempts =>
                    {
                        let wait = self.backoff(attempt);
                        tracing::debug!(entity, op = op.name(), attempt, ?wait, error = %e, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}
