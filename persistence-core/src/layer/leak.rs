//! Connection-leak detection: connections, streams and transactions held
//! longer than a threshold are reported — a `tracing` warning naming the
//! operation (and, for transactions, the call site) and the counter
//! [`CONNECTION_LEAKS`](super::metric_names::CONNECTION_LEAKS) `{db, op}` —
//! once per holder, by a watchdog task.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::metrics::names;
use super::probe::OpContext;

/// Tracks what holds a connection of one database (see the module docs).
/// Cheap to clone; clones share the registry.
#[derive(Debug, Clone)]
pub struct LeakDetector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<str>,
    threshold: Duration,
    next: AtomicU64,
    held: Mutex<HashMap<u64, Held, BuildHasherDefault<IdHasher>>>,
}

/// Hashes the detector's own sequential ids (Fibonacci hashing): SipHash,
/// the map's default, is built for keys an attacker chooses and costs more
/// than the rest of an insert; a plain id would leave hashbrown's control
/// bytes (the hash's top bits) all alike.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug)]
struct Held {
    op: &'static str,
    entity: Option<&'static str>,
    site: Option<&'static Location<'static>>,
    since: Instant,
    reported: bool,
    /// For repository operations: only a connection actually in hand counts.
    ctx: Option<Arc<OpContext>>,
}

/// Held while a connection or transaction is in use; dropping it ends the hold.
#[derive(Debug)]
#[must_use = "the hold ends when the guard is dropped"]
pub struct HoldGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        if let Some(h) = self.inner.held.lock().remove(&self.id) {
            if h.reported {
                tracing::info!(db = %self.inner.db, op = h.op, held_ms = h.since.elapsed().as_millis() as u64,
                    "connection reported as leaked was released");
            }
        }
    }
}

impl LeakDetector {
    /// A detector for database `db` reporting holds longer than `threshold`.
    pub fn new(db: &str, threshold: Duration) -> Self {
        LeakDetector {
            inner: Arc::new(Inner {
                db: Arc::from(db),
                threshold,
                next: AtomicU64::new(0),
                held: Mutex::new(HashMap::default()),
            }),
        }
    }

    /// The threshold.
    pub fn threshold(&self) -> Duration {
        self.inner.threshold
    }

    /// The database name.
    pub fn db(&self) -> &str {
        &self.inner.db
    }

    /// Start a hold by operation `op` (a low-cardinality label such as
    /// `transaction`), optionally naming the entity and the call site.
    pub fn track(
        &self,
        op: &'static str,
        entity: Option<&'static str>,
        site: Option<&'static Location<'static>>,
    ) -> HoldGuard {
        self.insert(op, entity, site, None)
    }

    pub(crate) fn track_op(
        &self,
        op: &'static str,
        entity: &'static str,
        ctx: Arc<OpContext>,
    ) -> HoldGuard {
        self.insert(op, Some(entity), None, Some(ctx))
    }

    fn insert(
        &self,
        op: &'static str,
        entity: Option<&'static str>,
        site: Option<&'static Location<'static>>,
        ctx: Option<Arc<OpContext>>,
    ) -> HoldGuard {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner.held.lock().insert(
            id,
            Held {
                op,
                entity,
                site,
                since: Instant::now(),
                reported: false,
                ctx,
            },
        );
        HoldGuard {
            inner: self.inner.clone(),
            id,
        }
    }

    /// Holds currently open.
    pub fn held(&self) -> usize {
        self.inner.held.lock().len()
    }

    /// Report every hold past the threshold not reported yet; returns how many were reported.
    pub fn check(&self) -> usize {
        let now = Instant::now();
        let mut reported = Vec::new();
        {
            let mut held = self.inner.held.lock();
            for h in held.values_mut() {
                let held_for = now.saturating_duration_since(h.since);
                if h.reported || held_for < self.inner.threshold {
                    continue;
                }
                if h.ctx.as_ref().is_some_and(|c| !c.has_connection()) {
                    continue;
                }
                h.reported = true;
                reported.push((h.op, h.entity, h.site, held_for));
            }
        }
        for (op, entity, site, held_for) in &reported {
            metrics::counter!(names::CONNECTION_LEAKS,
                names::LABEL_DB => self.inner.db.to_string(), names::LABEL_OP => *op)
            .increment(1);
            let site = site.map(|l| format!("{}:{}", l.file(), l.line()));
            tracing::warn!(
                db = %self.inner.db,
                op,
                entity = entity.unwrap_or(""),
                site = site.as_deref().unwrap_or(""),
                held_ms = held_for.as_millis() as u64,
                threshold_ms = self.inner.threshold.as_millis() as u64,
                "connection held longer than the leak threshold (possible leak)"
            );
        }
        reported.len()
    }

    /// Spawn the watchdog on the current Tokio runtime: it checks every
    /// quarter threshold (at least every 10 ms, at most every 5 s) and stops
    /// when every clone of this detector is dropped.
    pub fn spawn_watchdog(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period =
            (self.inner.threshold / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => {
                        LeakDetector { inner }.check();
                    }
                    None => break,
                }
            }
        })
    }
}
