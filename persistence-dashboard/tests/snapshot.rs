//! Snapshots computed from what the recorder saw: rates over the window,
//! percentiles, cache hit rates per level and database, gauges, retained
//! snapshots by sequence number, and the Prometheus text.

use std::sync::Arc;
use std::time::Duration;

use persistence::Persistence;
use persistence::config::ConfigLoader;
use persistence::layer::metric_names as n;
use persistence_dashboard::{Aggregator, Dashboard, DashboardOptions};

fn persistence() -> Arc<Persistence> {
    let config = ConfigLoader::new()
        .text(
            "test.yaml",
            "databases:\n  main: { kind: memory }\n  docs: { kind: memory }\n",
        )
        .load()
        .expect("config");
    Arc::new(Persistence::new(config).expect("persistence"))
}

#[tokio::test]
async fn snapshot_reflects_recorded_metrics() {
    let agg = Aggregator::new();
    let dashboard = Dashboard::with_aggregator(
        persistence(),
        Some(agg.clone()),
        DashboardOptions {
            // Long: only the explicit snapshots below are taken.
            interval: Duration::from_secs(3600),
            window: Duration::from_secs(3600),
            entity_db: [("widgets".to_string(), "docs".to_string())].into(),
            ..DashboardOptions::default()
        },
    );
    let first = dashboard.take_snapshot();

    metrics::with_local_recorder(&agg, || {
        for i in 0..100 {
            let outcome = if i < 90 { "ok" } else { "conflict" };
            metrics::counter!(n::OPERATIONS, n::LABEL_DB => "main", n::LABEL_ENTITY => "users",
                n::LABEL_OP => "get", n::LABEL_OUTCOME => outcome)
            .increment(1);
            // 1 ms .. 100 ms
            metrics::histogram!(n::OPERATION_DURATION, n::LABEL_DB => "main",
                n::LABEL_ENTITY => "users", n::LABEL_OP => "get")
            .record(f64::from(i + 1) / 1000.0);
        }
        metrics::counter!(n::OPERATIONS, n::LABEL_DB => "docs", n::LABEL_ENTITY => "widgets",
            n::LABEL_OP => "find", n::LABEL_OUTCOME => "ok")
        .increment(7);
        // Cache counters without a db label are attributed through entity_db.
        metrics::counter!(persistence::cache::metrics::names::HITS, "entity" => "widgets", "level" => "l1")
            .increment(3);
        metrics::counter!(persistence::cache::metrics::names::MISSES, "entity" => "widgets", "level" => "l1")
            .increment(1);
        metrics::counter!(persistence::cache::metrics::names::MISSES, "entity" => "widgets", "level" => "l2")
            .increment(1);
        metrics::gauge!(n::BREAKER_STATE, n::LABEL_DB => "main").set(2.0);
        metrics::gauge!(n::TENANTS, n::LABEL_DB => "main").set(2.0);
        metrics::gauge!(n::POOL_CONNECTIONS, n::LABEL_DB => "main", n::LABEL_STATE => n::STATE_IN_USE).set(3.0);
        metrics::gauge!(n::POOL_CONNECTIONS, n::LABEL_DB => "main", n::LABEL_STATE => n::STATE_IDLE).set(5.0);
        metrics::gauge!(n::POOL_MAX_CONNECTIONS, n::LABEL_DB => "main").set(10.0);
        metrics::gauge!(n::POOL_WAITING, n::LABEL_DB => "main").set(1.0);
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = dashboard.take_snapshot();
    assert!(snap.seq > first.seq);
    assert!(snap.metrics_available);

    let main = snap
        .databases
        .iter()
        .find(|d| d.name == "main")
        .expect("main");
    assert_eq!(main.kind, "memory");
    assert_eq!(main.ops_total, Some(100));
    assert!(main.ops_per_s.expect("rate") > 0.0);
    assert!(main.errors_per_s.expect("rate") > 0.0);
    let lat = main.latency_ms.as_ref().expect("latency");
    assert!((lat.p50 - 50.0).abs() < 5.0, "{lat:?}");
    assert!((lat.p99 - 99.0).abs() < 10.0, "{lat:?}");
    assert!(lat.p50 <= lat.p95 && lat.p95 <= lat.p99);
    assert_eq!(main.breaker, Some("open"));
    assert_eq!(main.tenants, Some(2));
    let pool = main.pool.as_ref().expect("pool from the gauges");
    assert_eq!(
        (pool.in_use, pool.idle, pool.waiting, pool.max),
        (Some(3), Some(5), Some(1), Some(10))
    );
    assert_eq!(
        main.series.ops_per_s.len() as u64,
        snap.seq,
        "one chart point per snapshot"
    );

    let docs = snap
        .databases
        .iter()
        .find(|d| d.name == "docs")
        .expect("docs");
    assert_eq!(docs.ops_total, Some(7));
    assert!(docs.latency_ms.is_none(), "no durations recorded");
    assert!(docs.pool.is_none() && docs.breaker.is_none() && docs.tenants.is_none());
    let l1 = docs.cache.iter().find(|c| c.level == "l1").expect("l1");
    assert_eq!((l1.hits, l1.misses, l1.hit_rate_pct), (3, 1, Some(75.0)));
    let l2 = docs.cache.iter().find(|c| c.level == "l2").expect("l2");
    assert_eq!((l2.hits, l2.misses, l2.hit_rate_pct), (0, 1, Some(0.0)));

    // Recent snapshots stay addressable by sequence number.
    assert_eq!(dashboard.snapshot(snap.seq).map(|s| s.seq), Some(snap.seq));
    assert!(dashboard.snapshot(snap.seq + 1000).is_none());
    assert_eq!(dashboard.latest().map(|s| s.seq), Some(snap.seq));

    let text = dashboard.prometheus_text();
    assert!(
        text.contains("# TYPE persistence_operations_total counter"),
        "{text}"
    );
    assert!(
        text.contains(
            "persistence_operations_total{db=\"main\",entity=\"users\",op=\"get\",outcome=\"conflict\"} 10"
        ),
        "{text}"
    );
    assert!(
        text.contains("persistence_breaker_state{db=\"main\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(
            "persistence_operation_duration_seconds_count{db=\"main\",entity=\"users\",op=\"get\"} 100"
        ),
        "{text}"
    );
}
