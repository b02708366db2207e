//! One `tracing` span per repository operation, with OpenTelemetry's
//! database semantic conventions, so a fault can be followed in the logs
//! (or in any OpenTelemetry backend through `tracing-opentelemetry`).
//!
//! Every span is named `db` (`otel.name` carries `"<operation> <collection>"`)
//! and has the fields of [`fields`]:
//!
//! | field | value |
//! | --- | --- |
//! | `db.system` | `postgresql`, `sqlite`, `mongodb`, `redis` or `memory` |
//! | `db.namespace` | the PostgreSQL schema / MongoDB database, else the configured database name |
//! | `db.operation.name` | the repository operation: `get`, `insert`, `find`... |
//! | `db.collection.name` | the entity's logical name (its table / collection) |
//! | `db.query.text` | the shape of the statements run (SQL with `$1`/`?` placeholders, MongoDB command shapes), `; `-separated, never bound values; absent when the backend reports none |
//! | `persistence.attempt` | attempts made (more than 1 when the `Retry` layer inside repeated the call) |
//! | `persistence.outcome` | `ok` or the error kind (`not_found`, `conflict`, `unavailable`, `timeout`...) |
//! | `error.type` | the error kind, on failure |
//! | `otel.status_code` | `ERROR` on failure |
//! | `db.response.returned_rows` | rows a `stream` yielded |
//!
//! A failure caused by the infrastructure (`Unavailable`, `Timeout`,
//! `Backend`) also emits a `debug` event with the error inside the span.
//! Fields never carry values, ids or connection strings.
//!
//! Place it outermost (after `Metrics`): the span then covers the breaker,
//! every retry and the time-outs, and the retry layer records its attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use parking_lot::Mutex;
use tracing::Instrument as _;

use super::metrics::error_label;
use super::slowlog::MAX_STATEMENT_LEN;
use super::{Around, BoxFuture, Call, Op};
use crate::error::{Error, ErrorKind, Result};
use crate::repository::BoxStream;

/// The span's field names, defined once.
pub mod fields {
    /// The database system.
    pub const DB_SYSTEM: &str = "db.system";
    /// The schema / database name.
    pub const DB_NAMESPACE: &str = "db.namespace";
    /// The repository operation.
    pub const DB_OPERATION_NAME: &str = "db.operation.name";
    /// The entity's table / collection.
    pub const DB_COLLECTION_NAME: &str = "db.collection.name";
    /// Statement shapes (no values).
    pub const DB_QUERY_TEXT: &str = "db.query.text";
    /// Rows a stream returned.
    pub const DB_RETURNED_ROWS: &str = "db.response.returned_rows";
    /// Attempts made.
    pub const ATTEMPT: &str = "persistence.attempt";
    /// `ok` or the error kind.
    pub const OUTCOME: &str = "persistence.outcome";
    /// The error kind on failure.
    pub const ERROR_TYPE: &str = "error.type";
    /// `ERROR` on failure.
    pub const OTEL_STATUS_CODE: &str = "otel.status_code";
    /// The span name OpenTelemetry exporters use.
    pub const OTEL_NAME: &str = "otel.name";
    /// The span kind (`client`).
    pub const OTEL_KIND: &str = "otel.kind";
}

/// `db.system` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbSystem {
    /// PostgreSQL.
    Postgresql,
    /// SQLite.
    Sqlite,
    /// MongoDB.
    Mongodb,
    /// Redis.
    Redis,
    /// The in-memory store.
    Memory,
}

impl DbSystem {
    /// The OpenTelemetry name.
    pub fn name(self) -> &'static str {
        match self {
            DbSystem::Postgresql => "postgresql",
            DbSystem::Sqlite => "sqlite",
            DbSystem::Mongodb => "mongodb",
            DbSystem::Redis => "redis",
            DbSystem::Memory => "memory",
        }
    }
}

/// What inner layers and backends report about the current operation.
#[derive(Debug, Default)]
struct TraceContext {
    attempts: AtomicU32,
    statements: Mutex<String>,
}

tokio::task_local! {
    static CURRENT: Arc<TraceContext>;
}

/// The retry layer is about to make attempt `n` (1-based) of the current operation.
pub(crate) fn attempt(n: u32) {
    let _ = CURRENT.try_with(|c| c.attempts.store(n, Ordering::Relaxed));
}

/// A backend ran a statement of shape `shape` (placeholders only).
pub(crate) fn statement(shape: &str) {
    let _ = CURRENT.try_with(|c| {
        let mut s = c.statements.lock();
        if s.len() >= MAX_STATEMENT_LEN {
            return;
        }
        if !s.is_empty() {
            s.push_str("; ");
        }
        s.push_str(shape);
        if s.len() > MAX_STATEMENT_LEN {
            let mut cut = MAX_STATEMENT_LEN;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
    });
}

/// Whether a `Tracing` layer traces an operation in the current task.
pub(crate) fn in_scope() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// The tracing layer (see the module docs).
#[derive(Debug, Clone)]
pub struct Tracing {
    system: DbSystem,
    namespace: Arc<str>,
}

impl Tracing {
    /// Spans for database `namespace` of `system`.
    pub fn new(system: DbSystem, namespace: &str) -> Self {
        Tracing {
            system,
            namespace: Arc::from(namespace),
        }
    }

    fn span(&self, entity: &'static str, op: Op) -> tracing::Span {
        tracing::info_span!(
            "db",
            otel.name = %format_args!("{} {}", op.name(), entity),
            otel.kind = "client",
            db.system = self.system.name(),
            db.namespace = %self.namespace,
            db.operation.name = op.name(),
            db.collection.name = entity,
            db.query.text = tracing::field::Empty,
            db.response.returned_rows = tracing::field::Empty,
            persistence.attempt = tracing::field::Empty,
            persistence.outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    }
}

fn finish(span: &tracing::Span, ctx: &TraceContext, err: Option<&Error>) {
    let statements = std::mem::take(&mut *ctx.statements.lock());
    if !statements.is_empty() {
        span.record(fields::DB_QUERY_TEXT, statements.as_str());
    }
    span.record(fields::ATTEMPT, ctx.attempts.load(Ordering::Relaxed).max(1));
    match err {
        None => {
            span.record(fields::OUTCOME, "ok");
        }
        Some(e) => {
            let kind = error_label(e);
            span.record(fields::OUTCOME, kind);
            span.record(fields::ERROR_TYPE, kind);
            span.record(fields::OTEL_STATUS_CODE, "ERROR");
            if matches!(
                e.kind(),
                ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Backend
            ) {
                tracing::debug!(parent: span, error = %e, "database operation failed");
            }
        }
    }
}

impl Around for Tracing {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        let span = self.span(entity, op);
        Box::pin(async move {
            if span.is_disabled() {
                return call().await;
            }
            let ctx = Arc::new(TraceContext::default());
            let result = CURRENT
                .scope(ctx.clone(), call().instrument(span.clone()))
                .await;
            finish(&span, &ctx, result.as_ref().err());
            result
        })
    }

    fn around_stream<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        stream: BoxStream<'a, Result<T>>,
    ) -> BoxStream<'a, Result<T>> {
        let span = self.span(entity, Op::Stream);
        if span.is_disabled() {
            return stream;
        }
        Box::pin(Traced {
            inner: stream,
            span,
            ctx: Arc::new(TraceContext::default()),
            rows: 0,
            done: false,
        })
    }
}

/// A stream inside its span.
struct Traced<'a, T> {
    inner: BoxStream<'a, Result<T>>,
    span: tracing::Span,
    ctx: Arc<TraceContext>,
    rows: u64,
    done: bool,
}

impl<T> Traced<'_, T> {
    fn end(&mut self, err: Option<&Error>) {
        if !self.done {
            self.done = true;
            self.span.record(fields::DB_RETURNED_ROWS, self.rows);
            finish(&self.span, &self.ctx, err);
        }
    }
}

impl<T> Stream for Traced<'_, T> {
    type Item = Result<T>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = {
            let _entered = this.span.enter();
            let inner = &mut this.inner;
            CURRENT.sync_scope(this.ctx.clone(), || inner.as_mut().poll_next(cx))
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                this.rows += 1;
            }
            Poll::Ready(Some(Err(e))) => this.end(Some(e)),
            Poll::Ready(None) => this.end(None),
            Poll::Pending => {}
        }
        polled
    }
}

impl<T> Drop for Traced<'_, T> {
    fn drop(&mut self) {
        // Dropped before its end: the consumer stopped reading; not a failure.
        self.end(None);
    }
}
