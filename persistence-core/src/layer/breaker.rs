//! A circuit breaker shared by every repository of one database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{Around, BoxFuture, Call, Op};
use crate::error::{Error, ErrorKind, Result};

/// Breaker thresholds; also the `breaker` section of a database's
/// configuration (`breaker: { failure_threshold: 5, open_for: 10s }`, both
/// keys required, unknown keys rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive infrastructure failures (`Unavailable`, `Timeout`) that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe call is let through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast with `Unavailable` until the instant has passed.
    Open {
        /// When a probe is allowed.
        until: Instant,
    },
    /// One probe call is in flight; others fail fast.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
}

/// Closed → (N consecutive `Unavailable`/`Timeout` failures) → Open → (after
/// `open_for`, or as soon as a background check reports the database
/// [reachable](CircuitBreaker::endpoint_reachable)) → HalfOpen: one probe
/// call; success closes, failure reopens.
/// While open, calls fail fast with a retryable `Unavailable`. Other errors
/// (`NotFound`, `Conflict`, `InvalidInput`...) are answers from a healthy
/// server and count as successes. Clones share the state: build one per
/// database and layer every repository of that database with a clone.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: Arc<str>,
    config: BreakerConfig,
    inner: Arc<Mutex<Inner>>,
    /// Woken each time the circuit opens (see [`CircuitBreaker::opened`]).
    opened: Arc<Notify>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::new("default", BreakerConfig::default())
    }
}

fn infrastructure(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
}

impl CircuitBreaker {
    /// A breaker named after its database.
    pub fn new(name: &str, config: BreakerConfig) -> Self {
        CircuitBreaker {
            name: Arc::from(name),
            config,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
            })),
            opened: Arc::new(Notify::new()),
        }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the circuit is open (calls fail fast).
    pub fn is_open(&self) -> bool {
        matches!(self.state(), BreakerState::Open { .. })
    }

    /// Resolves once the circuit is open (at once if it is). A recovery
    /// checker waits on this, so it costs nothing while the circuit is closed.
    pub async fn opened(&self) {
        loop {
            let notified = self.opened.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return;
            }
            notified.await;
        }
    }

    /// A background check reached the database: an open circuit lets the
    /// next call through as its probe now instead of after `open_for`.
    /// Returns whether the circuit was open. No effect when closed or half-open.
    pub fn endpoint_reachable(&self) -> bool {
        let mut inner = self.inner.lock();
        match inner.state {
            BreakerState::Open { until } => {
                let now = Instant::now();
                if until > now {
                    inner.state = BreakerState::Open { until: now };
                    tracing::info!(database = %self.name, "database answers again; circuit breaker lets a probe call through");
                }
                true
            }
            BreakerState::Closed | BreakerState::HalfOpen => false,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.inner.lock().state
    }

    /// Admit a call, or say why not.
    fn admit(&self) -> std::result::Result<(), Duration> {
        let mut inner = self.inner.lock();
        match inner.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    inner.state = BreakerState::HalfOpen;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            BreakerState::HalfOpen => Err(Duration::ZERO),
        }
    }

    fn record(&self, failed: bool) {
        let mut inner = self.inner.lock();
        if failed {
            inner.failures = inner.failures.saturating_add(1);
            let reopen = inner.state == BreakerState::HalfOpen
                || inner.failures >= self.config.failure_threshold;
            if reopen {
                if !matches!(inner.state, BreakerState::Open { .. }) {
                    tracing::warn!(database = %self.name, failures = inner.failures, "circuit breaker opened");
                }
                inner.state = BreakerState::Open {
                    until: Instant::now() + self.config.open_for,
                };
                self.opened.notify_waiters();
            }
        } else {
            if inner.state != BreakerState::Closed {
                tracing::info!(database = %self.name, "circuit breaker closed");
            }
            inner.failures = 0;
            inner.state = BreakerState::Closed;
        }
    }
}

impl Around for CircuitBreaker {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            if let Err(wait) = self.admit() {
                return Err(Error::unavailable(format!(
                    "circuit breaker for database `{}` is open (next probe in {:?})",
                    self.name, wait
                ))
                .in_context(entity, op.name()));
            }
            let result = call().await;
            self.record(matches!(&result, Err(e) if infrastructure(e)));
            result
        })
    }
}
