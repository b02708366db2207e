//! Metric names, labels and label values, defined once (also
//! `persistence_core::layer::metric_names`). A leaf of the layer modules:
//! the metrics, leak, probe and tracing layers all label with these.

use crate::error::{Error, ErrorKind, Result};

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
/// Histogram (seconds): one source's part of a cross-store search
/// (`Persistence::search`), labels `source`, `status`.
pub const SEARCH_DURATION: &str = "persistence_search_duration_seconds";
/// Label: a search source's name.
pub const LABEL_SOURCE: &str = "source";
/// Label: a search source's status: `ok`, `timed_out`, `failed`, `skipped`.
pub const LABEL_STATUS: &str = "status";
/// Label: connection state of [`POOL_CONNECTIONS`].
pub const LABEL_STATE: &str = "state";
/// `state` value: connections handed out.
pub const STATE_IN_USE: &str = "in_use";
/// `state` value: connections idle in the pool.
pub const STATE_IDLE: &str = "idle";

/// Every `outcome` label value, by [`outcome_index`]: `ok`, then the
/// error kinds in snake case.
pub const OUTCOMES: [&str; 10] = [
    "ok",
    "not_found",
    "conflict",
    "invalid_input",
    "unavailable",
    "timeout",
    "config",
    "unsupported",
    "decode",
    "backend",
];

/// The `outcome` label of a result.
pub fn outcome<T>(r: &Result<T>) -> &'static str {
    OUTCOMES[outcome_index(r)]
}

/// The position of a result's `outcome` label in [`OUTCOMES`].
pub fn outcome_index<T>(r: &Result<T>) -> usize {
    match r {
        Ok(_) => 0,
        Err(e) => error_index(e),
    }
}

/// The `outcome` label of an error: its kind in snake case.
pub fn error_label(e: &Error) -> &'static str {
    OUTCOMES[error_index(e)]
}

fn error_index(e: &Error) -> usize {
    match e.kind() {
        ErrorKind::NotFound => 1,
        ErrorKind::Conflict(_) => 2,
        ErrorKind::InvalidInput => 3,
        ErrorKind::Unavailable => 4,
        ErrorKind::Timeout => 5,
        ErrorKind::Config => 6,
        ErrorKind::Unsupported => 7,
        ErrorKind::Decode => 8,
        _ => 9,
    }
}
