//! # persistence-dashboard
//!
//! A live monitoring page for an application built on the `persistence`
//! manager, served by the application itself:
//!
//! * `GET /dashboard` — one page (plain HTML/JS/SVG, embedded in the binary,
//!   nothing fetched from elsewhere) showing per named database: health,
//!   pool utilization, operations per second, latency p50/p95/p99, slow
//!   operations, cache hit rate per level, circuit-breaker state, tenant
//!   count, and small charts of the last minutes.
//! * `GET /dashboard/api/snapshot` — the JSON the page renders (the latest
//!   snapshot; `?seq=N` returns a recent older one, so a test can compare
//!   what a page shows with the exact snapshot it rendered).
//! * `GET /metrics` — every metric in the Prometheus text format.
//!
//! The inputs are the `metrics` facade data the framework emits (names in
//! `persistence::layer::metric_names` and `persistence::cache::metrics::names`),
//! collected by this crate's own recorder ([`Aggregator`]), plus
//! [`Persistence::health`], [`Persistence::pool_status`] and the
//! slow-operation log ([`persistence::layer::SlowLog::global`], statement
//! shapes only). Values that nothing reports (no pool on the memory store,
//! no tenants on SQLite) are `null` in the JSON and "n/a" on the page.
//! Labels carry database / entity / operation names only: no URLs, no bound
//! values.
//!
//! ```no_run
//! # async fn demo(db: std::sync::Arc<persistence::Persistence>) {
//! use persistence_dashboard::{Dashboard, DashboardOptions};
//! let dashboard = Dashboard::start(db, DashboardOptions::default());
//! let app: axum::Router = axum::Router::new().merge(dashboard.router());
//! # let _ = app; }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod prometheus;
mod recorder;
mod snapshot;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use persistence::{HealthReport, Persistence};
use serde::Deserialize;

pub use recorder::Aggregator;
pub use snapshot::{
    CacheLevel, DatabaseSnapshot, HealthSnapshot, Latency, PoolSnapshot, Series, SlowOp, Snapshot,
};

/// Dashboard settings.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// How often a snapshot is taken (default 1 s).
    pub interval: Duration,
    /// The window of rates and percentiles (default 10 s).
    pub window: Duration,
    /// Points kept for the charts (default 300: five minutes at 1 s).
    pub history: usize,
    /// Slow operations listed per database (default 5).
    pub slow_top: usize,
    /// Busiest tenants listed per database with a `tenancy` section (default 10).
    pub tenants_top: usize,
    /// Which database an entity's cache counters belong to, for cache
    /// counters without a `db` label (`"!tagged"` names tagged values).
    pub entity_db: BTreeMap<String, String>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            interval: Duration::from_secs(1),
            window: Duration::from_secs(10),
            history: 300,
            slow_top: 5,
            tenants_top: 10,
            entity_db: BTreeMap::new(),
        }
    }
}

/// Snapshots kept addressable by `?seq=` (one minute at the default interval).
const KEPT_SNAPSHOTS: usize = 60;

pub(crate) struct State {
    pub seq: u64,
    /// Readings of the last window, oldest first.
    pub readings: VecDeque<(Instant, recorder::Reading)>,
    /// Chart points per database.
    pub series: BTreeMap<String, Series>,
    pub snapshots: VecDeque<Arc<Snapshot>>,
}

pub(crate) struct Inner {
    pub persistence: Arc<Persistence>,
    pub aggregator: Option<Aggregator>,
    pub options: DashboardOptions,
    pub state: Mutex<State>,
    pub health: Mutex<Option<HealthReport>>,
    pub started: Instant,
}

/// The running dashboard: a sampler task and the routes. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Dashboard {
    /// Install the global recorder ([`Aggregator::global`]) if nobody did,
    /// and start sampling `persistence` every `options.interval` (needs a
    /// Tokio runtime). The sampler stops when the last clone is dropped.
    pub fn start(persistence: Arc<Persistence>, options: DashboardOptions) -> Dashboard {
        Self::with_aggregator(persistence, Aggregator::global().cloned(), options)
    }

    /// [`start`](Self::start) reading `aggregator` (for an application that
    /// installs its own recorder and fans out to this one); `None`: no metrics.
    pub fn with_aggregator(
        persistence: Arc<Persistence>,
        aggregator: Option<Aggregator>,
        options: DashboardOptions,
    ) -> Dashboard {
        let inner = Arc::new(Inner {
            persistence,
            aggregator,
            options,
            state: Mutex::new(State {
                seq: 0,
                readings: VecDeque::new(),
                series: BTreeMap::new(),
                snapshots: VecDeque::new(),
            }),
            health: Mutex::new(None),
            started: Instant::now(),
        });
        let weak = Arc::downgrade(&inner);
        let interval = inner.options.interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                // Health checks run beside the sampler: a slow database never delays a snapshot.
                let health_of = inner.clone();
                tokio::spawn(async move {
                    let report = health_of.persistence.health().await;
                    *health_of.health.lock() = Some(report);
                });
                snapshot::take(&inner);
            }
        });
        Dashboard { inner }
    }

    /// The latest snapshot (none before the first tick).
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.inner.state.lock().snapshots.back().cloned()
    }

    /// A recent snapshot by sequence number.
    pub fn snapshot(&self, seq: u64) -> Option<Arc<Snapshot>> {
        self.inner
            .state
            .lock()
            .snapshots
            .iter()
            .find(|s| s.seq == seq)
            .cloned()
    }

    /// Take a snapshot now (besides the periodic ones) and return it.
    pub fn take_snapshot(&self) -> Arc<Snapshot> {
        snapshot::take(&self.inner)
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn prometheus_text(&self) -> String {
        match &self.inner.aggregator {
            Some(agg) => prometheus::render(&agg.read()),
            None => "# no metrics recorder installed by the dashboard\n".to_string(),
        }
    }

    /// `/dashboard`, `/dashboard/api/snapshot` and `/metrics`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let snap = self.clone();
        let prom = self.clone();
        axum::Router::new()
            .route("/dashboard", get(page))
            .route(
                "/dashboard/api/snapshot",
                get(move |q: Query<SnapshotQuery>| async move { snapshot_json(&snap, q.0) }),
            )
            .route(
                "/metrics",
                get(move || async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        prom.prometheus_text(),
                    )
                }),
            )
    }
}

const PAGE: &str = include_str!("../assets/dashboard.html");

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

#[derive(Debug, Deserialize)]
struct SnapshotQuery {
    seq: Option<u64>,
}

fn snapshot_json(d: &Dashboard, q: SnapshotQuery) -> Response {
    let found = match q.seq {
        Some(seq) => d.snapshot(seq),
        None => d.latest().or_else(|| Some(d.take_snapshot())),
    };
    match found {
        Some(s) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(s.as_ref().clone()),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such snapshot (only the last minute is kept)",
        )
            .into_response(),
    }
}
