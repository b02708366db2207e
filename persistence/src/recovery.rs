//! The recovery checker of one database: while its circuit breaker is open,
//! ping the database every `failover.recovery_interval` (each ping bounded by
//! `failover.check_timeout`); as soon as one answers, tell the breaker, which
//! then lets the next call through as its probe instead of waiting out
//! `breaker.open_for`. While the breaker is closed the task sleeps on the
//! breaker's "opened" notification: no pings, no timers.

use std::time::{Duration, Instant};

use crate::config::FailoverSettings;
use persistence_core::Error;
use persistence_core::layer::{BreakerState, CircuitBreaker};

use crate::failover::Pinger;

/// Whether any of `pingers` answers within `timeout` (pinged in parallel).
pub(crate) async fn any_answers(pingers: &[Pinger], timeout: Duration) -> Result<(), Error> {
    let checks = pingers.iter().map(|ping| async move {
        match tokio::time::timeout(timeout, ping()).await {
            Ok(r) => r,
            Err(_) => Err(Error::timeout(format!("no answer within {timeout:?}"))),
        }
    });
    let results = futures_util::future::join_all(checks).await;
    let mut last = Error::unavailable("no endpoint to check");
    for r in results {
        match r {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Start the checker of `breaker`, pinging the endpoints that can take the
/// database's calls (any one answering is enough).
pub(crate) fn spawn(
    breaker: CircuitBreaker,
    pingers: Vec<Pinger>,
    settings: &FailoverSettings,
) -> tokio::task::JoinHandle<()> {
    let (every, timeout) = (settings.recovery_interval, settings.check_timeout);
    tokio::spawn(async move {
        loop {
            breaker.opened().await;
            tracing::debug!(database = breaker.name(), "recovery checker active");
            loop {
                match breaker.state() {
                    BreakerState::Open { until } if until > Instant::now() => {
                        if any_answers(&pingers, timeout).await.is_ok() {
                            breaker.endpoint_reachable();
                        }
                    }
                    // A probe call is already allowed or in flight.
                    BreakerState::Open { .. } | BreakerState::HalfOpen => {}
                    BreakerState::Closed => break,
                }
                tokio::time::sleep(every).await;
            }
        }
    })
}
