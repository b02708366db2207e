//! Snapshots: what the page shows, computed from two metric readings (now
//! and one window ago) plus the latest health report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use metrics::Key;
use persistence::HealthState;
use persistence::cache::metrics::names as cache_names;
use persistence::layer::SlowLog;
use persistence::layer::metric_names as names;
use persistence::tenancy::TenantActivity;
use serde::Serialize;

use crate::Inner;
use crate::recorder::{BUCKETS, Reading, quantile};

/// Everything the page renders, at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Increasing sequence number (the page shows which one it rendered).
    pub seq: u64,
    /// When it was taken, RFC 3339 UTC.
    pub generated_at: String,
    /// Seconds since the dashboard started.
    pub uptime_s: u64,
    /// Window of rates and percentiles, seconds.
    pub window_s: f64,
    /// Seconds between chart points.
    pub interval_s: f64,
    /// Whether a metrics recorder feeds the dashboard.
    pub metrics_available: bool,
    /// Worst health state.
    pub status: &'static str,
    /// Per database, in name order.
    pub databases: Vec<DatabaseSnapshot>,
}

/// One database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSnapshot {
    /// Configured name.
    pub name: String,
    /// Backend kind.
    pub kind: &'static str,
    /// Health.
    pub health: HealthSnapshot,
    /// Pool utilization (`None`: not reported).
    pub pool: Option<PoolSnapshot>,
    /// Operations per second over the window (1 decimal).
    pub ops_per_s: Option<f64>,
    /// Failed operations per second over the window (1 decimal; not found is not a failure).
    pub errors_per_s: Option<f64>,
    /// Operations since start.
    pub ops_total: Option<u64>,
    /// Latency over the window, milliseconds (`None`: no operation in the window).
    pub latency_ms: Option<Latency>,
    /// Cache hit rate per level over the window.
    pub cache: Vec<CacheLevel>,
    /// Circuit breaker: `closed`, `half-open`, `open` (`None`: not reported).
    pub breaker: Option<&'static str>,
    /// Provisioned tenants (`None`: not reported).
    pub tenants: Option<u64>,
    /// Per-tenant activity of a database with a `tenancy` section: active
    /// tenants and the busiest ones (`None`: no tenancy configured).
    pub tenant_activity: Option<TenantActivity>,
    /// Slowest recent operations, longest first (`None`: no slow-operation log).
    pub slow: Option<Vec<SlowOp>>,
    /// Operations slower than the slow threshold since start.
    pub slow_total: Option<u64>,
    /// Chart data of the last minutes.
    pub series: Series,
}

/// Health of one database.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSnapshot {
    /// `healthy`, `degraded`, `unhealthy`, `unknown`.
    pub state: &'static str,
    /// Round trip of the check, ms (2 decimals).
    pub latency_ms: Option<f64>,
    /// Error text (no secrets).
    pub error: Option<String>,
}

/// Pool utilization.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    /// Connections in use.
    pub in_use: Option<u64>,
    /// Idle connections.
    pub idle: Option<u64>,
    /// Tasks waiting for a connection.
    pub waiting: Option<u64>,
    /// Maximum connections.
    pub max: Option<u64>,
}

/// Latency percentiles, ms (2 decimals).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Cache hits of one level.
#[derive(Debug, Clone, Serialize)]
pub struct CacheLevel {
    /// `l1` or `l2`.
    pub level: String,
    /// Hits / (hits + misses) over the window in percent (1 decimal); `None` without lookups.
    pub hit_rate_pct: Option<f64>,
    /// Hits in the window.
    pub hits: u64,
    /// Misses in the window.
    pub misses: u64,
}

/// One slow operation (statement shape only, never values).
#[derive(Debug, Clone, Serialize)]
pub struct SlowOp {
    /// When it ended, RFC 3339.
    pub at: String,
    /// Entity.
    pub entity: String,
    /// Operation.
    pub op: String,
    /// Duration, ms (1 decimal).
    pub duration_ms: f64,
    /// Statement shape with placeholders, when known.
    pub statement: Option<String>,
}

/// Chart points, oldest first; `null` where nothing was measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Operations per second.
    pub ops_per_s: VecDeque<Option<f64>>,
    /// p95 latency, ms.
    pub p95_ms: VecDeque<Option<f64>>,
    /// Pool connections in use.
    pub pool_in_use: VecDeque<Option<f64>>,
    /// Cache hit rate (all levels), percent.
    pub cache_hit_pct: VecDeque<Option<f64>>,
}

/// Entries of the process-wide slow log scanned for one database's top N.
const SLOW_SCAN: usize = 200;

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

fn label<'a>(key: &'a Key, name: &str) -> Option<&'a str> {
    key.labels().find(|l| l.key() == name).map(|l| l.value())
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn state_name(s: HealthState) -> &'static str {
    match s {
        HealthState::Healthy => "healthy",
        HealthState::Degraded => "degraded",
        HealthState::Unhealthy => "unhealthy",
        HealthState::Unknown => "unknown",
    }
}

/// Per-database sums of one reading.
#[derive(Default)]
struct Sums {
    ops: u64,
    errors: u64,
    slow: u64,
    buckets: Vec<u64>,
    /// (level) -> (hits, misses)
    cache: BTreeMap<String, (u64, u64)>,
}

fn sums(reading: &Reading, db: &str, entity_db: &BTreeMap<String, String>) -> Sums {
    let mut s = Sums {
        buckets: vec![0; BUCKETS],
        ..Sums::default()
    };
    for (k, v) in &reading.counters {
        let name = k.name();
        if name == names::OPERATIONS || name == names::SLOW_OPERATIONS {
            if label(k, names::LABEL_DB) != Some(db) {
                continue;
            }
            if name == names::SLOW_OPERATIONS {
                s.slow += v;
                continue;
            }
            s.ops += v;
            if !matches!(
                label(k, names::LABEL_OUTCOME),
                Some("ok") | Some("not_found")
            ) {
                s.errors += v;
            }
        } else if name == cache_names::HITS || name == cache_names::MISSES {
            let owner = label(k, names::LABEL_DB).or_else(|| {
                label(k, names::LABEL_ENTITY)
                    .and_then(|e| entity_db.get(e))
                    .map(String::as_str)
            });
            if owner != Some(db) {
                continue;
            }
            let level = label(k, "level").unwrap_or("l1").to_string();
            let e = s.cache.entry(level).or_default();
            if name == cache_names::HITS {
                e.0 += v;
            } else {
                e.1 += v;
            }
        }
    }
    for (k, counts, _) in &reading.histograms {
        if k.name() == names::OPERATION_DURATION && label(k, names::LABEL_DB) == Some(db) {
            for (acc, c) in s.buckets.iter_mut().zip(counts) {
                *acc += c;
            }
        }
    }
    s
}

fn gauge(reading: &Reading, name: &str, db: &str, extra: Option<(&str, &str)>) -> Option<f64> {
    let mut found = None;
    for (k, v) in &reading.gauges {
        if k.name() == name
            && label(k, names::LABEL_DB) == Some(db)
            && extra.is_none_or(|(l, want)| label(k, l) == Some(want))
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

fn push<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    q.push_back(v);
    while q.len() > cap {
        q.pop_front();
    }
}

/// Take a reading, compute and store a snapshot.
pub(crate) fn take(inner: &Arc<Inner>) -> Arc<Snapshot> {
    let now = Instant::now();
    let reading = inner.aggregator.as_ref().map(|a| a.read());
    let health = inner.health.lock().clone();
    let opts = &inner.options;
    let mut state = inner.state.lock();

    // Keep readings spanning one window; the oldest is the rate baseline.
    if let Some(r) = &reading {
        state.readings.push_back((now, r.clone()));
        while state
            .readings
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > opts.window + opts.interval / 2)
        {
            state.readings.pop_front();
        }
    }
    let base = state.readings.front().cloned();

    let mut databases = Vec::new();
    for (name, cfg) in &inner.persistence.config().databases {
        if cfg.kind == persistence::config::DatabaseKind::Redis {
            continue; // Redis serves the cache: its hits show under the databases it caches.
        }
        let h = health
            .as_ref()
            .and_then(|h| h.databases.iter().find(|d| &d.name == name));
        let health = HealthSnapshot {
            state: h.map_or("unknown", |h| state_name(h.state)),
            latency_ms: h
                .and_then(|h| h.latency)
                .map(|l| round(l.as_secs_f64() * 1e3, 2)),
            error: h.and_then(|h| h.error.clone()),
        };
        let mut db = DatabaseSnapshot {
            name: name.clone(),
            kind: cfg.kind.name(),
            health,
            pool: None,
            ops_per_s: None,
            errors_per_s: None,
            ops_total: None,
            latency_ms: None,
            cache: Vec::new(),
            breaker: None,
            tenants: None,
            tenant_activity: inner.persistence.tenant_activity(name, opts.tenants_top),
            slow: None,
            slow_total: None,
            series: Series::default(),
        };
        if let (Some(r), Some((t0, r0))) = (&reading, &base) {
            let cur = sums(r, name, &opts.entity_db);
            let old = sums(r0, name, &opts.entity_db);
            let dt = now.duration_since(*t0).as_secs_f64();
            let rate = |a: u64, b: u64| {
                if dt > 0.0 {
                    Some(round(a.saturating_sub(b) as f64 / dt, 1))
                } else {
                    None
                }
            };
            db.ops_per_s = rate(cur.ops, old.ops).or(Some(0.0));
            db.errors_per_s = rate(cur.errors, old.errors).or(Some(0.0));
            db.ops_total = Some(cur.ops);
            db.slow_total = Some(cur.slow);
            let window: Vec<u64> = cur
                .buckets
                .iter()
                .zip(&old.buckets)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            let ms = |q| quantile(&window, q).map(|v| round(v * 1e3, 2));
            if let (Some(p50), Some(p95), Some(p99)) = (ms(0.5), ms(0.95), ms(0.99)) {
                db.latency_ms = Some(Latency { p50, p95, p99 });
            }
            for (level, (hits, misses)) in &cur.cache {
                let (h0, m0) = old.cache.get(level).copied().unwrap_or_default();
                let (hits, misses) = (hits.saturating_sub(h0), misses.saturating_sub(m0));
                db.cache.push(CacheLevel {
                    level: level.clone(),
                    hit_rate_pct: (hits + misses > 0)
                        .then(|| round(hits as f64 * 100.0 / (hits + misses) as f64, 1)),
                    hits,
                    misses,
                });
            }
            // The pool gauges, when no live status is available (below).
            let state = |s| Some((names::LABEL_STATE, s));
            let in_use = gauge(r, names::POOL_CONNECTIONS, name, state(names::STATE_IN_USE));
            let idle = gauge(r, names::POOL_CONNECTIONS, name, state(names::STATE_IDLE));
            let max = gauge(r, names::POOL_MAX_CONNECTIONS, name, None);
            let waiting = gauge(r, names::POOL_WAITING, name, None);
            if in_use.is_some() || max.is_some() {
                let n = |v: Option<f64>| v.map(|v| v.max(0.0).round() as u64);
                db.pool = Some(PoolSnapshot {
                    in_use: n(in_use),
                    idle: n(idle),
                    waiting: n(waiting),
                    max: n(max),
                });
            }
            db.breaker = gauge(r, names::BREAKER_STATE, name, None).map(|v| {
                if v >= 1.5 {
                    "open"
                } else if v >= 0.5 {
                    "half-open"
                } else {
                    "closed"
                }
            });
            db.tenants = gauge(r, names::TENANTS, name, None).map(|v| v.max(0.0).round() as u64);
        }
        // Live pool occupancy wins over the last sampled gauges.
        if let Some(p) = inner.persistence.pool_status(name) {
            db.pool = Some(PoolSnapshot {
                in_use: Some(u64::from(p.in_use)),
                idle: Some(u64::from(p.idle)),
                waiting: Some(u64::from(p.waiting)),
                max: Some(u64::from(p.max)),
            });
        }
        // Slowest operations of this database among the longest kept.
        let slow: Vec<SlowOp> = SlowLog::global()
            .top(SLOW_SCAN)
            .into_iter()
            .filter(|e| &e.db == name)
            .take(opts.slow_top)
            .map(|e| SlowOp {
                at: rfc3339(e.at),
                entity: e.entity,
                op: e.op,
                duration_ms: round(e.duration.as_secs_f64() * 1e3, 1),
                statement: e.statement,
            })
            .collect();
        db.slow = Some(slow);

        // Chart points.
        let cap = opts.history.max(2);
        let all_hits: (u64, u64) = db
            .cache
            .iter()
            .fold((0, 0), |(h, m), c| (h + c.hits, m + c.misses));
        let series = state.series.entry(name.clone()).or_default();
        push(&mut series.ops_per_s, db.ops_per_s, cap);
        push(
            &mut series.p95_ms,
            db.latency_ms.as_ref().map(|l| l.p95),
            cap,
        );
        push(
            &mut series.pool_in_use,
            db.pool.as_ref().and_then(|p| p.in_use).map(|v| v as f64),
            cap,
        );
        push(
            &mut series.cache_hit_pct,
            (all_hits.0 + all_hits.1 > 0).then(|| {
                round(
                    all_hits.0 as f64 * 100.0 / (all_hits.0 + all_hits.1) as f64,
                    1,
                )
            }),
            cap,
        );
        db.series = series.clone();
        databases.push(db);
    }

    let status = health.as_ref().map_or("unknown", |h| state_name(h.status));
    state.seq += 1;
    let snap = Arc::new(Snapshot {
        seq: state.seq,
        generated_at: rfc3339(SystemTime::now()),
        uptime_s: inner.started.elapsed().as_secs(),
        window_s: opts.window.as_secs_f64(),
        interval_s: opts.interval.as_secs_f64(),
        metrics_available: inner.aggregator.is_some(),
        status,
        databases,
    });
    push(&mut state.snapshots, snap.clone(), crate::KEPT_SNAPSHOTS);
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }
}
