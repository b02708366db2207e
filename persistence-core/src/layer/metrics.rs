//! Operation metrics through the `metrics` facade, and the slow-operation log.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;

use super::leak::LeakDetector;
use super::probe::{OpContext, PoolProbe};
use super::slowlog::{SlowEntry, SlowLog};
use super::{Around, BoxFuture, Call, Op};
use crate::error::{ErrorKind, Result};
use crate::repository::BoxStream;

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

    /// Gauge: pooled connections by state, labels `db`, `state` ([`STATE_IN_USE`] | [`STATE_IDLE`]).
    /// Sampled (at least every second) by the `persistence` manager for PostgreSQL/SQLite pools.
    pub const POOL_CONNECTIONS: &str = "persistence_pool_connections";
    /// Gauge: the pool's maximum size, label `db`.
    pub const POOL_MAX_CONNECTIONS: &str = "persistence_pool_max_connections";
    /// Gauge: operations waiting for a pooled connection, label `db`.
    pub const POOL_WAITING: &str = "persistence_pool_waiting";
    /// Histogram (seconds): time an operation waited to get a pooled connection, label `db`.
    pub const POOL_ACQUIRE: &str = "persistence_pool_acquire_seconds";
    /// Gauge: circuit breaker state, label `db`: 0 closed, 1 half-open, 2 open.
    pub const BREAKER_STATE: &str = "persistence_breaker_state";
    /// Counter: connections or transactions held longer than the leak threshold,
    /// labels `db`, `op` (`transaction`, `stream`, or the repository operation).
    pub const CONNECTION_LEAKS: &str = "persistence_connection_leaks_total";
    /// Counter: read-backs of single-entity writes whose outcome was unknown
    /// (see [`ResolveOutcome`](crate::layer::ResolveOutcome)), labels
    /// `entity`, `op`, `result` ([`RESULT_APPLIED`] | [`RESULT_NOT_APPLIED`] |
    /// [`RESULT_UNRESOLVED`]).
    pub const WRITE_RESOLUTIONS: &str = "persistence_write_resolutions_total";
    /// Label: how a write of unknown outcome was resolved.
    pub const LABEL_RESULT: &str = "result";
    /// `result` value: it had been applied; the call succeeded without repeating it.
    pub const RESULT_APPLIED: &str = "applied";
    /// `result` value: it had not been applied; it was repeated.
    pub const RESULT_NOT_APPLIED: &str = "not_applied";
    /// `result` value: the library could not find out (read failed, attempts
    /// ran out, or another writer's data is stored); the caller got an error
    /// of unknown outcome.
    pub const RESULT_UNRESOLVED: &str = "unresolved";
    /// Gauge: provisioned tenants (when the backend knows), label `db`.
    pub const TENANTS: &str = "persistence_tenants";
    /// Label: connection state of [`POOL_CONNECTIONS`].
    pub const LABEL_STATE: &str = "state";
    /// `state` value: connections handed out.
    pub const STATE_IN_USE: &str = "in_use";
    /// `state` value: connections idle in the pool.
    pub const STATE_IDLE: &str = "idle";
}

/// Records every operation: count by outcome, latency histogram, and for
/// operations slower than the threshold a `tracing` warning and an entry in
/// [`SlowLog::global`] with the shape of the slowest statement the backend
/// reported (see [`probe`](super::probe)). Labels never carry values or secrets.
///
/// With a [`PoolProbe`] it also counts operations waiting for a pooled
/// connection and times the wait; with a [`LeakDetector`] every operation and
/// every open stream is a hold the detector's watchdog checks.
#[derive(Debug, Clone)]
pub struct Metrics {
    db: Arc<str>,
    slow: Duration,
    probe: Option<PoolProbe>,
    leaks: Option<LeakDetector>,
}

impl Metrics {
    /// Metrics labelled with database `db`; slow threshold 500 ms.
    pub fn new(db: &str) -> Self {
        Metrics {
            db: Arc::from(db),
            slow: Duration::from_millis(500),
            probe: None,
            leaks: None,
        }
    }
    /// Change the slow-operation threshold.
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow = threshold;
        self
    }
    /// Count waiting operations and time connection acquisition in `probe`.
    pub fn pool_probe(mut self, probe: PoolProbe) -> Self {
        self.probe = Some(probe);
        self
    }
    /// Register operations and streams with a leak detector.
    pub fn leak_detector(mut self, detector: LeakDetector) -> Self {
        self.leaks = Some(detector);
        self
    }
}

/// The `outcome` label of a result.
pub fn outcome<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => error_label(e),
    }
}

/// The `outcome` label of an error: its kind in snake case.
pub fn error_label(e: &crate::Error) -> &'static str {
    match e.kind() {
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict(_) => "conflict",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Config => "config",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Decode => "decode",
        _ => "backend",
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
            let ctx = OpContext::start(self.probe.clone());
            let hold = self
                .leaks
                .as_ref()
                .map(|l| l.track_op(op.name(), entity, ctx.clone()));
            let start = Instant::now();
            let result = ctx.scope(call()).await;
            let elapsed = start.elapsed();
            drop(hold);
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
                    names::LABEL_DB => db.clone(), names::LABEL_ENTITY => entity, names::LABEL_OP => op.name())
                .increment(1);
                let statement = ctx.take_statement();
                tracing::warn!(db = %self.db, entity, op = op.name(), elapsed_ms = elapsed.as_millis() as u64,
                    statement = statement.as_deref().unwrap_or(""), "slow operation");
                SlowLog::global().record(SlowEntry {
                    at: SystemTime::now(),
                    db,
                    entity: entity.to_string(),
                    op: op.name().to_string(),
                    duration: elapsed,
                    statement,
                });
            }
            result
        })
    }

    fn around_stream<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        stream: BoxStream<'a, Result<T>>,
    ) -> BoxStream<'a, Result<T>> {
        match &self.leaks {
            None => stream,
            Some(leaks) => {
                let hold = leaks.track(Op::Stream.name(), Some(entity), None);
                Box::pin(stream.map(move |item| {
                    let _ = &hold;
                    item
                }))
            }
        }
    }
}
