//! Stale values: the source fail-safe (retryable load failures answered
//! with the last value, within its max age, never past a write or an
//! invalidation), its throttle, soft and hard load timeouts, and eager
//! refresh. L1 only, over a `MemoryRepository` whose reads the test can
//! make fail or slow (`common::flaky`); the PostgreSQL outage is in
//! `stale_postgres.rs`, invalidations from another instance in
//! `stale_backplane.rs`.
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::flaky::{Flaky, Switch, flaky};
use common::{Item, item};
use persistence_cache::{CacheLayer, CachedRepository, FailSafe, ReadPolicy, Served};
use persistence_core::{Error, ErrorKind, Filter, MemoryRepository, Repository};

type Repo = CachedRepository<Item, Flaky<MemoryRepository<Item>>>;

const TTL: Duration = Duration::from_millis(100);

/// A cached repository (L1, TTL 100 ms, no jitter) with `policy`.
async fn repo(policy: ReadPolicy) -> (Repo, Arc<Switch>) {
    let layer = CacheLayer::builder()
        .prefix(common::prefix("stale"))
        .ttl(TTL)
        .jitter(0.0)
        .read_policy(policy)
        // These tests are about loads after writes: writes only invalidate.
        .write_through(false)
        .build()
        .expect("layer");
    let (source, switch) = flaky(MemoryRepository::new());
    let repo = layer.wrap(source);
    repo.insert(&item(1, "v1", 1)).await.expect("insert");
    (repo, switch)
}

fn fail_safe(max_age: Duration, throttle: Duration) -> ReadPolicy {
    ReadPolicy::default().fail_safe(FailSafe::new(max_age).with_throttle(throttle))
}

fn down() -> Error {
    Error::unavailable("source stopped by the test")
}

/// Id 1's second version (an update of the inserted one).
fn v2() -> Item {
    Item {
        version: 1,
        ..item(1, "v2", 2)
    }
}

/// Cache id 1, then wait until its TTL has passed.
async fn cache_and_expire(repo: &Repo) {
    let (got, served) = repo.get_served(&1).await.expect("get");
    assert_eq!((got.map(|i| i.n), served), (Some(1), Served::Fresh));
    tokio::time::sleep(TTL * 2).await;
}

#[tokio::test]
async fn retryable_failure_serves_the_last_value_until_its_max_age() {
    let max_age = Duration::from_secs(4);
    let (repo, switch) = repo(fail_safe(max_age, Duration::from_millis(20))).await;
    cache_and_expire(&repo).await;
    switch.fail_with(Some(down));
    let (got, served) = repo.get_served(&1).await.expect("the fail-safe answers");
    assert_eq!((got.map(|i| i.n), served), (Some(1), Served::Stale));
    // The Repository API answers too, without the flag.
    assert_eq!(repo.get(&1).await.expect("get").map(|i| i.n), Some(1));
    assert!(repo.stats().stale_served >= 2, "{:?}", repo.stats());
    // Past the max age nothing is served any more: the error comes through.
    tokio::time::sleep(max_age + TTL).await;
    let e = repo.get(&1).await.expect_err("past max_age");
    assert_eq!(e.kind(), &ErrorKind::Unavailable);
    // The source is back: a fresh value.
    switch.fail_with(None);
    let (got, served) = repo.get_served(&1).await.expect("get");
    assert_eq!((got.map(|i| i.n), served), (Some(1), Served::Fresh));
}

#[tokio::test]
async fn without_fail_safe_errors_come_through() {
    let (repo, switch) = repo(ReadPolicy::default()).await;
    cache_and_expire(&repo).await;
    switch.fail_with(Some(down));
    let e = repo.get(&1).await.expect_err("no fail-safe");
    assert_eq!(e.kind(), &ErrorKind::Unavailable);
    assert_eq!(repo.stats().stale_served, 0);
}

#[tokio::test]
async fn non_retryable_errors_are_never_masked() {
    let (repo, switch) = repo(fail_safe(
        Duration::from_secs(60),
        Duration::from_millis(20),
    ))
    .await;
    cache_and_expire(&repo).await;
    switch.fail_with(Some(|| Error::backend("a bug in the query")));
    let e = repo.get(&1).await.expect_err("not masked");
    assert_eq!(e.kind(), &ErrorKind::Backend);
    // A retryable kind marked not retryable (e.g. a TLS rejection) neither.
    switch.fail_with(Some(|| down().set_retryable(false)));
    assert!(repo.get(&1).await.is_err());
    assert_eq!(repo.stats().stale_served, 0);
}

#[tokio::test]
async fn a_write_or_invalidation_poisons_the_stale_copy() {
    let policy = fail_safe(Duration::from_secs(60), Duration::from_millis(20));
    // Written through the cache: the value it held is never served again.
    let (repo, switch) = repo(policy).await;
    cache_and_expire(&repo).await;
    repo.update(&v2()).await.expect("update");
    switch.fail_with(Some(down));
    assert!(
        repo.get(&1).await.is_err(),
        "the pre-write value was served"
    );
    // Written through: the row the write returned is served, never the old one.
    let (repo, switch) = self::repo(policy).await;
    let repo = repo.with_write_through(true);
    cache_and_expire(&repo).await;
    let stored = repo.update(&v2()).await.expect("update");
    switch.fail_with(Some(down));
    assert_eq!(repo.get(&1).await.expect("written through"), Some(stored));
    // Explicit invalidations, of the key and of the whole type.
    for all in [false, true] {
        let (repo, switch) = self::repo(policy).await;
        cache_and_expire(&repo).await;
        if all {
            repo.invalidate_all().await;
        } else {
            repo.invalidate(&1).await;
        }
        switch.fail_with(Some(down));
        assert!(
            repo.get(&1).await.is_err(),
            "served after invalidate (all: {all})"
        );
    }
}

#[tokio::test]
async fn a_failed_load_backs_off_for_the_throttle() {
    // Throttle far longer than the test: after one failed load the key is not reloaded.
    let (repo, switch) = repo(fail_safe(
        Duration::from_secs(600),
        Duration::from_secs(300),
    ))
    .await;
    cache_and_expire(&repo).await;
    switch.fail_with(Some(down));
    let before = switch.reads();
    for _ in 0..20 {
        let (got, served) = repo.get_served(&1).await.expect("stale");
        assert_eq!((got.map(|i| i.n), served), (Some(1), Served::Stale));
    }
    assert_eq!(switch.reads() - before, 1, "reloaded during the throttle");
    assert_eq!(repo.stats().stale_served, 20);
}

#[tokio::test]
async fn query_results_are_covered_too() {
    let (repo, switch) = repo(fail_safe(
        Duration::from_secs(60),
        Duration::from_millis(20),
    ))
    .await;
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 1);
    tokio::time::sleep(TTL * 2).await;
    switch.fail_with(Some(down));
    assert_eq!(repo.count(&Filter::all()).await.expect("stale count"), 1);
    // Any write of the type kills cached queries, stale ones included.
    switch.fail_with(None);
    repo.insert(&item(2, "b", 0)).await.expect("insert");
    switch.fail_with(Some(down));
    assert!(repo.count(&Filter::all()).await.is_err());
}

#[tokio::test]
async fn soft_timeout_answers_stale_and_refreshes_in_the_background() {
    let policy = fail_safe(Duration::from_secs(600), Duration::from_millis(20))
        .soft_timeout(Duration::from_millis(100));
    let (repo, switch) = repo(policy).await;
    cache_and_expire(&repo).await;
    // Changed under the cache (no invalidation), then slow to load.
    repo.inner().inner().update(&v2()).await.expect("update");
    switch.delay(Some(Duration::from_secs(2)));
    let (got, served) = repo.get_served(&1).await.expect("stale");
    assert_eq!((got.map(|i| i.n), served), (Some(1), Served::Stale));
    assert_eq!(
        switch.finished(),
        1,
        "the slow load had finished before the stale answer"
    );
    assert_eq!(repo.stats().soft_timeouts, 1);
    // The load goes on and refreshes the cache.
    let start = Instant::now();
    loop {
        let (got, served) = repo.get_served(&1).await.expect("get");
        if got.map(|i| i.n) == Some(2) {
            assert_eq!(served, Served::Fresh);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(switch.finished(), 2);
}

#[tokio::test]
async fn hard_timeout_fails_when_nothing_is_stale_and_fills_afterwards() {
    let policy = ReadPolicy::default().hard_timeout(Duration::from_millis(100));
    let (repo, switch) = repo(policy).await;
    switch.delay(Some(Duration::from_secs(2)));
    let e = repo.get(&1).await.expect_err("hard timeout");
    assert_eq!(e.kind(), &ErrorKind::Timeout);
    assert!(e.is_retryable());
    assert_eq!(switch.finished(), 0, "waited for the slow load");
    assert_eq!(repo.stats().hard_timeouts, 1);
    // The load finished in the background and filled the cache: once it
    // has, a read is a hit and the source saw one read.
    let start = Instant::now();
    while switch.finished() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "load never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    switch.delay(None);
    let hits = repo.stats().l1_hits;
    assert_eq!(repo.get(&1).await.expect("get").map(|i| i.n), Some(1));
    assert_eq!(repo.stats().l1_hits, hits + 1);
    assert_eq!(switch.reads(), 1);
}

#[tokio::test]
async fn eager_refresh_keeps_a_hot_key_from_missing() {
    // An early refresh point: the reload has three quarters of a TTL to land.
    let layer = CacheLayer::builder()
        .prefix(common::prefix("eager"))
        .ttl(Duration::from_secs(2))
        .jitter(0.0)
        .write_through(false)
        .read_policy(ReadPolicy::default().eager_refresh(0.25))
        .build()
        .expect("layer");
    let (source, _switch) = flaky(MemoryRepository::new());
    let repo = layer.wrap(source);
    repo.insert(&item(1, "v1", 1)).await.expect("insert");
    let start = Instant::now();
    // Until 10 TTL periods have been refreshed (counted, not timed).
    while repo.stats().eager_refreshes < 10 {
        assert!(repo.get(&1).await.expect("get").is_some());
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{:?}",
            repo.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = repo.stats();
    assert_eq!(s.l1_misses, 1, "only the first read misses: {s:?}");
    assert!(s.loads > 10, "{s:?}");
}

#[test]
fn invalid_read_policies_are_config_errors() {
    let fs = FailSafe::new(Duration::from_secs(60));
    let ms = Duration::from_millis;
    let bad = [
        (
            ReadPolicy::default().fail_safe(FailSafe::new(Duration::ZERO)),
            "fail_safe.max_age",
        ),
        (
            ReadPolicy::default().fail_safe(fs.with_throttle(Duration::ZERO)),
            "fail_safe.throttle",
        ),
        (
            ReadPolicy::default().soft_timeout(ms(10)),
            "needs fail_safe",
        ),
        (
            ReadPolicy::default()
                .fail_safe(fs)
                .soft_timeout(ms(10))
                .hard_timeout(ms(10)),
            "shorter",
        ),
        (
            ReadPolicy::default().hard_timeout(Duration::ZERO),
            "hard_timeout",
        ),
        (ReadPolicy::default().eager_refresh(1.0), "eager_refresh"),
        (ReadPolicy::default().eager_refresh(0.0), "eager_refresh"),
        (
            ReadPolicy::default().eager_refresh(f64::NAN),
            "eager_refresh",
        ),
    ];
    for (policy, says) in bad {
        let e = CacheLayer::builder()
            .read_policy(policy)
            .build()
            .expect_err("invalid");
        assert_eq!(e.kind(), &ErrorKind::Config);
        assert!(e.message().contains(says), "{says}: {e}");
        let e = CacheLayer::builder()
            .entity_read_policy("cache_items", policy)
            .build()
            .expect_err("invalid");
        assert!(e.message().contains("cache_items"), "{e}");
    }
    let good = ReadPolicy::default()
        .fail_safe(fs)
        .soft_timeout(ms(10))
        .hard_timeout(ms(20))
        .eager_refresh(0.8);
    assert!(CacheLayer::builder().read_policy(good).build().is_ok());
}
