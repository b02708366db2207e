//! Operation metrics through the `metrics` facade, and the slow-operation log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Around, BoxFuture, Call, Op};
use crate::error::{ErrorKind, Result};

/// Metric names and labels, defined once.
pub mod names {
    /// Counter: repository operations, labels `db`, `entity`, `op`, `outcome`.
    pub const OPERATIONS: &str = "persistence_operations_total";
    /// Histogram (seconds): operation latency, labels `db`, `entity`, `op`.
    pub const OPERATION_DURATION: &str = "persistence_operation_duration_seconds";
    /// Counter: operations slower than the slow threshold, labels `db`, `entity`, `op`.
    pub const SLOW_OPERATIONS: &str = "persistence_slow_operations_total";
    /// Label: database name from the configuration.
    pub const LABEL_DB: &str = "db";
    /// Label: entity logical name.
    pub const LABEL_ENTITY: &str = "entity";
    /// Label: operation (`get`, `find`, ...).
    pub const LABEL_OP: &str = "op";
    /// Label: `ok` or the error kind in snake case (`not_found`, `conflict`, `unavailable`, ...).
    pub const LABEL_OUTCOME: &str = "outcome";
}

/// Records every operation: count by outcome, latency histogram, and a
/// `tracing` warning (without bound values) for operations slower than the
/// threshold. Labels never carry values or secrets.
#[derive(Debug, Clone)]
pub struct Metrics {
    db: Arc<str>,
    slow: Duration,
}

impl Metrics {
    /// Metrics labelled with database `db`; slow threshold 500 ms.
    pub fn new(db: &str) -> Self {
        Metrics {
            db: Arc::from(db),
            slow: Duration::from_millis(500),
        }
    }
    /// Change the slow-operation threshold.
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow = threshold;
        self
    }
}

/// The `outcome` label of a result.
pub fn outcome<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => match e.kind() {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict(_) => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Config => "config",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Decode => "decode",
            _ => "backend",
        },
    }
}

impl Around for Metrics {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let start = Instant::now();
            let result = call().await;
            let elapsed = start.elapsed();
            let db = self.db.to_string();
            metrics::counter!(names::OPERATIONS,
                names::LABEL_DB => db.clone(), names::LABEL_ENTITY => entity,
                names::LABEL_OP => op.name(), names::LABEL_OUTCOME => outcome(&result))
            .increment(1);
            metrics::histogram!(names::OPERATION_DURATION,
                names::LABEL_DB => db.clone(), names::LABEL_ENTITY => entity, names::LABEL_OP => op.name())
            .record(elapsed.as_secs_f64());
            if elapsed >= self.slow {
                metrics::counter!(names::SLOW_OPERATIONS,
                    names::LABEL_DB => db, names::LABEL_ENTITY => entity, names::LABEL_OP => op.name())
                .increment(1);
                tracing::warn!(db = %self.db, entity, op = op.name(), elapsed_ms = elapsed.as_millis() as u64, "slow operation");
            }
            result
        })
    }
}
