//! Operation metrics through the `metrics` facade, and the slow-operation log.

use std::sync::{Arc, OnceLock};
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
    /// The metric keys of repository operations, built once (see [`Keys`]).
    keys: Arc<OnceLock<Keys>>,
}

/// What the `counter!` / `histogram!` macros would give their metrics.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The keys of the operations of the first entity a `Metrics` layer sees
/// (in the manager, one layer per repository: its only entity), each [`Op`]'s
/// built on its first call. The macros build a key per call: a label vector
/// allocated, its labels sorted, the key hashed for the recorder's lookup; a
/// built key keeps its hash. The recorder is still looked up per call, as
/// the macros do (a recorder installed later, or a local one, is honoured).
#[derive(Debug)]
struct Keys {
    entity: &'static str,
    /// By `Op as usize`.
    ops: Vec<OnceLock<OpKeys>>,
}

#[derive(Debug)]
struct OpKeys {
    /// `OPERATIONS` by [`names::outcome_index`].
    operations: Vec<metrics::Key>,
    duration: metrics::Key,
}

impl OpKeys {
    fn new(db: &Arc<str>, entity: &'static str, op: &'static str) -> OpKeys {
        let labels = |outcome: Option<&'static str>| {
            let mut l = vec![
                metrics::Label::new(names::LABEL_DB, metrics::SharedString::from(db.clone())),
                metrics::Label::new(names::LABEL_ENTITY, entity),
                metrics::Label::new(names::LABEL_OP, op),
            ];
            if let Some(o) = outcome {
                l.push(metrics::Label::new(names::LABEL_OUTCOME, o));
            }
            l
        };
        OpKeys {
            operations: names::OUTCOMES
                .iter()
                .map(|&o| metrics::Key::from_parts(names::OPERATIONS, labels(Some(o))))
                .collect(),
            duration: metrics::Key::from_parts(names::OPERATION_DURATION, labels(None)),
        }
    }
}

impl Metrics {
    /// Metrics labelled with database `db`; slow threshold 500 ms.
    pub fn new(db: &str) -> Self {
        Metrics {
            db: Arc::from(db),
            slow: Duration::from_millis(500),
            probe: None,
            leaks: None,
            keys: Arc::default(),
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
        self.measure(entity, op, None, fut).await
    }

    /// The keys of `op` on `entity`, when this layer keeps them (its first entity).
    fn op_keys(&self, entity: &'static str, op: Op) -> Option<&OpKeys> {
        let keys = self.keys.get_or_init(|| Keys {
            entity,
            ops: Op::ALL.iter().map(|_| OnceLock::new()).collect(),
        });
        if keys.entity != entity {
            return None;
        }
        let slot = keys.ops.get(op as usize)?;
        Some(slot.get_or_init(|| OpKeys::new(&self.db, entity, op.name())))
    }

    /// [`observe`](Self::observe); with `op_keys` (a repository operation),
    /// through its built keys.
    async fn measure<T, F>(
        &self,
        entity: &'static str,
        op: &'static str,
        op_keys: Option<&OpKeys>,
        fut: F,
    ) -> Result<T>
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
        match op_keys {
            Some(keys) => metrics::with_recorder(|r| {
                r.register_counter(&keys.operations[names::outcome_index(&result)], &METADATA)
                    .increment(1);
                r.register_histogram(&keys.duration, &METADATA)
                    .record(elapsed.as_secs_f64());
            }),
            None => {
                metrics::counter!(names::OPERATIONS,
                    names::LABEL_DB => db(), names::LABEL_ENTITY => entity,
                    names::LABEL_OP => op, names::LABEL_OUTCOME => outcome(&result))
                .increment(1);
                metrics::histogram!(names::OPERATION_DURATION,
                    names::LABEL_DB => db(), names::LABEL_ENTITY => entity, names::LABEL_OP => op)
                .record(elapsed.as_secs_f64());
            }
        }
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
        let keys = self.op_keys(entity, op);
        Box::pin(self.measure(entity, op.name(), keys, call()))
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
