//! What a backend tells the [`Metrics`](super::Metrics) layer about the
//! operation running in the current task: statements it executed (for the
//! slow log's statement shape) and the moment it got a pooled connection (for
//! the pool's waiting gauge and acquire-time histogram).
//!
//! The layer opens a task-local scope around each operation; backends call
//! [`statement_executed`] / [`connection_acquired`] from their driver hooks
//! (sea-orm's metric callback, sqlx's `before_acquire`), which run in the
//! calling task. Outside a scope both are cheap no-ops.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::metrics::names;

tokio::task_local! {
    static CURRENT: Arc<OpContext>;
}

/// Per-database pool bookkeeping shared by the `Metrics` layer (which counts
/// operations waiting for a connection) and the pool sampler (which reads it).
#[derive(Debug, Clone)]
pub struct PoolProbe {
    inner: Arc<ProbeInner>,
}

#[derive(Debug)]
struct ProbeInner {
    db: Arc<str>,
    waiting: AtomicU64,
    /// The acquire histogram's key, built once (the macro builds one per
    /// call: the label's string allocated, the key hashed).
    acquire: metrics::Key,
}

/// What the `histogram!` macro would give its metric.
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl PoolProbe {
    /// A probe for database `db` (the `db` label of the acquire histogram).
    pub fn new(db: &str) -> Self {
        let db: Arc<str> = Arc::from(db);
        let label = metrics::Label::new(names::LABEL_DB, metrics::SharedString::from(db.clone()));
        PoolProbe {
            inner: Arc::new(ProbeInner {
                db,
                waiting: AtomicU64::new(0),
                acquire: metrics::Key::from_parts(names::POOL_ACQUIRE, vec![label]),
            }),
        }
    }

    /// Operations that started and have not got a connection yet.
    pub fn waiting(&self) -> u32 {
        u32::try_from(self.inner.waiting.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
    }

    /// The database name.
    pub fn db(&self) -> &str {
        &self.inner.db
    }

    fn dec_waiting(&self) {
        let _ = self
            .inner
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1));
    }

    fn record_acquire(&self, waited: Duration) {
        metrics::with_recorder(|r| {
            r.register_histogram(&self.inner.acquire, &METADATA)
                .record(waited.as_secs_f64());
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for its first connection (counted in `waiting`).
    Waiting,
    /// Holding a connection.
    Holding,
    /// Between statements: the next acquire is timed from `since`.
    Between,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    slowest: Option<(Duration, String)>,
}

/// The context of one operation (see the module docs).
#[derive(Debug)]
pub(crate) struct OpContext {
    probe: Option<PoolProbe>,
    state: Mutex<State>,
}

impl OpContext {
    /// A context; with a probe, the operation counts as waiting until it gets a connection.
    pub(crate) fn start(probe: Option<PoolProbe>) -> Arc<OpContext> {
        if let Some(p) = &probe {
            p.inner.waiting.fetch_add(1, Ordering::Relaxed);
        }
        Arc::new(OpContext {
            probe,
            state: Mutex::new(State {
                phase: Phase::Waiting,
                since: Instant::now(),
                slowest: None,
            }),
        })
    }

    /// Run `fut` with this context current.
    pub(crate) async fn scope<F: Future>(self: &Arc<Self>, fut: F) -> F::Output {
        CURRENT.scope(self.clone(), fut).await
    }

    /// Whether the operation holds (or held) a connection rather than still waiting for one.
    pub(crate) fn has_connection(&self) -> bool {
        self.state.lock().phase != Phase::Waiting
    }

    /// The slowest statement seen, taken out.
    pub(crate) fn take_statement(&self) -> Option<String> {
        self.state.lock().slowest.take().map(|(_, s)| s)
    }

    /// A connection was handed over at `at`; `hook` is true when the pool
    /// itself said so (false: inferred from a statement having run).
    fn acquired(&self, at: Instant, hook: bool) {
        let mut st = self.state.lock();
        match st.phase {
            // Between statements without a pool hook, the statement ran on a
            // connection already held (a transaction): nothing was acquired.
            Phase::Between if !hook => {}
            Phase::Waiting | Phase::Between => {
                if let Some(p) = &self.probe {
                    if st.phase == Phase::Waiting {
                        p.dec_waiting();
                    }
                    p.record_acquire(at.saturating_duration_since(st.since));
                }
                st.phase = Phase::Holding;
            }
            Phase::Holding => {}
        }
    }

    fn statement(&self, sql: &str, elapsed: Duration) {
        let now = Instant::now();
        // Without an acquire hook (a newly opened connection), the first
        // statement's start is when the connection was in hand.
        self.acquired(now.checked_sub(elapsed).unwrap_or(now), false);
        let mut st = self.state.lock();
        st.phase = Phase::Between;
        st.since = now;
        if st.slowest.as_ref().is_none_or(|(d, _)| elapsed > *d) {
            st.slowest = Some((elapsed, sql.to_string()));
        }
    }
}

impl Drop for OpContext {
    fn drop(&mut self) {
        if let Some(p) = &self.probe {
            if self.state.get_mut().phase == Phase::Waiting {
                p.dec_waiting();
            }
        }
    }
}

/// A backend executed a statement in the current operation. `shape` must be
/// the statement text with placeholders only — never bound values.
pub fn statement_executed(shape: &str, elapsed: Duration) {
    let _ = CURRENT.try_with(|ctx| ctx.statement(shape, elapsed));
    super::trace::statement(shape);
}

/// A backend got a pooled connection for the current operation.
pub fn connection_acquired() {
    let _ = CURRENT.try_with(|ctx| ctx.acquired(Instant::now(), true));
}

/// Whether a `Metrics` layer is measuring, or a `Tracing` layer tracing, an
/// operation in the current task (backends compute statement shapes only then).
pub fn in_scope() -> bool {
    CURRENT.try_with(|_| ()).is_ok() || super::trace::in_scope()
}
