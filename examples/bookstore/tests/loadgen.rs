//! The load generator: bounded by count and by time, loopback only, and
//! its report adds up.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use persistence_bookstore::loadgen::{LoadgenOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stops_at_the_request_count_and_at_the_time_limit() {
    let running = common::start(common::embedded()).await;

    // Bounded by count: exactly that many requests, none failing.
    let report = run(LoadgenOptions {
        requests: 400,
        duration: Duration::from_secs(120),
        concurrency: 4,
        ..LoadgenOptions::new(running.addr)
    })
    .await
    .expect("load run");
    println!("{report}");
    assert_eq!(report.requests, 400);
    assert_eq!(report.errors, 0, "{report}");
    let sent: u64 = report.kinds.iter().map(|(_, k)| k.requests).sum();
    assert_eq!(sent, 400);
    assert!(report.kinds.len() >= 5, "a mix of requests: {report}");
    assert!(report.p50 <= report.p95 && report.p95 <= report.p99 && report.p99 <= report.max);
    assert!(report.ops_per_s() > 0.0);

    // Bounded by time: an unreachable count, a short limit; it ends by itself.
    let report = run(LoadgenOptions {
        requests: u64::MAX,
        duration: Duration::from_millis(500),
        concurrency: 2,
        ..LoadgenOptions::new(running.addr)
    })
    .await
    .expect("load run");
    assert!(report.requests > 0 && report.requests < u64::MAX);

    common::finish(running).await;
}

#[tokio::test]
async fn refuses_targets_off_this_machine() {
    for target in ["10.0.0.1:80", "192.168.1.1:8080", "8.8.8.8:80"] {
        let addr: SocketAddr = target.parse().expect("address");
        let err = run(LoadgenOptions::new(addr)).await.expect_err("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
