//! Pool status and the background sampler that publishes pool and breaker
//! gauges (names in [`persistence_core::layer::metrics::names`]).

use std::sync::Weak;
use std::time::Duration;

use persistence_core::layer::BreakerState;
pub use persistence_core::layer::PoolStatus;
use persistence_core::layer::metrics::names;
#[cfg(relational)]
use persistence_postgres::pool::relational_status;

use crate::database::Database;

/// The pool status of a built database (MongoDB: from the driver's pool
/// events, summed over servers; `max` is per server).
pub(crate) fn status(db: &Database) -> Option<PoolStatus> {
    match db.backend.get()? {
        #[cfg(relational)]
        crate::database::Backend::Relational(store) => relational_status(store, &db.probe),
        #[cfg(feature = "mongo")]
        crate::database::Backend::Mongo(store) => store.pool_stats().map(|s| PoolStatus {
            max: s.max,
            size: s.open,
            idle: s.open.saturating_sub(s.checked_out),
            in_use: s.checked_out,
            waiting: s.waiting,
        }),
        _ => None,
    }
}

/// `persistence_breaker_state` value: 0 closed, 1 half-open, 2 open.
pub fn breaker_gauge(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open { .. } => 2.0,
    }
}

/// Publish the gauges of `status` for database `db`.
pub(crate) fn publish(db: &str, status: &PoolStatus) {
    let label = db.to_string();
    metrics::gauge!(names::POOL_CONNECTIONS, names::LABEL_DB => label.clone(), names::LABEL_STATE => names::STATE_IN_USE)
        .set(f64::from(status.in_use));
    metrics::gauge!(names::POOL_CONNECTIONS, names::LABEL_DB => label.clone(), names::LABEL_STATE => names::STATE_IDLE)
        .set(f64::from(status.idle));
    metrics::gauge!(names::POOL_MAX_CONNECTIONS, names::LABEL_DB => label.clone())
        .set(f64::from(status.max));
    metrics::gauge!(names::POOL_WAITING, names::LABEL_DB => label).set(f64::from(status.waiting));
}

/// Warns once each time utilization rises to the threshold (re-armed when it
/// falls below). Single-connection pools (in-memory SQLite) are exempt: they
/// swing between 0 and 100 % with every call.
#[derive(Debug)]
pub(crate) struct UtilizationWatch {
    threshold: f64,
    above: bool,
}

impl UtilizationWatch {
    pub(crate) fn new(percent: u8) -> Self {
        UtilizationWatch {
            threshold: f64::from(percent),
            above: false,
        }
    }

    /// Returns true when this observation crossed the threshold upwards (and warned).
    pub(crate) fn observe(&mut self, db: &str, status: &PoolStatus) -> bool {
        let util = status.utilization_percent();
        if status.max > 1 && util >= self.threshold {
            if !self.above {
                self.above = true;
                tracing::warn!(
                    db,
                    in_use = status.in_use,
                    max = status.max,
                    waiting = status.waiting,
                    utilization = util,
                    threshold = self.threshold,
                    "connection pool utilization high"
                );
                return true;
            }
        } else {
            self.above = false;
        }
        false
    }
}

/// The sampler of one built database: every `every`, publish pool gauges
/// (if it has a pool), check the utilization threshold and publish the
/// breaker state. Stops when the database is dropped.
pub(crate) fn spawn_sampler(
    db: Weak<Database>,
    every: Duration,
    warn_percent: u8,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watch = UtilizationWatch::new(warn_percent);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(db) = db.upgrade() else { break };
            if let Some(status) = status(&db) {
                publish(&db.name, &status);
                watch.observe(&db.name, &status);
            }
            metrics::gauge!(names::BREAKER_STATE, names::LABEL_DB => db.name.clone())
                .set(breaker_gauge(db.breaker.state()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{PoolStatus, UtilizationWatch};

    fn at(max: u32, in_use: u32) -> PoolStatus {
        PoolStatus {
            max,
            size: in_use,
            idle: 0,
            in_use,
            waiting: 0,
        }
    }

    #[test]
    fn warns_once_per_crossing() {
        let mut w = UtilizationWatch::new(85);
        assert!(!w.observe("db", &at(10, 8)), "80 % is below");
        assert!(w.observe("db", &at(10, 9)), "90 % crosses");
        assert!(!w.observe("db", &at(10, 10)), "still above: no repeat");
        assert!(!w.observe("db", &at(10, 5)), "falls below: re-armed");
        assert!(w.observe("db", &at(10, 9)), "crosses again");
        let mut one = UtilizationWatch::new(85);
        assert!(
            !one.observe("db", &at(1, 1)),
            "single-connection pools are exempt"
        );
    }
}
