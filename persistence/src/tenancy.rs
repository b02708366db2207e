//! Per-tenant activity of the repositories that
//! [`Persistence::tenant_repo`](crate::Persistence::tenant_repo) hands out:
//! operations and failures per tenant, a sliding-window rate, and the top N
//! for the dashboard ([`Persistence::tenant_activity`](crate::Persistence::tenant_activity)).
//!
//! Tenants are not metric labels (100,000 tenants would be 100,000 series):
//! each database keeps a bounded table (`tenancy.tracked`, default 10,000
//! tenants) in process. When it is full, a tenant not in it replaces the
//! one seen least recently, so the table always holds the most recently
//! active tenants; an evicted tenant's totals start again from zero if it
//! comes back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use persistence_core::Result;
use persistence_core::layer::{Around, BoxFuture, Call, Op};
use serde::Serialize;

use crate::config::TenancyStrategy;

/// One tenant's activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantStat {
    /// The tenant.
    pub tenant: String,
    /// Operations since it was first tracked.
    pub ops_total: u64,
    /// Failed operations since then (not found is not a failure).
    pub errors_total: u64,
    /// Operations per second over the last window (sliding estimate, 3 decimals).
    pub ops_per_s: f64,
    /// Milliseconds since its last operation.
    pub idle_ms: u64,
}

/// The tenants of one database, for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantActivity {
    /// The database's name.
    pub database: String,
    /// `schema`, `row` or `database`.
    pub strategy: &'static str,
    /// Tenants with an operation within the last window.
    pub active: usize,
    /// Tenants in the table (at most `tenancy.tracked`).
    pub tracked: usize,
    /// The window of `ops_per_s` and `active`, milliseconds.
    pub window_ms: u64,
    /// The busiest tenants by `ops_per_s`, then by `ops_total`, then name.
    pub top: Vec<TenantStat>,
}

#[derive(Debug)]
struct Entry {
    ops: u64,
    errors: u64,
    last: Instant,
    /// The window index of `cur`.
    bucket: u64,
    cur: u64,
    prev: u64,
}

/// The bounded per-tenant table of one database.
#[derive(Debug)]
pub(crate) struct Tracker {
    database: String,
    strategy: TenancyStrategy,
    window: Duration,
    cap: usize,
    started: Instant,
    entries: Mutex<HashMap<Arc<str>, Entry>>,
}

impl Tracker {
    pub(crate) fn new(
        database: &str,
        strategy: TenancyStrategy,
        window: Duration,
        cap: usize,
    ) -> Tracker {
        Tracker {
            database: database.to_string(),
            strategy,
            window: window.max(Duration::from_millis(1)),
            cap: cap.max(1),
            started: Instant::now(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn bucket(&self, at: Instant) -> (u64, f64) {
        let w = self.window.as_secs_f64();
        let t = at.duration_since(self.started).as_secs_f64() / w;
        (t.floor() as u64, t.fract())
    }

    /// Count one operation of `tenant`.
    pub(crate) fn record(&self, tenant: &Arc<str>, failed: bool) {
        let now = Instant::now();
        let (b, _) = self.bucket(now);
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if !map.contains_key(tenant) && map.len() >= self.cap {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let e = map.entry(tenant.clone()).or_insert(Entry {
            ops: 0,
            errors: 0,
            last: now,
            bucket: b,
            cur: 0,
            prev: 0,
        });
        if e.bucket != b {
            e.prev = if e.bucket + 1 == b { e.cur } else { 0 };
            e.cur = 0;
            e.bucket = b;
        }
        e.ops += 1;
        e.cur += 1;
        e.errors += u64::from(failed);
        e.last = now;
    }

    /// The table now, its `top` busiest tenants.
    pub(crate) fn report(&self, top: usize) -> TenantActivity {
        let now = Instant::now();
        let (b, frac) = self.bucket(now);
        let w = self.window.as_secs_f64();
        let mut rows: Vec<TenantStat> = Vec::new();
        let mut active = 0;
        let tracked;
        {
            let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            tracked = map.len();
            for (t, e) in map.iter() {
                // Sliding window: this window's count plus the part of the
                // previous one still inside the last `window`.
                let count = if e.bucket == b {
                    e.cur as f64 + e.prev as f64 * (1.0 - frac)
                } else if e.bucket + 1 == b {
                    e.cur as f64 * (1.0 - frac)
                } else {
                    0.0
                };
                let idle = now.duration_since(e.last);
                if idle <= self.window {
                    active += 1;
                }
                rows.push(TenantStat {
                    tenant: t.to_string(),
                    ops_total: e.ops,
                    errors_total: e.errors,
                    ops_per_s: (count / w * 1000.0).round() / 1000.0,
                    idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        rows.sort_by(|a, b| {
            b.ops_per_s
                .total_cmp(&a.ops_per_s)
                .then(b.ops_total.cmp(&a.ops_total))
                .then_with(|| a.tenant.cmp(&b.tenant))
        });
        rows.truncate(top);
        TenantActivity {
            database: self.database.clone(),
            strategy: self.strategy.name(),
            active,
            tracked,
            window_ms: u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
            top: rows,
        }
    }
}

/// The layer counting each call of one tenant's repository.
#[derive(Debug, Clone)]
pub(crate) struct Counted {
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) tenant: Arc<str>,
}

impl Around for Counted {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let r = call().await;
            let failed = r.as_ref().is_err_and(|e| !e.is_not_found());
            self.tracker.record(&self.tenant, failed);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_is_bounded_and_keeps_the_recent_tenants() {
        let t = Tracker::new("main", TenancyStrategy::Row, Duration::from_secs(60), 3);
        let names: Vec<Arc<str>> = ["a", "b", "c", "d"].iter().map(|s| Arc::from(*s)).collect();
        for n in &names[..3] {
            t.record(n, false);
        }
        t.record(&names[0], true);
        // `b` is now the least recently seen: `d` replaces it.
        t.record(&names[3], false);
        let r = t.report(10);
        assert_eq!(r.tracked, 3);
        assert_eq!(r.active, 3);
        let tenants: Vec<&str> = r.top.iter().map(|s| s.tenant.as_str()).collect();
        assert_eq!(tenants, ["a", "c", "d"]);
        assert_eq!((r.top[0].ops_total, r.top[0].errors_total), (2, 1));
        assert!(r.top[0].ops_per_s > 0.0);
        assert_eq!(t.report(1).top.len(), 1);
    }

    #[test]
    fn an_idle_tenant_is_not_active_and_has_no_rate() {
        let t = Tracker::new(
            "main",
            TenancyStrategy::Schema,
            Duration::from_millis(20),
            10,
        );
        t.record(&Arc::from("a"), false);
        std::thread::sleep(Duration::from_millis(60));
        let r = t.report(10);
        assert_eq!((r.active, r.tracked), (0, 1));
        assert_eq!(r.top[0].ops_per_s, 0.0);
        assert_eq!(r.top[0].ops_total, 1);
    }
}
