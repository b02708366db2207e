//! Operation metrics through the `metrics` facade, and the slow-operation log.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;

use super::leak::LeakDetector;
use super::probe::{OpContext, PoolProbe};
use super::slowlog::{SlowEntry, SlowLog};
use super::{Around, BoxFuture, Call, Op};
use crate::error::Result;
use crate::repository::BoxStream;

pub mod names;

pub use names::{error_label, outcome};

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

    /// Record one operation named `op` of `entity` that is not a
    /// [`Repository`](crate::Repository) method (a backend's raw statement,
    /// e.g. `query_as` or `aggregate_raw`) exactly as [`Around::around`]
    /// records a repository call: count by outcome, latency, and for slow
    /// calls the warning and the [`SlowLog`] entry with the shape of the
    /// slowest statement the backend reported while `fut` ran.
    pub async fn observe<T, F>(&self, entity: &'static str, op: &'static str, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let ctx = OpContext::start(self.probe.clone());
        let hold = self
            .leaks
            .as_ref()
            .map(|l| l.track_op(op, entity, ctx.clone()));
        let start = Instant::now();
        let result = ctx.scope(fut).await;
        let elapsed = start.elapsed();
        drop(hold);
        // The database label shares the layer's `Arc<str>`: no string is
        // allocated per call (only the slow path below builds one).
        let db = || metrics::SharedString::from(self.db.clone());
        metrics::counter!(names::OPERATIONS,
            names::LABEL_DB => db(), names::LABEL_ENTITY => entity,
            names::LABEL_OP => op, names::LABEL_OUTCOME => outcome(&result))
        .increment(1);
        metrics::histogram!(names::OPERATION_DURATION,
            names::LABEL_DB => db(), names::LABEL_ENTITY => entity, names::LABEL_OP => op)
        .record(elapsed.as_secs_f64());
        if elapsed >= self.slow {
            metrics::counter!(names::SLOW_OPERATIONS,
                names::LABEL_DB => db(), names::LABEL_ENTITY => entity, names::LABEL_OP => op)
            .increment(1);
            let db = self.db.to_string();
            let statement = ctx.take_statement();
            tracing::warn!(db = %self.db, entity, op = op, elapsed_ms = elapsed.as_millis() as u64,
                statement = statement.as_deref().unwrap_or(""), "slow operation");
            SlowLog::global().record(SlowEntry {
                at: SystemTime::now(),
                db,
                entity: entity.to_string(),
                op: op.to_string(),
                duration: elapsed,
                statement,
            });
        }
        result
    }
}

impl Around for Metrics {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(self.observe(entity, op.name(), call()))
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
